"""The events extadmin sends to webhooks, and how one is emitted.

``event_emit`` writes one ``WebhookDelivery`` per active endpoint that asked for the event, in the
caller's transaction: an import that rolls back emits nothing, and one that commits cannot lose its
event (the rows commit with it). After commit the webhooks worker (``manage.py run_worker``, queue
``webhooks``) is asked to send them: one bounded attempt at the broker, as for the nudges. What the
broker never carried, the worker's sweep sends (``webhooks.services.deliveries_due``), so a broker
that is down or restarted delays a delivery but never loses it, and never slows the emitter.

Events that only the agents' rows reveal (``package.converged``, ``node.failed``, ``node.offline``)
are emitted by the worker's watcher (``webhooks.watch``): an agent writes only its own node's rows.
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from extadmin.celery import app
from extadmin.models import ExtensionPackage
from webhooks.models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

EVENTS = (
    "package.imported",
    "package.removed",
    "package.converged",
    "node.failed",
    "node.offline",
    "node.degraded",
    "sync.paused",
    "sync.resumed",
)
WEBHOOKS_QUEUE = "webhooks"
DELIVER_TASK = "webhooks.deliver"  # webhooks.tasks.webhook_deliver
PUBLISH_TIMEOUT_SECONDS = 2.0
_PUBLISH_TRANSPORT_OPTIONS = {
    "max_retries": 0,
    "socket_timeout": PUBLISH_TIMEOUT_SECONDS,  # Redis
    "socket_connect_timeout": PUBLISH_TIMEOUT_SECONDS,
    "read_timeout": PUBLISH_TIMEOUT_SECONDS,  # AMQP
    "write_timeout": PUBLISH_TIMEOUT_SECONDS,
}


def requeue_after() -> timedelta:
    """A delivery asked for but not attempted within this long is asked for again by the sweep
    (its message was lost, or every worker thread was busy): long enough that a busy worker
    rarely gets it twice, and a second message is harmless anyway (the claim takes one)."""
    return timedelta(seconds=max(30.0, 2 * settings.EXTADMIN_WEBHOOK_TIMEOUT))


def event_body(*, event_id: uuid.UUID, event: str, at: datetime, data: dict[str, Any]) -> str:
    """The JSON document of one event, as signed and sent (compact, keys sorted)."""
    document = {"id": str(event_id), "event": event, "at": at.astimezone(UTC).isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str)


def event_emit(*, event: str, data: dict[str, Any]) -> list[int]:
    """One delivery per active endpoint subscribed to ``event``, sent after commit; their ids."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    # A handful of endpoints: filtered here, the same on SQLite and PostgreSQL (no JSON lookups).
    endpoints = [e for e in WebhookEndpoint.objects.filter(active=True) if event in e.events]
    if not endpoints:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    body = event_body(event_id=event_id, event=event, at=now, data=data)
    ids = [
        WebhookDelivery.objects.create(
            endpoint=e, event_id=event_id, event=event, body=body, next_attempt_at=now + requeue_after()
        ).pk
        for e in endpoints
    ]
    transaction.on_commit(lambda: deliveries_publish(due=[(pk, 0) for pk in ids]))
    return ids


def deliveries_publish(*, due: list[tuple[int, int]]) -> int:
    """Ask the webhooks worker to attempt each (delivery id, attempts so far); how many were asked.

    A hint, like a nudge: with the broker down this costs one bounded attempt and a log line, and
    the sweep asks again later.
    """
    if not due:
        return 0
    try:
        with app.connection_for_write(
            connect_timeout=PUBLISH_TIMEOUT_SECONDS, transport_options=_PUBLISH_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=PUBLISH_TIMEOUT_SECONDS)
            producer = conn.Producer()
            for delivery_id, attempts in due:
                app.send_task(
                    DELIVER_TASK, kwargs={"delivery_id": delivery_id, "attempt": attempts},
                    queue=WEBHOOKS_QUEUE, producer=producer, retry=False,
                )
    except Exception as exc:  # the broker is down, unreachable or hung
        log.warning("could not queue %d webhook deliveries (%s); the webhooks worker sends them later", len(due), exc)
        return 0
    return len(due)


# --- the emitters: one line at each source --------------------------------------------------
def _package(package: ExtensionPackage, node: str, by: str) -> dict[str, Any]:
    return {"name": package.name, "version": package.version, "checksum": package.sha256, "node": node, "by": by}


def packages_imported(*, packages: list[ExtensionPackage], node: str, by: str) -> None:
    """In the import's transaction (``extadmin.importing``): one event per package (a bundle's in order)."""
    for package in packages:
        event_emit(event="package.imported", data=_package(package, node, by))


def package_removed(*, package: ExtensionPackage, node: str, by: str) -> None:
    """In the removal's transaction (``extadmin.removal``)."""
    event_emit(event="package.removed", data=_package(package, node, by))


def sync_switched(*, paused: bool, by: str, reason: str = "") -> None:
    """In the pause's or resume's transaction (``nodes.cluster``); a pause says why."""
    data: dict[str, object] = {"paused": paused, "by": by}
    if paused:
        data["reason"] = reason
    event_emit(event="sync.paused" if paused else "sync.resumed", data=data)
