"""The webhooks worker's task. Thin: it takes ids and calls the service."""
from __future__ import annotations

from celery import shared_task
from django.db import connection

from webhooks.services import delivery_attempt


@shared_task(name="webhooks.deliver")
def webhook_deliver(*, delivery_id: int, attempt: int) -> None:
    try:
        delivery_attempt(delivery_id=delivery_id, attempt=attempt)
    finally:
        connection.close()  # each of the pool's threads has its own connection: none is left open
