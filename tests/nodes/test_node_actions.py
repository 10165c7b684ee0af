""""Sync now" and "retry now" for every node (``nodes.actions``): the node page's buttons and the API.

Each is one audited operation naming the node and who asked, then a nudge on the node's own queue
(the real broker: the message is read back from it). Permissions as the node's other actions, CSRF,
and POST-redirect-GET without JavaScript.
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from extadmin.celery import app as celery_app
from extadmin.models import Operation
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Unknown
from nodes.actions import node_retry, node_sync_now
from nodes.models import Node, SyncState
from nodes.services import node_queue
from tests.nodes.conftest import Importer
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db


def make_node(name: str, *, online: bool = True, failed: tuple[str, ...] = ()) -> Node:
    now = timezone.now()
    node = Node.objects.create(name=name, host="h", storage_path=f"/srv/{name}",
                               last_heartbeat=now if online else now - timedelta(hours=1))
    for package in failed:
        SyncState.objects.create(node=node, package_name=package, state="failed", error="health probe exit 1: no",
                                 desired_sha256="a" * 64, desired_version="2.0.0", failures=6, changed_at=now)
    return node


def nudges_for(name: str) -> list[dict]:
    """The nudges waiting on the node's own queue (read and removed)."""
    found = []
    with celery_app.connection_for_write() as conn:
        queue = conn.SimpleQueue(node_queue(name))
        try:
            while True:
                message = queue.get(timeout=0.5)
                found.append(message.payload)
                message.ack()
        except queue.Empty:
            pass
        finally:
            queue.close()
    return found


@pytest.fixture
def n(db) -> str:  # type: ignore[no-untyped-def]
    """A node name of this test only: nudges left on a queue by one test never reach another."""
    return f"n{uuid.uuid4().hex[:8]}"


@pytest.fixture
def operator(db) -> User:  # type: ignore[no-untyped-def]
    user = make_user("olga")
    user.groups.add(Group.objects.get(name="operator"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def browser(operator: User) -> Client:
    c = Client(enforce_csrf_checks=True)  # as a browser posts: the token from the page's form
    c.force_login(operator)
    return c


def csrf_post(c: Client, page: str, action: str, data: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    html = c.get(page).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None, "the page has a form with a CSRF token"
    return c.post(action, {"csrfmiddlewaretoken": token.group(1), **(data or {})})


# --- the services -------------------------------------------------------------------------------


def test_it_nudges_the_node_and_records_who_asked(n: str) -> None:
    make_node(n)
    acted = node_sync_now(name=n, actor=Actor(via="cli"))
    assert (acted.message, acted.nudged) == (f"node {n} syncs now", True)
    op = Operation.objects.get(kind="sync_now")
    assert (op.node, op.outcome, op.via, op.get_kind_display()) == (n, "succeeded", "cli", "sync now")
    [nudge] = nudges_for(n)
    assert nudge[1]["node_name"] == n


def test_it_refuses_to_sync_an_offline_or_unknown_node(n: str) -> None:
    make_node(n, online=False)
    with pytest.raises(Conflict) as offline:
        node_sync_now(name=n, actor=Actor())
    assert offline.value.reason == f"node {n} is offline: no agent runs to sync it; it syncs when its agent starts"
    with pytest.raises(Unknown) as unknown:
        node_sync_now(name="gh\x00st", actor=Actor())
    assert str(unknown.value) == "sync: no node named 'gh\\x00st'"
    assert not Operation.objects.exists() and nudges_for(n) == []


def test_it_keeps_a_retry_for_an_offline_node_until_its_agent_starts(n: str) -> None:
    make_node(n, online=False, failed=("Alpha",))
    acted = node_retry(name=n, actor=Actor())
    assert acted.message == f"node {n} retries Alpha when its agent starts: it is offline"
    assert SyncState.objects.get(package_name="Alpha").failures == 0 and nudges_for(n) == []


def test_it_retries_one_package_only_when_asked(n: str) -> None:
    make_node(n, failed=("Alpha", "Beta"))
    acted = node_retry(name=n, actor=Actor(), package="Beta")
    assert acted.packages == ["Beta"] and acted.message == f"node {n} retries Beta now"
    assert dict(SyncState.objects.values_list("package_name", "failures")) == {"Alpha": 6, "Beta": 0}
    assert Operation.objects.get(kind="retry").package_name == "Beta"
    nudges_for(n)


# --- the node page ------------------------------------------------------------------------------


def test_it_syncs_now_from_the_node_page_and_comes_back_to_it(browser: Client, n: str) -> None:
    make_node(n)
    response = csrf_post(browser, f"/nodes/{n}/", f"/nodes/{n}/sync/")
    assert (response.status_code, response["Location"]) == (302, f"/nodes/{n}/")
    page = browser.get(f"/nodes/{n}/").content.decode()
    assert f"Node {n} syncs now." in page
    op = Operation.objects.get(kind="sync_now")
    assert (op.node, op.username, op.via, op.remote_addr) == (n, "olga", "browser", "127.0.0.1")
    assert len(nudges_for(n)) == 1


def test_it_retries_now_from_the_node_page(browser: Client, n: str, import_package: Importer) -> None:
    import_package("Alpha", "2.0.0")  # a package of the database: its failure can be retried
    make_node(n, failed=("Alpha",))
    page = browser.get(f"/nodes/{n}/").content.decode()
    assert "Retry failed now (1)" in page and "gave up after 5 retries" in page
    response = csrf_post(browser, f"/nodes/{n}/", f"/nodes/{n}/retry/")
    assert response.status_code == 302
    assert f"Node {n} retries Alpha now." in browser.get(response["Location"]).content.decode()
    assert SyncState.objects.get(node__name=n, package_name="Alpha").failures == 0
    assert Operation.objects.get(kind="retry").username == "olga"
    nudges_for(n)


def test_it_shows_a_refusal_in_the_page_with_its_status(browser: Client, n: str) -> None:
    make_node(n, online=False)
    response = csrf_post(browser, f"/nodes/{n}/", f"/nodes/{n}/sync/")
    assert response.status_code == 409
    assert f"node {n} is offline: no agent runs to sync it" in response.content.decode()
    assert csrf_post(browser, f"/nodes/{n}/", f"/nodes/{n}/retry/").status_code == 409
    assert csrf_post(browser, f"/nodes/{n}/", "/nodes/ghost/sync/").status_code == 404


def test_it_refuses_the_actions_without_csrf_permission_or_login(operator: User, n: str) -> None:
    make_node(n, failed=("Alpha",))
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(operator)
    assert forged.post(f"/nodes/{n}/sync/").status_code == 403
    viewer = Client()
    viewer.force_login(make_user("vera"))
    assert viewer.post(f"/nodes/{n}/sync/").status_code == 403
    assert viewer.post(f"/nodes/{n}/retry/").status_code == 403
    page = viewer.get(f"/nodes/{n}/").content.decode()
    assert "Sync now" not in page and "Retry failed now" not in page
    anonymous = Client().post(f"/nodes/{n}/sync/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert browser_get_is_refused(operator, n)
    assert not Operation.objects.exists() and SyncState.objects.get().failures == 6


def browser_get_is_refused(user: User, n: str) -> bool:
    c = Client()
    c.force_login(user)
    return c.get(f"/nodes/{n}/sync/").status_code == 405


# --- the API -----------------------------------------------------------------------------------


def test_it_syncs_and_retries_through_the_api(operator: User, n: str) -> None:
    make_node(n, failed=("Alpha",))
    api = token_client(operator)
    body = api.post(f"/api/nodes/{n}/sync/").json()
    assert {k: body[k] for k in ("name", "action", "online", "nudged", "packages", "message")} == {
        "name": n, "action": "sync_now", "online": True, "nudged": True, "packages": [],
        "message": f"node {n} syncs now",
    }
    retried = api.post(f"/api/nodes/{n}/retry/", {"package": "Alpha"}, format="json")
    assert retried.status_code == 200 and retried.json()["packages"] == ["Alpha"]
    op = Operation.objects.get(kind="retry")
    assert (retried.json()["operation"], op.via, op.username) == (op.pk, "api", "olga")
    # Asked again before the node tried: still failed, so still retried (the same reset).
    assert api.post(f"/api/nodes/{n}/retry/", {"package": "Alpha"}, format="json").status_code == 200
    refused = api.post(f"/api/nodes/{n}/retry/", {"package": "Beta"}, format="json")
    assert refused.status_code == 409
    assert refused.json() == {"error": {
        "step": "retry", "reason": f"nothing to retry: no sync of Beta on node {n} failed",
    }}
    assert api.post("/api/nodes/ghost/sync/").json() == {"error": {"step": "sync", "reason": "no node named 'ghost'"}}
    assert api.post(f"/api/nodes/{n}/retry/", {"package": 3}, format="json").status_code == 400
    assert len(nudges_for(n)) == 3


def test_it_refuses_the_api_actions_without_permission(n: str) -> None:
    make_node(n, failed=("Alpha",))
    api = token_client(make_user("reader"))
    assert api.post(f"/api/nodes/{n}/sync/").status_code == 403
    assert api.post(f"/api/nodes/{n}/retry/").status_code == 403
    assert token_client(None).post(f"/api/nodes/{n}/sync/").status_code == 401
    assert not Operation.objects.exists()
