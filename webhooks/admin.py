"""Django admin for webhooks: read-only (the Webhooks page and the API change them), never the secret."""
from __future__ import annotations

from django.contrib import admin

from extadmin.admin import ReadOnlyAdmin
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookWatch


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "active", "secret_hint", "created_at", "created_by"]
    exclude = ["secret"]
    readonly_fields = ["secret_hint"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event", "endpoint", "status", "attempts", "last_status_code", "last_error", "created_at"]
    list_filter = ["status", "event"]


@admin.register(WebhookWatch)
class WebhookWatchAdmin(ReadOnlyAdmin):
    list_display = ["key", "value", "changed_at"]
