"""``/api/extensions/``: import (and validate), list, read with per-node states, remove."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from extadmin.documents import package_summary
from extadmin.models import ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.semantics.support import Packages, assert_world_unchanged, upload, world_snapshot

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]


# --- POST ------------------------------------------------------------------------------------------


def test_it_imports_a_package_and_answers_201_with_its_document(
    api: APIClient, node_storage: NodeStorage, packages: Packages
) -> None:
    path = packages.make("Posted", "1.0.5")
    response = upload(api, path)
    assert response.status_code == 201
    body = response.json()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    package = ExtensionPackage.objects.get(name="Posted")
    assert body == {**package_summary(package), "operation": body["operation"], "kind": "import", "warnings": []}
    assert body["checksum"] == digest == node_storage.read_chk("Posted")
    assert Operation.objects.get(pk=body["operation"]).sha256 == digest


def test_it_refuses_a_request_without_a_file(api: APIClient) -> None:
    response = api.post("/api/extensions/", {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"step": "upload", "reason": "no file: send the package zip as the multipart field 'file'"}
    }


def test_it_refuses_a_body_that_is_not_multipart(api: APIClient) -> None:
    response = api.post("/api/extensions/", {"file": "x"}, format="json")
    assert response.status_code == 415
    assert response.json()["error"]["step"] == "request"


def test_it_refuses_a_hostile_zip_with_the_step_and_reason(api: APIClient, packages: Packages) -> None:
    response = upload(api, packages.make("Slip", files={"../../etc/evil": b"x"}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["step"] == "validate" and "escapes the package folder" in error["reason"]


def test_it_refuses_a_file_that_is_not_a_zip(api: APIClient, tmp_path: Path) -> None:
    path = tmp_path / "notes.zip"
    path.write_text("not a zip at all")
    response = upload(api, path)
    assert response.status_code == 400
    assert response.json()["error"]["step"] == "validate"


@pytest.mark.parametrize("size", [5_000, 200_000], ids=["counted while streaming", "declared by Content-Length"])
def test_it_answers_413_for_an_upload_over_the_limit(
    api: APIClient, packages: Packages, settings, size: int  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_MAX_UPLOAD_BYTES = 2000
    path = packages.make("Huge", files={"lib/noise.bin": os.urandom(size)})  # random: it does not compress
    response = upload(api, path)
    assert response.status_code == 413
    assert response.json() == {
        "error": {"step": "upload", "reason": "the upload is larger than the limit of 2000 bytes"}
    }
    assert not ExtensionPackage.objects.exists()
    assert not Operation.objects.exists()


# --- GET ---------------------------------------------------------------------------------------------


def test_it_lists_packages_as_list_extensions_does(api: APIClient, imported: Imported) -> None:
    imported("Zeta")
    imported("Alpha", "2.2")
    response = api.get("/api/extensions/")
    assert response.status_code == 200
    assert response.json() == [package_summary(p) for p in ExtensionPackage.objects.order_by("name")]
    assert [p["name"] for p in response.json()] == ["Alpha", "Zeta"]


def test_it_shows_a_package_with_every_node_s_state(api: APIClient, imported: Imported) -> None:
    package = imported("Shown")
    now = timezone.now()
    Node.objects.filter(name="web").update(last_heartbeat=now)
    behind = Node.objects.create(name="node-2", last_heartbeat=now - timedelta(hours=1))
    SyncState.objects.create(
        node=behind, package_name="Shown", desired_version="1.0.0", desired_sha256=package.sha256,
        installed_version="0.9.0", installed_sha256="0" * 64, state=SyncState.State.FAILED,
        error="disk full", changed_at=now,
    )
    Node.objects.create(name="node-3", last_heartbeat=now)
    body = api.get("/api/extensions/Shown/").json()
    assert body["name"] == "Shown" and body["checksum"] == package.sha256
    assert body["entities"] == [{"type": "Thing", "name": "ShownThing"}]
    nodes = {n["node"]: n for n in body["nodes"]}
    assert set(nodes) == {"web", "node-2", "node-3"}
    assert (nodes["web"]["state"], nodes["web"]["online"], nodes["web"]["up_to_date"]) == ("installed", True, True)
    assert nodes["web"]["installed_checksum"] == package.sha256
    # node-2 is offline: offline, never what it last said; what it said stays in "reported".
    assert (nodes["node-2"]["state"], nodes["node-2"]["online"], nodes["node-2"]["error"]) == (
        "offline", False, "disk full"
    )
    assert (nodes["node-2"]["reported"], nodes["node-2"]["up_to_date"]) == ("failed", False)
    assert (body["converged"], body["online"], body["offline"]) == (False, 2, 1)
    assert (nodes["node-3"]["state"], nodes["node-3"]["up_to_date"]) == ("pending", False)
    assert [o["kind"] for o in body["operations"]] == ["import"]


def test_it_answers_404_for_an_unknown_package(api: APIClient) -> None:
    response = api.get("/api/extensions/Nope/")
    assert response.status_code == 404
    assert response.json() == {"error": {"step": "lookup", "reason": "no extension package named 'Nope'"}}
    assert api.delete("/api/extensions/Nope/").status_code == 404


# --- DELETE ------------------------------------------------------------------------------------------


def test_it_removes_a_package(api: APIClient, imported: Imported, node_storage: NodeStorage) -> None:
    package = imported("Gone", "1.2.3")
    response = api.delete("/api/extensions/Gone/")
    assert response.status_code == 200
    body = response.json()
    assert body == {"name": "Gone", "version": "1.2.3", "checksum": package.sha256, "removed": True,
                    "operation": body["operation"]}
    assert not ExtensionPackage.objects.exists()
    assert not node_storage.package_dir("Gone").exists()
    assert Operation.objects.get(pk=body["operation"]).via == "api"


def test_it_refuses_removing_a_package_others_depend_on_listing_them(
    api: APIClient, imported: Imported, node_storage: NodeStorage
) -> None:
    imported("Base")
    imported("Uses", "3.0.0", depends_on="Base:1.0.0")
    before = world_snapshot([node_storage.root])
    response = api.delete("/api/extensions/Base/")
    assert response.status_code == 409
    assert response.json()["error"]["dependents"] == ["Uses:3.0.0"]
    assert_world_unchanged(before, [node_storage.root])


# --- the audit's address -------------------------------------------------------------------------------


def test_it_records_remote_addr_and_ignores_x_forwarded_for_by_default(api: APIClient, packages: Packages) -> None:
    upload(api, packages.make("Addr"), REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert Operation.objects.get(package_name="Addr").remote_addr == "198.51.100.4"


def test_it_trusts_x_forwarded_for_only_when_told(api: APIClient, packages: Packages, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_TRUST_X_FORWARDED_FOR = True
    upload(api, packages.make("Prox"), REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.9")
    assert Operation.objects.get(package_name="Prox").remote_addr == "203.0.113.9"
    upload(api, packages.make("Junk"), REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="not-an-address")
    assert Operation.objects.get(package_name="Junk").remote_addr is None
