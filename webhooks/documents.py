"""Webhooks as JSON-able documents, for the API and the commands: a secret never, its hint only."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from webhooks.models import WebhookDelivery, WebhookEndpoint


def _when(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def endpoint_document(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.pk, "url": endpoint.url, "events": list(endpoint.events), "description": endpoint.description,
        "active": endpoint.active, "secret_hint": endpoint.secret_hint, "created_at": _when(endpoint.created_at),
        "created_by": endpoint.created_by,
    }


def delivery_document(delivery: WebhookDelivery) -> dict[str, Any]:
    waiting = delivery.status in {WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING}
    return {
        "id": delivery.pk, "endpoint": delivery.endpoint_id, "event": delivery.event,
        "event_id": str(delivery.event_id), "status": delivery.status, "attempts": delivery.attempts,
        "max_attempts": settings.EXTADMIN_WEBHOOK_MAX_ATTEMPTS, "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error, "last_attempt_at": _when(delivery.last_attempt_at),
        "next_attempt_at": _when(delivery.next_attempt_at) if waiting else None,
        "delivered_at": _when(delivery.delivered_at), "created_at": _when(delivery.created_at),
        "resent_from": delivery.resent_from_id,
    }
