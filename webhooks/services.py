"""Writes about webhooks: endpoints (create, update, delete), and each delivery's attempts.

Every door (the console's page, ``/api/webhooks/``, ``add_webhook``) calls these and refuses with
the same words. A secret is written here and read only to sign: no document, page or log line
shows it after creation (``WebhookEndpoint.secret_hint`` at most).

A delivery's life (``WebhookDelivery.Status``): ``pending`` → claimed (``sending``, attempts + 1,
by a conditional UPDATE: of two workers holding the same message one sends) → ``delivered``, or
back to ``pending`` with ``next_attempt_at`` after an exponential backoff, or ``failed`` after
``EXTADMIN_WEBHOOK_MAX_ATTEMPTS``. The time of the next attempt is in the row, not in a broker
message: the worker's sweep (``deliveries_due``) asks for every delivery that is due, so a broker
restart loses none.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from extadmin.packaging import Refusal, Unknown
from extadmin.packaging.errors import shown
from webhooks.events import EVENTS, deliveries_publish, requeue_after
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import SIGNATURE_HEADER, Answer, post, signature

log = logging.getLogger(__name__)

STEP = "webhook"
MIN_SECRET = 16
MAX_BACKOFF_SECONDS = 3600.0
# How long past its timeout an attempt may still be running before the sweep takes it back.
CLAIM_GRACE = timedelta(seconds=30)
Status = WebhookDelivery.Status


# --- endpoints --------------------------------------------------------------------------------
def _url_check(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if any(c.isspace() or ord(c) < 32 for c in url) or len(url) > 2000:
        raise Refusal(STEP, "the url must be one address of at most 2000 characters, without spaces")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise Refusal(STEP, f"the url must start with http:// or https:// and name a host, not '{shown(url)}'")
    if parts.username or parts.password:
        # It would be shown on every page: the signature, not the address, is what authenticates.
        raise Refusal(STEP, "the url must not carry a user name or password; the signature authenticates extadmin")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise Refusal(STEP, f"the url's port is not a number: '{shown(url)}'") from None
    return url


def events_check(events: Iterable[str]) -> list[str]:
    """The event names, in the order given, each once; refused when empty or unknown."""
    chosen = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise Refusal(STEP, f"unknown event '{shown(unknown[0])}'; the events are {', '.join(EVENTS)}")
    if not chosen:
        raise Refusal(STEP, f"choose at least one event: {', '.join(EVENTS)}")
    return chosen


def _secret_check(secret: str) -> str:
    if len(secret) < MIN_SECRET or len(secret) > 256 or any(c.isspace() or ord(c) < 32 for c in secret):
        raise Refusal(
            STEP, f"the secret must be {MIN_SECRET} to 256 characters without spaces; leave it out to generate one"
        )
    return secret


def endpoint_create(
    *, url: str, events: Iterable[str], secret: str | None = None, description: str = "", by: str = ""
) -> tuple[WebhookEndpoint, str | None]:
    """A new endpoint; with no secret given one is generated and returned, to be shown this once."""
    generated = None if secret else secrets.token_urlsafe(32)
    events = events_check(events)
    endpoint = WebhookEndpoint.objects.create(
        url=_url_check(url), events=events, secret=_secret_check(secret or generated or ""),
        description=description.strip()[:200], created_by=by,
    )
    log.info("webhook endpoint %s added by %s: %s for %s", endpoint.pk, by or "?", endpoint.url, ",".join(events))
    return endpoint, generated


def endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Unknown("lookup", f"no webhook endpoint {endpoint_id}")
    return endpoint


def endpoint_update(
    *, endpoint_id: int, url: str, events: Iterable[str], description: str, active: bool, secret: str | None = None
) -> WebhookEndpoint:
    """Change an endpoint; its secret only when a new one is given."""
    endpoint = endpoint_get(endpoint_id=endpoint_id)
    endpoint.url, endpoint.events = _url_check(url), events_check(events)
    endpoint.description, endpoint.active = description.strip()[:200], active
    if secret:
        endpoint.secret = _secret_check(secret)
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint_id: int) -> WebhookEndpoint:
    """Delete an endpoint and its deliveries: nothing more is sent to it."""
    endpoint = endpoint_get(endpoint_id=endpoint_id)
    endpoint.delete()
    endpoint.pk = endpoint_id
    return endpoint


# --- deliveries -------------------------------------------------------------------------------
def delivery_resend(*, delivery_id: int) -> WebhookDelivery:
    """The same event again (same id and body, so a receiver can tell), as a new delivery with
    its own attempts; the old one keeps its history."""
    old = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if old is None:
        raise Unknown("lookup", f"no webhook delivery {delivery_id}")
    with transaction.atomic():
        new = WebhookDelivery.objects.create(
            endpoint=old.endpoint, event_id=old.event_id, event=old.event, body=old.body, resent_from=old,
            next_attempt_at=timezone.now() + requeue_after(),
        )
        transaction.on_commit(lambda: deliveries_publish(due=[(new.pk, 0)]))
    return new


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: EXTADMIN_WEBHOOK_BACKOFF × 2^(attempts-1), capped."""
    seconds = settings.EXTADMIN_WEBHOOK_BACKOFF * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


def delivery_attempt(*, delivery_id: int, attempt: int) -> WebhookDelivery | None:
    """Attempt number ``attempt + 1`` of a delivery, if it is still waiting for exactly that one.

    None when another worker claimed it first, or it was delivered, given up or deleted meanwhile.
    """
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, attempts=attempt, status=Status.PENDING).update(
        status=Status.SENDING, attempts=F("attempts") + 1, last_attempt_at=now,
        claimed_until=now + timedelta(seconds=settings.EXTADMIN_WEBHOOK_TIMEOUT) + CLAIM_GRACE,
    )
    if not claimed:
        return None  # another worker got there first, or there is nothing left to do
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None  # its endpoint was deleted meanwhile, and the delivery with it
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json", SIGNATURE_HEADER: signature(secret=delivery.endpoint.secret, body=body),
        "X-Extadmin-Event": delivery.event, "X-Extadmin-Delivery": str(delivery.event_id),
    }
    answer = post(url=delivery.endpoint.url, body=body, headers=headers, timeout=settings.EXTADMIN_WEBHOOK_TIMEOUT)
    return _record(delivery, answer)


def _record(delivery: WebhookDelivery, answer: Answer) -> WebhookDelivery:
    now = timezone.now()
    fields: dict[str, object] = {"last_status_code": answer.status, "last_error": answer.error, "claimed_until": None}
    if answer.delivered:
        fields.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif delivery.attempts >= settings.EXTADMIN_WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=Status.FAILED, next_attempt_at=None)
    else:
        fields.update(status=Status.PENDING, next_attempt_at=now + backoff(delivery.attempts))
    WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING, attempts=delivery.attempts).update(**fields)
    log.log(
        logging.INFO if answer.delivered else logging.WARNING, "webhook %s %s to endpoint %s, attempt %d: %s",
        delivery.event, delivery.event_id, delivery.endpoint_id, delivery.attempts, answer.error or "delivered",
    )
    delivery.refresh_from_db()
    return delivery


def deliveries_due(*, limit: int = 200) -> list[tuple[int, int]]:
    """Deliveries to ask for now, as (id, attempts): due ones, and attempts a dead worker left.

    Each is pushed ``requeue_after`` into the future as it is taken (conditionally: of two
    sweeps one takes it), so a lost message is asked for again, and a queued one not every second.
    """
    now = timezone.now()
    _take_back_abandoned(now)
    rows = list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", "attempts", "next_attempt_at")[:limit]
    )
    later = now + requeue_after()
    taken = []
    for pk, attempts, at in rows:
        still = WebhookDelivery.objects.filter(pk=pk, status=Status.PENDING, attempts=attempts, next_attempt_at=at)
        if still.update(next_attempt_at=later):  # 0: another sweep took it, or a worker claimed it
            taken.append((pk, attempts))
    return taken


def _take_back_abandoned(now: datetime) -> None:
    """An attempt still ``sending`` past its claim: its worker died. It counted as an attempt."""
    abandoned = WebhookDelivery.objects.filter(status=Status.SENDING, claimed_until__lt=now)
    error = "the webhooks worker stopped during the attempt"
    abandoned.filter(attempts__gte=settings.EXTADMIN_WEBHOOK_MAX_ATTEMPTS).update(
        status=Status.FAILED, last_error=error, claimed_until=None, next_attempt_at=None
    )
    abandoned.update(status=Status.PENDING, last_error=error, claimed_until=None, next_attempt_at=now)
