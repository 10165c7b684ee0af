"""Forgetting a node: ``forget_node``, ``DELETE /api/nodes/<name>/`` and the console's confirmation page.

One service behind every door: refused while the node is online unless forced, its rows removed
(its sync states and runs with it), one audit row; and every answer says that a forgotten node
whose agent still runs registers again at its next heartbeat.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from extadmin.models import Operation
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal, Unknown
from nodes.lease import lease_claim
from nodes.models import Node, SyncRun, SyncState
from nodes.services import RE_REGISTERS, node_forget, node_heartbeat
from tests.processes import ManagedProcess, child_env, run_command, wait_for
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db


def make_node(name: str, *, online: bool) -> Node:
    now = timezone.now()
    node = Node.objects.create(
        name=name, host="host-a", storage_path=f"/srv/{name}",
        last_heartbeat=now if online else now - timedelta(hours=1),
    )
    SyncState.objects.create(node=node, package_name="Alpha", state="installed", changed_at=now)
    SyncState.objects.create(node=node, package_name="Beta", state="failed", changed_at=now)
    SyncRun.objects.create(node=node, trigger="periodic", started_at=now)
    return node


@pytest.fixture
def keeper(db) -> Node:  # type: ignore[no-untyped-def]
    """Another node, which forgetting n1 must not touch."""
    return make_node("n2", online=True)


def assert_forgotten(name: str, keeper: Node) -> Operation:
    assert not Node.objects.filter(name=name).exists()
    assert not SyncState.objects.filter(node__name=name).exists()
    assert not SyncRun.objects.filter(node__name=name).exists()
    assert SyncState.objects.filter(node=keeper).count() == 2 and SyncRun.objects.filter(node=keeper).count() == 1
    operation = Operation.objects.get(kind="forget_node")
    assert (operation.node, operation.package_name, operation.outcome) == (name, "", "succeeded")
    return operation


def assert_untouched(name: str) -> None:
    assert Node.objects.filter(name=name).exists()
    assert SyncState.objects.filter(node__name=name).count() == 2
    assert not Operation.objects.filter(kind="forget_node").exists()


# --- the service --------------------------------------------------------------------------------


def test_it_forgets_an_offline_node_and_its_rows_in_one_audited_operation(keeper: Node) -> None:
    make_node("n1", online=False)
    forgotten = node_forget(name="n1", force=False, actor=Actor(via="cli"))
    assert (forgotten.was_online, forgotten.states, forgotten.runs) == (False, 2, 1)
    assert forgotten.as_dict()["note"] == RE_REGISTERS
    operation = assert_forgotten("n1", keeper)
    assert (operation.via, operation.warnings) == ("cli", "")


def test_it_refuses_to_forget_an_online_node_unless_forced(keeper: Node) -> None:
    make_node("n1", online=True)
    with pytest.raises(Conflict) as refused:
        node_forget(name="n1", force=False, actor=Actor())
    assert refused.value.step == "forget"
    assert "node n1 is online" in refused.value.reason and RE_REGISTERS in refused.value.reason
    assert_untouched("n1")

    forgotten = node_forget(name="n1", force=True, actor=Actor())
    assert forgotten.was_online
    assert assert_forgotten("n1", keeper).warnings == f"it was online: {RE_REGISTERS}"


def test_it_refuses_an_unknown_node(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unknown) as refused:
        node_forget(name="ghost", force=True, actor=Actor())
    assert (refused.value.status, str(refused.value)) == (404, "forget: no node named 'ghost'")
    assert not Operation.objects.exists()


def test_it_lets_a_forgotten_nodes_running_agent_register_again(keeper: Node) -> None:
    """What every answer warns of: the agent's heartbeat finds its row gone and registers it again."""
    make_node("n1", online=False)
    node_forget(name="n1", force=False, actor=Actor())
    assert node_heartbeat(name="n1") is False  # the agent's cue to register again (nodes.agent)


def test_it_ends_a_sync_waiting_for_the_lease_of_a_forgotten_node(keeper: Node) -> None:
    """Before: the claim found no row, claimed nothing and tried again at once, for ever."""
    node = make_node("n1", online=False)
    node_forget(name="n1", force=False, actor=Actor())
    with pytest.raises(Refusal) as refused:
        lease_claim(node=node)
    assert str(refused.value) == "sync: node n1 was forgotten; its next sync registers it again"


@pytest.mark.django_db(transaction=True)
def test_it_is_registered_again_by_its_running_agent_at_the_next_heartbeat(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """A real agent: refused while it runs; forced, its next heartbeat finds its row gone and registers again."""
    env = child_env(EXTADMIN_HEARTBEAT_INTERVAL="0.5", EXTADMIN_SYNC_INTERVAL="60", EXTADMIN_LOG_LEVEL="WARNING")
    agent = ManagedProcess(
        "run_node", "--name", "n1", "--storage", str(tmp_path / "storage" / "n1"), env=env, log=tmp_path / "n1.log"
    ).start()
    try:
        wait_for(lambda: Node.objects.filter(name="n1").exists(), timeout=60, what="the agent registers n1")
        code, _, err = run_command("forget_node", "n1")
        assert code == 1 and "node n1 is online" in err, agent.output()
        assert run_command("forget_node", "n1", "--force")[0] == 0
        wait_for(lambda: Node.objects.filter(name="n1").exists(), timeout=30, what="n1 registered again")
        assert Operation.objects.get(kind="forget_node").warnings == f"it was online: {RE_REGISTERS}"
    finally:
        agent.stop()


# --- the CLI ------------------------------------------------------------------------------------


def test_it_forgets_through_the_cli(keeper: Node) -> None:
    make_node("n1", online=False)
    code, out, err = run_command("forget_node", "n1")
    assert (code, err) == (0, "")
    assert out.strip() == f"forgot node n1 (2 package states, 1 sync runs); {RE_REGISTERS}"
    assert assert_forgotten("n1", keeper).via == "cli"


def test_it_refuses_an_online_node_through_the_cli_and_forces_it_as_json(keeper: Node) -> None:
    make_node("n1", online=True)
    code, _, err = run_command("forget_node", "n1")
    assert code == 1
    assert err.strip() == f"error: forget: node n1 is online; stop its agent first ({RE_REGISTERS}), or force it"
    assert_untouched("n1")

    code, out, _ = run_command("forget_node", "n1", "--force", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["was_online"] is True and document["forgotten"] is True
    assert_forgotten("n1", keeper)


def test_it_refuses_an_unknown_node_through_the_cli(db) -> None:  # type: ignore[no-untyped-def]
    assert run_command("forget_node", "ghost")[::2] == (1, "error: forget: no node named 'ghost'\n")


def test_it_refuses_a_name_no_node_can_have_through_the_cli(db) -> None:  # type: ignore[no-untyped-def]
    """A NUL: PostgreSQL refuses it in text, so it is never looked up (a database error before)."""
    assert run_command("forget_node", "a\x00b")[::2] == (1, "error: forget: no node named 'a\\x00b'\n")
    assert run_command("delete_extension", "a\x00b")[::2] == (
        1, "error: validate: no extension package named 'a\\x00b' is installed\n",
    )


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture
def forgetter(db) -> User:  # type: ignore[no-untyped-def]
    return make_user("forgetter", "nodes.delete_node")


def test_it_reads_a_node_through_the_api(keeper: Node) -> None:
    api = token_client(make_user("reader"))
    body = api.get("/api/nodes/n2/").json()
    assert body == {
        "name": "n2", "online": True, "last_seen": body["last_seen"], "host": "host-a", "storage": "/srv/n2",
    }
    assert body["last_seen"] is not None
    missing = api.get("/api/nodes/ghost/")
    assert missing.status_code == 404 and missing.json()["error"]["step"] == "lookup"


def test_it_forgets_through_the_api(forgetter: User, keeper: Node) -> None:
    make_node("n1", online=False)
    response = token_client(forgetter).delete("/api/nodes/n1/")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("name", "forgotten", "was_online", "states", "runs", "note")} == {
        "name": "n1", "forgotten": True, "was_online": False, "states": 2, "runs": 1, "note": RE_REGISTERS,
    }
    operation = assert_forgotten("n1", keeper)
    assert (body["operation"], operation.via, operation.username) == (operation.pk, "api", "forgetter")


def test_it_answers_409_for_an_online_node_and_forgets_it_with_force(forgetter: User, keeper: Node) -> None:
    make_node("n1", online=True)
    api = token_client(forgetter)
    refused = api.delete("/api/nodes/n1/")
    assert refused.status_code == 409
    assert refused.json()["error"]["step"] == "forget" and RE_REGISTERS in refused.json()["error"]["reason"]
    assert_untouched("n1")
    assert api.delete("/api/nodes/n1/?force=true").json()["was_online"] is True
    assert_forgotten("n1", keeper)


def test_it_answers_404_for_an_unknown_node_through_the_api(forgetter: User) -> None:
    response = token_client(forgetter).delete("/api/nodes/ghost/")
    assert response.status_code == 404
    assert response.json() == {"error": {"step": "forget", "reason": "no node named 'ghost'"}}


def test_it_refuses_to_forget_through_the_api_without_the_permission(keeper: Node) -> None:
    make_node("n1", online=False)
    assert APIClient().delete("/api/nodes/n1/").status_code == 401
    operator = make_user("operator", "extadmin.add_extensionpackage", "extadmin.delete_extensionpackage")
    response = token_client(operator).delete("/api/nodes/n1/")
    assert response.status_code == 403 and response.json()["error"]["step"] == "permission"
    assert_untouched("n1")


def test_it_describes_the_node_endpoints_in_the_schema(forgetter: User) -> None:
    schema = token_client(forgetter).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    node = schema["paths"]["/api/nodes/{name}/"]
    assert set(node) >= {"get", "delete"}
    assert {"200", "404", "409"} <= set(node["delete"]["responses"])
    assert any(p["name"] == "force" for p in node["delete"]["parameters"])


# --- the console --------------------------------------------------------------------------------


def browser_for(user: User, **kwargs: bool) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_it_links_the_node_page_to_forgetting_only_with_the_permission(forgetter: User, keeper: Node) -> None:
    assert "Forget this node…" in browser_for(forgetter).get("/nodes/n2/").content.decode()
    assert "Forget this node…" not in browser_for(make_user("reader")).get("/nodes/n2/").content.decode()


def test_it_forgets_after_confirmation_and_redirects_to_the_dashboard(forgetter: User, keeper: Node) -> None:
    make_node("n1", online=False)
    browser = browser_for(forgetter, enforce_csrf_checks=True)
    page = browser.get("/nodes/n1/forget/")
    assert page.status_code == 200
    assert "Forget node n1?" in page.content.decode() and RE_REGISTERS in page.content.decode()
    assert browser.post("/nodes/n1/forget/").status_code == 403, "CSRF"
    assert_untouched("n1")

    response = browser.post("/nodes/n1/forget/", {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert assert_forgotten("n1", keeper).via == "browser"
    shown = browser.get("/").content.decode()
    assert "Node n1 was forgotten" in shown


def test_it_refuses_an_online_node_in_the_page_and_forgets_it_when_forced(forgetter: User, keeper: Node) -> None:
    make_node("n1", online=True)
    browser = browser_for(forgetter)
    refused = browser.post("/nodes/n1/forget/")
    assert refused.status_code == 409
    assert "node n1 is online" in refused.content.decode() and 'name="force"' in refused.content.decode()
    assert_untouched("n1")
    assert browser.post("/nodes/n1/forget/", {"force": "on"}).status_code == 302
    assert_forgotten("n1", keeper)


def test_it_refuses_the_forget_page_without_login_or_permission(keeper: Node) -> None:
    make_node("n1", online=False)
    anonymous = Client()
    for method in ("get", "post"):
        response = getattr(anonymous, method)("/nodes/n1/forget/")
        assert response.status_code == 302 and "/login/" in response["Location"]
    operator = browser_for(make_user("operator", "extadmin.add_extensionpackage", "extadmin.delete_extensionpackage"))
    assert operator.get("/nodes/n1/forget/").status_code == 403
    assert operator.post("/nodes/n1/forget/", {"force": "on"}).status_code == 403
    assert_untouched("n1")


def test_it_answers_404_for_an_unknown_node_in_the_console(forgetter: User) -> None:
    assert browser_for(forgetter).get("/nodes/ghost/forget/").status_code == 404
