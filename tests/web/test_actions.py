"""Acting where you look: pause and resume syncing (who, when, why) from the console, forgetting a
node from the dashboard cell, and the same sentence and refusals through the console, API and CLI."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extadmin.models import ExtensionPackage, Operation
from nodes.models import ClusterSettings, Node, SyncState
from tests.processes import run_command
from tests.semantics.support import make_user, token_client
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

TOO_LONG = "x" * 201
TOO_LONG_WORDS = "pause: the reason is 201 characters long; at most 200 fit"
DENIED = "permission: you may not pause or resume syncing: it needs the permission nodes.change_clustersettings"
SENTENCE = re.compile(r"Syncing paused by alice at \d\d:\d\d \(UTC\): bulk import")


@pytest.fixture
def alice() -> User:
    # change_node: sync now and retry now (the node page's actions)
    return make_user("alice", "nodes.change_clustersettings", "nodes.delete_node", "nodes.change_node")


def browser_for(user: User, **kwargs: bool) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def csrf_client(user: User) -> tuple[Client, str]:
    """A browser that sends CSRF tokens only when told to, and its token (from a page it loaded)."""
    client = browser_for(user, enforce_csrf_checks=True)
    assert client.get("/").status_code == 200
    return client, client.cookies["csrftoken"].value


def paused() -> bool:
    return ClusterSettings.objects.filter(pk=1, sync_paused=True).exists()


def test_it_pauses_with_a_reason_and_redirects_back_with_the_sentence(alice: User) -> None:
    client, token = csrf_client(alice)
    response = client.post(
        "/cluster/pause/", {"csrfmiddlewaretoken": token, "reason": "  bulk\n import ", "next": "/nodes/"},
        REMOTE_ADDR="192.0.2.7",
    )
    assert (response.status_code, response["Location"]) == (302, "/nodes/")
    row = ClusterSettings.objects.get(pk=1)
    assert (row.sync_paused, row.paused_by, row.paused_reason) == (True, alice, "bulk import")
    op = Operation.objects.get(kind="pause")
    assert (op.username, op.via, op.remote_addr, op.reason, op.outcome) == (
        "alice", "browser", "192.0.2.7", "bulk import", "succeeded"
    )
    page = client.get("/nodes/").content.decode()
    assert SENTENCE.search(page), page  # the message after the redirect, and the banner
    assert 'action="/cluster/resume/"' in page


def test_it_shows_the_pause_on_every_page_s_banner(alice: User, imported: Callable[..., ExtensionPackage]) -> None:
    imported("Shown")
    client, token = csrf_client(alice)
    client.post("/cluster/pause/", {"csrfmiddlewaretoken": token, "reason": "bulk import"})
    viewer = browser_for(make_user("reader"))
    for url in ["/", "/nodes/", "/nodes/web/", "/extensions/Shown/", "/operations/", "/webhooks/"]:
        page = viewer.get(url).content.decode()
        banner = page[page.index('class="sync-banner"'):]
        assert SENTENCE.search(banner[:600]), url
        assert 'action="/cluster/resume/"' not in page, f"{url}: a reader is offered Resume"
        assert 'action="/cluster/pause/"' not in page
    assert 'action="/cluster/resume/"' in client.get("/operations/").content.decode()


def test_it_offers_pausing_on_the_dashboard_node_and_package_pages_only_to_who_may(
    alice: User, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("Offered")
    for url in ["/", "/nodes/web/", "/extensions/Offered/"]:
        assert 'action="/cluster/pause/"' in browser_for(alice).get(url).content.decode(), url
        assert 'action="/cluster/pause/"' not in browser_for(make_user(f"r{len(url)}")).get(url).content.decode()
    assert "sync-banner" not in browser_for(alice).get("/").content.decode()  # not paused: no banner


def test_it_refuses_a_reader_in_the_api_s_words_and_writes_nothing() -> None:
    reader = make_user("reader")
    client, token = csrf_client(reader)
    for url in ["/cluster/pause/", "/cluster/resume/"]:
        response = client.post(url, {"csrfmiddlewaretoken": token, "reason": "mine"})
        assert response.status_code == 403
        assert DENIED in response.content.decode()
    api = token_client(reader).post("/api/cluster/pause/", {"reason": "mine"}, format="json")
    assert api.status_code == 403
    assert api.json() == {"error": dict(zip(["step", "reason"], DENIED.split(": ", 1), strict=True))}
    assert not paused() and not Operation.objects.exists()


def test_it_refuses_a_post_without_its_csrf_token(alice: User) -> None:
    client, _ = csrf_client(alice)
    assert client.post("/cluster/pause/", {"reason": "no token"}).status_code == 403
    assert not paused() and not Operation.objects.exists()
    ClusterSettings.objects.create(pk=1, sync_paused=True)
    assert client.post("/cluster/resume/").status_code == 403
    assert paused()


def test_it_answers_only_posts(alice: User) -> None:
    assert browser_for(alice).get("/cluster/pause/").status_code == 405
    assert not paused()


def test_it_refuses_a_too_long_reason_in_the_same_words_everywhere(alice: User) -> None:
    client, token = csrf_client(alice)
    response = client.post("/cluster/pause/", {"csrfmiddlewaretoken": token, "reason": TOO_LONG}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert TOO_LONG_WORDS in response.content.decode()
    api = token_client(alice).post("/api/cluster/pause/", {"reason": TOO_LONG}, format="json")
    step, reason = TOO_LONG_WORDS.split(": ", 1)
    assert (api.status_code, api.json()) == (400, {"error": {"step": step, "reason": reason}})
    code, _, err = run_command("sync_pause", "--reason", TOO_LONG)
    assert (code, err.strip()) == (1, f"error: {TOO_LONG_WORDS}")
    assert not paused() and not Operation.objects.exists()


def test_it_resumes_from_the_banner(alice: User) -> None:
    client, token = csrf_client(alice)
    client.post("/cluster/pause/", {"csrfmiddlewaretoken": token, "reason": "bulk import"})
    response = client.post("/cluster/resume/", {"csrfmiddlewaretoken": token, "next": "/operations/"}, follow=True)
    assert response.redirect_chain == [("/operations/", 302)]
    page = response.content.decode()
    assert "Syncing resumed; every node was asked to sync now." in page
    assert "sync-banner" not in page
    row = ClusterSettings.objects.get(pk=1)
    assert (row.sync_paused, row.paused_by, row.paused_reason) == (False, None, "")
    assert list(Operation.objects.order_by("id").values_list("kind", "via", "username")) == [
        ("pause", "browser", "alice"), ("resume", "browser", "alice")
    ]


def test_it_never_redirects_to_another_site(alice: User) -> None:
    client, token = csrf_client(alice)
    for target in ["https://evil.example/", "//evil.example/x"]:
        response = client.post("/cluster/resume/", {"csrfmiddlewaretoken": token, "next": target})
        assert response["Location"] == "/"


def test_it_says_who_paused_when_and_why_in_the_api_and_the_cli(alice: User) -> None:
    body = token_client(alice).post("/api/cluster/pause/", {"reason": "bulk import"}, format="json").json()
    assert (body["paused_by"], body["paused_reason"]) == ("alice", "bulk import")
    assert SENTENCE.fullmatch(body["text"])
    sync = token_client(alice).get("/api/cluster/").json()["sync"]
    assert (sync["paused"], sync["paused_by"], sync["paused_reason"]) == (True, "alice", "bulk import")
    assert SENTENCE.fullmatch(sync["text"])
    code, out, _ = run_command("cluster_status")
    assert code == 0 and SENTENCE.match(out.splitlines()[0])
    code, out, _ = run_command("cluster_status", "--json")
    assert json.loads(out)["sync"] == sync
    assert Operation.objects.get(kind="pause").reason == "bulk import"


def test_it_pauses_through_the_cli_with_a_reason() -> None:
    code, out, _ = run_command("sync_pause", "--reason", "bulk import", "--json")
    assert code == 0
    body = json.loads(out)
    assert (body["sync_paused"], body["paused_reason"], body["paused_by"]) == (True, "bulk import", None)
    assert re.fullmatch(r"Syncing paused at \d\d:\d\d \(UTC\): bulk import", body["text"])
    assert Operation.objects.get(kind="pause").reason == "bulk import"


def test_it_links_a_cell_that_is_not_converged_to_its_action(
    alice: User, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("Cells")
    now = timezone.now()
    bad = Node.objects.create(name="bad", last_heartbeat=now)
    SyncState.objects.create(node=bad, package_name="Cells", state="failed", error="disk full", changed_at=now)
    Node.objects.create(name="gone", last_heartbeat=now - timedelta(hours=1))
    page = browser_for(alice).get("/").content.decode()
    cell = {n: re.findall(rf'<td class="cell[^"]*" data-package="Cells" data-node="{n}".*?</td>', page, re.S)[0]
            for n in ["web", "bad", "gone"]}
    assert 'href="/nodes/bad/#actions">retry…</a>' in cell["bad"]
    assert 'href="/nodes/gone/forget/">forget node…</a>' in cell["gone"]
    assert 'class="act"' not in cell["web"]  # converged: nothing to do
    package_page = browser_for(alice).get("/extensions/Cells/").content.decode()
    row = {n: re.findall(rf'<tr data-node="{n}".*?</tr>', package_page, re.S)[0] for n in ["web", "bad", "gone"]}
    assert 'href="/nodes/bad/#actions">retry…</a>' in row["bad"]
    assert 'href="/nodes/gone/forget/">forget node…</a>' in row["gone"]
    assert 'class="act"' not in row["web"]
    shown_to_reader = browser_for(make_user("reader")).get("/").content.decode()
    assert 'href="/nodes/gone/forget/"' not in shown_to_reader and 'href="/nodes/bad/#actions"' not in shown_to_reader
    node_page = browser_for(alice).get("/nodes/gone/").content.decode()
    actions = node_page[node_page.index('id="actions"'):]
    assert 'href="/nodes/gone/forget/"' in actions[:1500]
    assert 'action="/cluster/pause/"' in actions[:1500]


def test_it_forgets_the_node_a_cell_links_to_and_audits_it(alice: User) -> None:
    Node.objects.create(name="gone", last_heartbeat=timezone.now() - timedelta(hours=1))
    client, token = csrf_client(alice)
    assert client.post("/nodes/gone/forget/").status_code == 403, "CSRF"
    response = client.post("/nodes/gone/forget/", {"csrfmiddlewaretoken": token}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Node gone was forgotten" in response.content.decode()
    assert not Node.objects.filter(name="gone").exists()
    op = Operation.objects.get(kind="forget_node")
    assert (op.node, op.username, op.via) == ("gone", "alice", "browser")
    reader = browser_for(make_user("reader"))
    Node.objects.create(name="kept", last_heartbeat=timezone.now() - timedelta(hours=1))
    assert reader.post("/nodes/kept/forget/").status_code == 403
    assert Node.objects.filter(name="kept").exists()


def test_it_tells_the_webhooks_why_syncing_was_paused(alice: User) -> None:
    hook, _ = endpoint_create(url="https://hooks.example/x", events=["sync.paused", "sync.resumed"], secret="s" * 32)
    client, token = csrf_client(alice)
    client.post("/cluster/pause/", {"csrfmiddlewaretoken": token, "reason": "bulk import"})
    client.post("/cluster/resume/", {"csrfmiddlewaretoken": token})
    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.filter(endpoint=hook).order_by("id")]
    assert [(b["event"], b["data"]) for b in bodies] == [
        ("sync.paused", {"paused": True, "by": "alice", "reason": "bulk import"}),
        ("sync.resumed", {"paused": False, "by": "alice"}),
    ]
