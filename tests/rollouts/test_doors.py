"""Every door of rollouts — command line, API, console — says the same words and writes the same audit.

Real database, real folders, real reconcile passes of three nodes; the console and the API through
Django's test client (a real request through every middleware), the command line through call_command.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation
from nodes.status import cluster_document
from rollouts.models import Rollout
from tests.packages import build_package
from tests.processes import run_command
from tests.rollouts.conftest import Nodes

pytestmark = pytest.mark.django_db

PERMS = ["add_extensionpackage", "change_rollout", "change_rolloutpolicy"]


@pytest.fixture
def operator(db: None) -> User:
    user = User.objects.create_user("operator", password="pw-operator-1")
    user.user_permissions.add(*Permission.objects.filter(codename__in=PERMS))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def api(operator: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
    return client


@pytest.fixture
def browser(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def halfway(nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage]) -> Nodes:
    """Pump 2.0.0 rolling out in batches of one over n1..n3: n1 installed it, n2 admitted, n3 waiting."""
    cluster = nodes(3)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    import_with("Pump", "2.0.0", rollout={"batch": "1"})
    cluster.sync("n3")
    cluster.sync("n1")
    return cluster


@pytest.mark.parametrize(("field", "value", "said"), [
    ("batch", "0", "rollout: batch: 0 is less than 1"),
    ("max_failures", "x", "rollout: max-failures: 'x' is not a whole number"),
    ("canary", "ghost", "rollout: canary: no node named 'ghost'"),
    ("activation", "later", "rollout: activation: 'later' is neither 'each' nor 'together'"),
])
def test_a_bad_rollout_field_is_refused_in_the_same_words_by_every_door_and_nothing_is_written(
    nodes: Callable[[int], Nodes], node_storage: object, pkgdir: Path, api: APIClient, browser: Client,
    field: str, value: str, said: str,
) -> None:
    nodes(2)
    path = build_package(pkgdir, "Pump", "1.0.0")
    option = "--" + field.replace("_", "-")
    code, _, err = run_command("import_extension", str(path), option, value)
    assert (code, err.strip()) == (1, f"error: {said}")
    with path.open("rb") as f:
        answer = api.post("/api/extensions/", {"file": f, field: value}, format="multipart")
    assert answer.status_code == 400
    assert answer.json() == {"error": {"step": "rollout", "reason": said.removeprefix("rollout: ")}}
    with path.open("rb") as f:
        page = browser.post("/extensions/upload/", {"file": f, field: value, "action": "import"})
    assert page.status_code == 400 and said.removeprefix("rollout: ") in html.unescape(page.content.decode())
    assert not ExtensionPackage.objects.exists() and not Operation.objects.exists()


def test_status_and_controls_through_the_api_the_command_line_and_the_console_each_audited(
    halfway: Nodes, api: APIClient, browser: Client,
) -> None:
    doc = api.get("/api/rollouts/").json()
    assert doc == {"rollouts": [{
        "package": "Pump", "version": "2.0.0", "from_version": "1.0.0", "state": "running", "batch": 2, "reason": "",
        "nodes": {"n1": "installed", "n2": "admitted", "n3": "waiting", "web": "installed"},
    }]}
    code, out, _ = run_command("rollout_status", "--json")
    assert code == 0 and json.loads(out) == doc
    assert api.get("/api/rollouts/Pump/").json() == doc

    assert api.post("/api/rollouts/Pump/pause/").json()["state"] == "paused"
    again = api.post("/api/rollouts/Pump/pause/")
    assert again.status_code == 409
    assert again.json()["error"]["reason"] == "the rollout of Pump 2.0.0 is paused; it cannot be paused"
    code, _, err = run_command("rollout_pause", "Pump")
    assert err.strip() == "error: rollout: the rollout of Pump 2.0.0 is paused; it cannot be paused"
    code, out, _ = run_command("rollout_resume", "Pump")
    assert code == 0 and "running" in out

    page = browser.get("/extensions/Pump/").content.decode()
    assert "n3: waiting for batch 3" in page and "Pause rollout" in page and "Abort: back to 1.0.0" in page
    assert "waiting for batch 3" in browser.get("/").content.decode()
    answer = browser.post("/rollouts/Pump/abort/")
    assert answer.status_code == 302
    assert Rollout.objects.get().state == "aborted"
    kinds = list(Operation.objects.filter(kind__startswith="rollout_").order_by("id").values_list("kind", "via"))
    assert kinds == [("rollout_pause", "api"), ("rollout_resume", "cli"), ("rollout_abort", "browser")]
    unknown = api.post("/api/rollouts/Nope/abort/")
    assert unknown.status_code == 404 and unknown.json()["error"]["reason"] == "no package named 'Nope'"


def test_a_node_waiting_for_its_batch_says_so_at_every_door_and_is_never_failed_nor_degraded(
    halfway: Nodes, settings: object, browser: Client,
) -> None:
    halfway.sync("n3")
    [ext] = cluster_document()["extensions"]
    cell = ext["nodes"]["n3"]
    assert cell["state"] == "waiting"
    code, out, _ = run_command("cluster_status")
    assert code == 0 and "waiting" in out
    node_page = browser.get("/nodes/n3/").content.decode()
    assert "waiting for batch 3" in node_page


def test_the_cluster_default_policy_through_the_api_and_the_settings_page(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage], api: APIClient, browser: Client,
) -> None:
    nodes(3)
    assert api.get("/api/rollout-policy/").json() == {
        "canary": [], "batch": None, "max_failures": None, "activation": "each",
    }
    saved = api.put("/api/rollout-policy/", {"canary": "n1", "batch": 1}, format="json")
    assert saved.json() == {"canary": ["n1"], "batch": 1, "max_failures": None, "activation": "each"}
    refused = browser.post("/rollouts/", {"batch": "0"})
    assert refused.status_code == 400 and "batch: 0 is less than 1" in refused.content.decode()
    assert browser.post("/rollouts/", {"canary": "n2", "batch": "2"}).status_code == 302
    import_with("Pump", "1.0.0")
    r = Rollout.objects.get()
    assert (r.canary, r.batch_size, r.batch) == (["n2"], 2, 0)
    assert Operation.objects.filter(kind="rollout_policy").count() == 2


def progress_trigger(page: str) -> str:
    """The hx-trigger of a page's rollout progress partial."""
    section = page[page.index('<section id="rollouts'):]
    return html.unescape(section.split('hx-trigger="', 1)[1].split('"', 1)[0])


def test_the_progress_polls_every_minute_only_on_a_page_without_a_live_part(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage], browser: Client,
) -> None:
    cluster = nodes(2)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    # The dashboard and a package's page: the live part's updates refresh it (an import changes them).
    for url in ("/", "/extensions/Pump/"):
        assert progress_trigger(browser.get(url).content.decode()) == "extadmin:live-updated from:document", url
    assert progress_trigger(browser.get("/rollouts/").content.decode()).endswith(", every 60s")
    # Its own refresh keeps what the page said.
    assert "live=1" in browser.get("/").content.decode().split('<section id="rollouts', 1)[1].split(">", 1)[0]
    again = browser.get("/rollouts/progress/?package=&live=1", HTTP_HX_REQUEST="true").content.decode()
    assert progress_trigger(again) == "extadmin:live-updated from:document"
    assert progress_trigger(browser.get("/rollouts/progress/", HTTP_HX_REQUEST="true").content.decode()).endswith(
        ", every 60s")
    # While a rollout runs every page refreshes it every 2 s.
    import_with("Pump", "2.0.0", rollout={"batch": "1"})
    assert progress_trigger(browser.get("/").content.decode()) == "every 2s"
