"""Endpoints, events and deliveries through the services, on the real database and a real receiver."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.removal import package_remove
from nodes.cluster import cluster_pause, cluster_resume
from tests.nodes.conftest import Importer
from tests.webhooks.conftest import SECRET, EndpointMaker
from tests.webhooks.receiver import Receiver
from webhooks.events import event_emit
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    backoff,
    deliveries_due,
    delivery_attempt,
    delivery_resend,
    endpoint_create,
)
from webhooks.signing import signature_valid

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


@pytest.mark.parametrize(
    ("url", "events", "secret", "reason"),
    [
        ("ftp://x/", ["sync.paused"], SECRET, "the url must start with http:// or https://"),
        ("http:///nohost", ["sync.paused"], SECRET, "the url must start with http:// or https://"),
        ("http://a b/", ["sync.paused"], SECRET, "without spaces"),
        ("http://u:p@host/", ["sync.paused"], SECRET, "must not carry a user name or password"),
        ("http://host:port/", ["sync.paused"], SECRET, "port is not a number"),
        ("http://host/", ["sync.bogus"], SECRET, "unknown event 'sync.bogus'"),
        ("http://host/", [], SECRET, "choose at least one event"),
        ("http://host/", ["sync.paused"], "short", "the secret must be 16 to 256 characters"),
        ("http://host/", ["sync.paused"], "x" * 15 + "\n", "the secret must be 16 to 256 characters"),
    ],
)
def test_it_refuses_an_endpoint_naming_why_and_writes_nothing(
    url: str, events: list[str], secret: str, reason: str
) -> None:
    with pytest.raises(Refusal) as refused:
        endpoint_create(url=url, events=events, secret=secret)
    assert refused.value.step == "webhook" and reason in refused.value.reason
    assert not WebhookEndpoint.objects.exists()


def test_it_generates_a_secret_when_none_is_given() -> None:
    endpoint, generated = endpoint_create(url="https://example.com/h", events=["sync.paused", "sync.paused"])
    assert generated and len(generated) >= 32 and endpoint.secret == generated
    assert endpoint.events == ["sync.paused"]
    assert endpoint.secret_hint == f"…{generated[-4:]}"


def test_it_emits_to_the_subscribed_active_endpoints_only_after_commit(
    endpoint: EndpointMaker, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    wanted = endpoint("sync.paused")
    endpoint("package.imported")
    WebhookEndpoint.objects.filter(pk=endpoint("sync.paused").pk).update(active=False)
    with django_capture_on_commit_callbacks() as published:
        [pk] = event_emit(event="sync.paused", data={"by": "x"})
    assert len(published) == 1  # the publish waits for the commit
    delivery = WebhookDelivery.objects.get(pk=pk)
    assert delivery.endpoint == wanted and delivery.status == Status.PENDING and delivery.attempts == 0
    document = json.loads(delivery.body)
    assert set(document) == {"id", "event", "at", "data"}
    assert document["event"] == "sync.paused" and document["id"] == str(delivery.event_id)


def test_it_emits_nothing_when_the_transaction_rolls_back(endpoint: EndpointMaker) -> None:
    endpoint("sync.paused")
    with pytest.raises(RuntimeError), transaction.atomic():
        event_emit(event="sync.paused", data={})
        raise RuntimeError("rolled back")
    assert not WebhookDelivery.objects.exists()


def test_it_delivers_a_signed_body_that_verifies(endpoint: EndpointMaker, receiver: Receiver) -> None:
    endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={"by": "x"})
    delivery = delivery_attempt(delivery_id=pk, attempt=0)
    assert delivery is not None and delivery.status == Status.DELIVERED and delivery.attempts == 1
    [got] = receiver.requests
    assert got.body == delivery.body.encode()
    assert signature_valid(secret=SECRET, body=got.body, header=got.headers["X-Extadmin-Signature"])
    assert got.headers["X-Extadmin-Event"] == "sync.paused"
    assert delivery_attempt(delivery_id=pk, attempt=0) is None  # a second message of that attempt: nothing sent
    assert len(receiver.requests) == 1


def test_it_retries_with_exponential_backoff_and_gives_up_after_the_last_attempt(
    endpoint: EndpointMaker, receiver: Receiver, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_WEBHOOK_MAX_ATTEMPTS, settings.EXTADMIN_WEBHOOK_BACKOFF = 3, 10
    endpoint("sync.paused")
    receiver.fail(500, 503, 500)
    [pk] = event_emit(event="sync.paused", data={})
    first = delivery_attempt(delivery_id=pk, attempt=0)
    assert first is not None and (first.status, first.attempts, first.last_status_code) == (Status.PENDING, 1, 500)
    assert first.last_error == "HTTP 500 Internal Server Error"
    assert first.next_attempt_at
    assert abs(first.next_attempt_at - timezone.now() - timedelta(seconds=10)) < timedelta(seconds=2)
    second = delivery_attempt(delivery_id=pk, attempt=1)
    assert second is not None and second.attempts == 2 and second.last_status_code == 503
    assert backoff(2) == timedelta(seconds=20) and backoff(30) == timedelta(hours=1)
    third = delivery_attempt(delivery_id=pk, attempt=2)
    assert third is not None and (third.status, third.attempts, third.next_attempt_at) == (Status.FAILED, 3, None)
    assert len(receiver.requests) == 3


def test_the_sweep_asks_for_due_deliveries_once_and_takes_back_abandoned_attempts(
    endpoint: EndpointMaker,
) -> None:
    endpoint("sync.paused")
    [due, abandoned, later] = [event_emit(event="sync.paused", data={})[0] for _ in range(3)]
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=due).update(next_attempt_at=now - timedelta(seconds=1), attempts=1)
    WebhookDelivery.objects.filter(pk=abandoned).update(
        status=Status.SENDING, attempts=2, claimed_until=now - timedelta(seconds=1)
    )
    assert sorted(deliveries_due()) == sorted([(due, 1), (abandoned, 2)])
    assert deliveries_due() == []  # asked for: not again until requeue_after
    back = WebhookDelivery.objects.get(pk=abandoned)
    assert back.status == Status.PENDING and back.last_error == "the webhooks worker stopped during the attempt"
    assert WebhookDelivery.objects.get(pk=later).status == Status.PENDING


def test_it_resends_the_same_event_as_a_new_delivery(endpoint: EndpointMaker, receiver: Receiver) -> None:
    endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={})
    delivery_attempt(delivery_id=pk, attempt=0)
    again = delivery_resend(delivery_id=pk)
    assert again.pk != pk and again.resent_from_id == pk and again.status == Status.PENDING
    delivery_attempt(delivery_id=again.pk, attempt=0)
    first, second = receiver.requests
    assert first.body == second.body  # the same event: its id tells the receiver it is a repeat
    with pytest.raises(Refusal, match="no webhook delivery 999999"):
        delivery_resend(delivery_id=999999)


def test_the_import_the_removal_and_the_pause_emit_their_events(
    endpoint: EndpointMaker, import_package: Importer
) -> None:
    endpoint("package.imported", "package.removed", "sync.paused", "sync.resumed")
    alpha = import_package("Alpha")
    package_remove(name="Alpha")
    cluster_pause(actor=Actor(via="cli"))
    cluster_resume(actor=Actor(via="cli"))
    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.order_by("id")]
    assert [b["event"] for b in bodies] == ["package.imported", "package.removed", "sync.paused", "sync.resumed"]
    assert bodies[0]["data"] == {"name": "Alpha", "version": "1.0.0", "checksum": alpha.sha256, "node": "web", "by": ""}
    assert bodies[1]["data"]["name"] == "Alpha"


def test_a_refused_import_emits_nothing(endpoint: EndpointMaker, import_package: Importer) -> None:
    endpoint("package.imported")
    import_package("Alpha", "2.0.0")
    with pytest.raises(Refusal):
        import_package("Alpha", "1.0.0")  # a downgrade
    assert WebhookDelivery.objects.count() == 1


def test_the_documented_verification_snippet_verifies_a_real_delivery(
    endpoint: EndpointMaker, receiver: Receiver
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", doc, re.S) if "def extadmin_" in block)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 (our own documentation)
    endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={})
    delivery_attempt(delivery_id=pk, attempt=0)
    [got] = receiver.requests
    header = got.headers["X-Extadmin-Signature"]
    assert namespace["extadmin_signature_valid"](SECRET, got.body, header)
    assert not namespace["extadmin_signature_valid"]("another-secret-of-length", got.body, header)
