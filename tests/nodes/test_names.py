"""Node names follow the package names' rule: a name no page can link to is refused where a node registers.

Promise (reliability.md, Bad packages): a node name that is not a safe name (``rack/1``, empty,
NUL) is refused when a node registers, with a clear error and nothing written; and a bad name
already in the database (written by an older version) never turns a console page into a 500.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extadmin.models import Operation
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncRun, SyncState
from nodes.services import node_get_or_register, node_register_agent
from tests.nodes.conftest import Importer
from tests.packages import build_package
from tests.processes import run_command
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db

UNSAFE = ["rack/1", "", "a\x00b", "../up", "x" * 129, "ends."]


@pytest.mark.parametrize("name", UNSAFE, ids=repr)
@pytest.mark.parametrize("command", ["run_node", "sync_node"])
def test_it_refuses_an_unsafe_node_name_at_start(command: str, name: str, tmp_path: Path) -> None:
    storage = tmp_path / "storage"

    code, _, err = run_command(command, "--name", name, "--storage", str(storage))

    assert code == 1
    assert err.startswith("error: start: node name '"), err
    assert "is not a safe name (letters, digits" in err
    assert len(err.strip().splitlines()) == 1
    assert not Node.objects.exists()
    assert not storage.exists(), "a refused node wrote into its storage"


@pytest.mark.parametrize("name", UNSAFE, ids=repr)
def test_it_refuses_an_unsafe_node_name_in_the_registration_services(name: str, tmp_path: Path) -> None:
    with pytest.raises(Refusal) as refused:
        node_get_or_register(name=name, storage=tmp_path)
    assert refused.value.step == "start"
    with pytest.raises(Refusal):
        node_register_agent(name=name, storage=tmp_path, pid=1, agent_version="test")
    assert not Node.objects.exists()


def test_it_refuses_an_import_when_the_consoles_own_node_name_is_unsafe(
    settings, node_storage: NodeStorage, pkgdir: Path
) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_NODE = "rack/1"
    path = build_package(pkgdir, "Alpha", "1.0.0")

    code, _, err = run_command("import_extension", str(path))
    assert code == 1
    assert err.startswith("error: start: node name 'rack/1' (the setting EXTADMIN_NODE) is not a safe name"), err

    api = token_client(make_user("ops", "extadmin.add_extensionpackage"))
    with path.open("rb") as f:
        response = api.post("/api/extensions/", {"file": f}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["step"] == "start"
    assert "EXTADMIN_NODE" in response.json()["error"]["reason"]

    browser = Client()
    browser.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    with path.open("rb") as f:
        page = browser.post("/extensions/upload/", {"file": f})
    assert page.status_code == 400
    assert "node name &#x27;rack/1&#x27; (the setting EXTADMIN_NODE) is not a safe name" in page.content.decode()
    assert not Node.objects.exists()
    assert not node_storage.root.exists()


def test_it_refuses_a_removal_when_the_consoles_own_node_name_is_unsafe(
    settings, import_package: Importer
) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    settings.EXTADMIN_NODE = ""

    code, _, err = run_command("delete_extension", "Alpha")

    assert code == 1
    assert err.startswith("error: start: node name '' (the setting EXTADMIN_NODE) is not a safe name"), err
    assert SyncState.objects.get(node__name="web", package_name="Alpha").state == "installed"
    assert Operation.objects.filter(kind="remove").count() == 0


def test_it_forgets_unsafe_node_names_written_by_an_older_version(import_package: Importer) -> None:
    """The data migration: such a node could never be linked to, so every page answered 500."""
    import_package("Alpha")
    now = timezone.now()
    for bad in ("rack/1", ""):
        node = Node.objects.create(name=bad, last_heartbeat=now)
        SyncState.objects.create(node=node, package_name="Alpha", state="installed", changed_at=now)
        SyncRun.objects.create(node=node, trigger="manual", started_at=now)
    migration = importlib.import_module("nodes.migrations.0002_forget_unsafe_node_names")
    migration.forget_unsafe_node_names(apps, None)

    assert list(Node.objects.values_list("name", flat=True)) == ["web"]
    assert not SyncState.objects.exclude(node__name="web").exists()
    forgotten = Operation.objects.filter(kind="forget_node").order_by("node")
    assert [(op.node, op.via, op.outcome) for op in forgotten] == [
        ("", "migration", "succeeded"), ("rack/1", "migration", "succeeded"),
    ]
    browser = Client()
    browser.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    for url in ("/", "/extensions/Alpha/", "/nodes/web/", "/api/cluster/", "/api/extensions/Alpha/"):
        assert browser.get(url).status_code == 200, url
