"""The three doors onto the webhook services: the console's page, ``/api/webhooks/``, the commands.

The same refusal words through each; the secret never in any answer after creation; every action
needs its permission, and the page's forms their CSRF token.
"""
from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.processes import run_command
from tests.semantics.support import make_user, token_client
from tests.webhooks.conftest import SECRET, EndpointMaker
from webhooks.events import event_emit
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import delivery_attempt

pytestmark = pytest.mark.django_db
MANAGE = ("webhooks.add_webhookendpoint", "webhooks.change_webhookendpoint", "webhooks.delete_webhookendpoint")
REFUSED = "webhook: unknown event 'nope'; the events are package.imported"


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("hooks", *MANAGE)


@pytest.fixture
def page(admin_user: User) -> Client:
    """The browser, with CSRF checked as in production."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    return client


def csrf(client: Client, url: str = "/webhooks/") -> str:
    html = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


# --- API --------------------------------------------------------------------------------------
def test_the_api_creates_lists_reads_and_deletes_without_ever_answering_the_secret(admin_user: User) -> None:
    api = token_client(admin_user)
    created = api.post("/api/webhooks/", {"url": "https://example.com/h", "events": ["sync.paused"],
                                          "secret": SECRET}, format="json")
    assert created.status_code == 201, created.content
    doc = created.json()
    assert doc["secret_hint"] == "…" + SECRET[-4:] and "secret" not in doc
    listed, one = api.get("/api/webhooks/"), api.get(f"/api/webhooks/{doc['id']}/")
    assert [e["url"] for e in listed.json()] == ["https://example.com/h"] and one.json()["deliveries"] == []
    for answer in (created, listed, one):
        assert SECRET not in answer.content.decode()
    assert api.delete(f"/api/webhooks/{doc['id']}/").json()["deleted"] is True
    assert api.get(f"/api/webhooks/{doc['id']}/").status_code == 404


def test_the_api_shows_a_generated_secret_once(admin_user: User) -> None:
    api = token_client(admin_user)
    doc = api.post("/api/webhooks/", {"url": "https://e.com/", "events": "sync.paused,sync.resumed"},
                   format="json").json()
    assert len(doc["secret"]) >= 32 and doc["events"] == ["sync.paused", "sync.resumed"]
    assert doc["secret"] not in api.get(f"/api/webhooks/{doc['id']}/").content.decode()


def test_the_api_refuses_in_the_same_words_and_writes_nothing(admin_user: User) -> None:
    answer = token_client(admin_user).post(
        "/api/webhooks/", {"url": "https://e.com/", "events": ["nope"], "secret": SECRET}, format="json"
    )
    assert answer.status_code == 400
    assert f"{answer.json()['error']['step']}: {answer.json()['error']['reason']}".startswith(REFUSED)
    assert not WebhookEndpoint.objects.exists()


def test_the_api_needs_the_permissions(endpoint: EndpointMaker) -> None:
    e = endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={})
    reader = token_client(make_user("reader"))
    assert reader.get("/api/webhooks/").status_code == 200
    assert reader.post("/api/webhooks/", {"url": "https://e.com/", "events": ["sync.paused"]},
                       format="json").status_code == 403
    assert reader.delete(f"/api/webhooks/{e.pk}/").status_code == 403
    assert reader.post(f"/api/webhooks/deliveries/{pk}/resend/").status_code == 403
    assert token_client(None).get("/api/webhooks/").status_code == 401


def test_the_api_lists_deliveries_with_their_attempts_and_resends_one(
    admin_user: User, endpoint: EndpointMaker, receiver
) -> None:  # type: ignore[no-untyped-def]
    e = endpoint("sync.paused")
    receiver.fail(500)
    [pk] = event_emit(event="sync.paused", data={})
    delivery_attempt(delivery_id=pk, attempt=0)
    api = token_client(admin_user)
    [d] = api.get(f"/api/webhooks/deliveries/?endpoint={e.pk}").json()
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
        "pending", 1, 500, "HTTP 500 Internal Server Error"
    )
    assert d["next_attempt_at"] is not None and d["max_attempts"] == 5
    again = api.post(f"/api/webhooks/deliveries/{pk}/resend/")
    assert again.status_code == 202 and again.json()["resent_from"] == pk
    assert api.post("/api/webhooks/deliveries/999999/resend/").status_code == 404
    assert api.get("/api/webhooks/deliveries/?limit=x").status_code == 400


# --- the page ---------------------------------------------------------------------------------
def test_the_page_adds_edits_and_deletes_an_endpoint_with_csrf(page: Client) -> None:
    token = csrf(page)
    assert page.post("/webhooks/add/", {"url": "https://e.com/h", "events": ["node.failed"]}).status_code == 403
    shown = page.post("/webhooks/add/", {"url": "https://e.com/h", "events": ["node.failed", "node.offline"],
                                         "csrfmiddlewaretoken": token})
    endpoint = WebhookEndpoint.objects.get()
    assert shown.status_code == 200 and endpoint.secret in shown.content.decode()  # generated: shown this once
    listing = page.get("/webhooks/").content.decode()
    assert "https://e.com/h" in listing and endpoint.secret not in listing and endpoint.secret_hint in listing
    edit = page.get(f"/webhooks/{endpoint.pk}/edit/").content.decode()
    assert endpoint.secret not in edit
    saved = page.post(f"/webhooks/{endpoint.pk}/edit/", {
        "url": "https://e.com/new", "events": ["sync.paused"], "active": "on", "secret": SECRET,
        "csrfmiddlewaretoken": token})
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.secret) == ("https://e.com/new", ["sync.paused"], SECRET)
    assert page.post(f"/webhooks/{endpoint.pk}/delete/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_the_page_refuses_in_the_same_words(page: Client) -> None:
    answer = page.post("/webhooks/add/", {"url": "https://e.com/", "events": ["nope"], "secret": SECRET,
                                          "csrfmiddlewaretoken": csrf(page)})
    assert answer.status_code == 400
    html = answer.content.decode()
    assert "<strong>webhook</strong>: unknown event &#x27;nope&#x27;" in html
    assert SECRET not in html  # the refused form is shown again, its secret field empty
    assert not WebhookEndpoint.objects.exists()


def test_the_page_shows_deliveries_and_resends_one(page: Client, endpoint: EndpointMaker, receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint("sync.paused")
    receiver.fail(500)
    [pk] = event_emit(event="sync.paused", data={})
    delivery_attempt(delivery_id=pk, attempt=0)
    html = page.get("/webhooks/").content.decode()
    assert f'data-delivery="{pk}" data-status="pending"' in html and 'data-attempts="1"' in html
    assert "HTTP 500" in html and SECRET not in html
    assert page.post(f"/webhooks/deliveries/{pk}/resend/", {"csrfmiddlewaretoken": csrf(page)}).status_code == 302
    assert WebhookDelivery.objects.filter(resent_from_id=pk).exists()


def test_the_page_needs_a_login_and_the_permissions(endpoint: EndpointMaker) -> None:
    e = endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={})
    assert Client().get("/webhooks/").status_code == 302  # to the login page
    viewer = Client()
    viewer.force_login(make_user("viewer"))
    html = viewer.get("/webhooks/").content.decode()
    assert "Add a webhook" not in html and "Resend" not in html
    assert viewer.post("/webhooks/add/", {"url": "https://e.com/", "events": ["sync.paused"]}).status_code == 403
    assert viewer.get(f"/webhooks/{e.pk}/edit/").status_code == 403
    assert viewer.post(f"/webhooks/{e.pk}/delete/").status_code == 403
    assert viewer.post(f"/webhooks/deliveries/{pk}/resend/").status_code == 403


# --- the commands -----------------------------------------------------------------------------
def test_the_commands_add_list_and_remove_without_showing_the_secret() -> None:
    code, out, _ = run_command("add_webhook", "https://e.com/h", "--events", "package.converged,node.failed",
                               "--secret", SECRET, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["events"] == ["package.converged", "node.failed"] and "secret" not in doc
    code, out, _ = run_command("list_webhooks")
    assert code == 0 and "https://e.com/h" in out and SECRET not in out and SECRET[-4:] in out
    code, out, _ = run_command("list_webhooks", "--json")
    assert SECRET not in out and json.loads(out)[0]["deliveries"] == []
    assert run_command("remove_webhook", str(doc["id"]))[:2] == (0, f"webhook {doc['id']} deleted: https://e.com/h\n")
    code, _, err = run_command("remove_webhook", str(doc["id"]))
    assert (code, err.strip()) == (1, f"error: lookup: no webhook endpoint {doc['id']}")


def test_the_command_refuses_in_the_same_words() -> None:
    code, _, err = run_command("add_webhook", "https://e.com/", "--events", "nope", "--secret", SECRET)
    assert code == 1 and err.startswith(f"error: {REFUSED}")
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_shows_endpoints_and_deliveries_but_never_the_secret(endpoint: EndpointMaker) -> None:
    e = endpoint("sync.paused")
    [pk] = event_emit(event="sync.paused", data={})
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=None))
    for url in ("/admin/webhooks/webhookendpoint/", f"/admin/webhooks/webhookendpoint/{e.pk}/change/",
                f"/admin/webhooks/webhookdelivery/{pk}/change/", "/admin/webhooks/webhookwatch/"):
        answer = admin.get(url)
        assert answer.status_code == 200, url
        assert SECRET not in answer.content.decode(), url


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "'url' must be a text and is required"),
        ({"url": 5, "events": ["sync.paused"]}, "'url' must be a text and is required"),
        ({"url": "https://e.com/\u0000", "events": ["sync.paused"]}, "the url must be one address"),
        ({"url": "https://e.com/", "events": {"a": 1}}, "'events' must be a list of event names"),
        ({"url": "https://e.com/", "events": ["sync.paused"], "secret": None}, "'secret' must be a text"),
    ],
)
def test_the_api_refuses_malformed_bodies_without_a_500(admin_user: User, body: object, reason: str) -> None:
    answer = token_client(admin_user).post("/api/webhooks/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["step"] == "webhook" and answer.json()["error"]["reason"].startswith(reason)
    assert not WebhookEndpoint.objects.exists()
