"""Reads about webhooks."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from webhooks.models import WebhookDelivery, WebhookEndpoint

RECENT = 10


def endpoints_with_recent(*, recent: int = RECENT) -> list[WebhookEndpoint]:
    """Every endpoint with its ``recent`` newest deliveries (``endpoint.recent``): two queries."""
    newest = WebhookDelivery.objects.order_by("-created_at", "-id")
    return list(
        WebhookEndpoint.objects.order_by("id").prefetch_related(
            Prefetch("deliveries", queryset=newest[:recent], to_attr="recent")
        )
    )


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("id")


def delivery_list(*, endpoint_id: int | None = None, limit: int = 100) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.order_by("-created_at", "-id")
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    return deliveries[: max(1, min(limit, 1000))]
