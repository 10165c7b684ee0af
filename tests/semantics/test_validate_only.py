"""Validate only: every check of an import, and no side effect at all.

"No side effect" is proved, not assumed: a dump of every row of every table (and where the id
sequences stand) and a hash of every node's whole storage tree, before and after, must be equal.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from extadmin.packaging import Conflict, Refusal
from extadmin.services import package_validate_files
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.processes import run_command
from tests.semantics.support import Packages, assert_world_unchanged, upload, world_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(node_storage: NodeStorage, imported: Callable[..., ExtensionPackage], tmp_path: Path) -> list[Path]:
    """Two nodes holding Base 1.0.0 and Uses 1.0.0 (web imported them, node-2 synced them)."""
    for package in (imported("Base", "1.0.0"), imported("Uses", "1.0.0", depends_on="Base:1.0.0")):
        other = tmp_path / "storage" / "node-2"
        shutil.copytree(node_storage.package_dir(package.name), other / "extensions" / package.name)
        node, _ = Node.objects.get_or_create(name="node-2", defaults={"storage_path": str(other)})
        SyncState.objects.create(
            node=node, package_name=package.name, desired_version=package.version, desired_sha256=package.sha256,
            installed_version=package.version, installed_sha256=package.sha256, state=SyncState.State.INSTALLED,
            changed_at=package.imported_at,
        )
    return [node_storage.root, tmp_path / "storage" / "node-2"]


def _validate(*paths: Path) -> dict:
    return package_validate_files(files=[(p, None) for p in paths])


def test_it_validates_a_new_package_without_any_side_effect(cluster: list[Path], packages: Packages) -> None:
    path = packages.make("Fresh", "1.0.0", depends_on="Base:1.0.0")
    before = world_snapshot(cluster)
    doc = _validate(path)
    assert_world_unchanged(before, cluster)
    assert doc == {
        "name": "Fresh", "version": "1.0.0", "checksum": hashlib.sha256(path.read_bytes()).hexdigest(),
        "kind": "import", "validated": True, "warnings": [], "signer": None,
    }


def test_it_validates_an_upgrade_and_a_reimport_without_any_side_effect(
    cluster: list[Path], packages: Packages
) -> None:
    upgrade, same = packages.make("Base", "1.1.0"), packages.make("Uses", "1.0.0", depends_on="Base:1.0.0")
    before = world_snapshot(cluster)
    assert _validate(upgrade)["kind"] == "upgrade"
    assert _validate(same)["kind"] == "reimport"
    assert_world_unchanged(before, cluster)


def test_it_validates_a_bundle_without_any_side_effect(cluster: list[Path], packages: Packages) -> None:
    bundle = packages.bundle("suite", [packages.make("B2", depends_on="A2:1.0.0"), packages.make("A2")])
    before = world_snapshot(cluster)
    doc = _validate(bundle)
    assert_world_unchanged(before, cluster)
    assert [p["name"] for p in doc["packages"]] == ["A2", "B2"]
    assert doc["validated"] is True


@pytest.mark.parametrize(
    ("build", "error", "reason"),
    [
        (lambda p: p.make("Base", "0.9.0"), Conflict, "Base:1.0.0 is installed; remove it before importing Base:0.9.0"),
        (lambda p: p.make("Lonely", depends_on="Nope:1.0.0"), Refusal,
         "Lonely depends on Nope:1.0.0, which is not installed"),
        (lambda p: p.make("Old", depends_on="Base:2.0.0"), Refusal,
         "Old depends on Base:2.0.0, but Base:1.0.0 is installed"),
        (lambda p: p.make("Snap", "1.0-SNAPSHOT"), Refusal, "packageVersion '1.0-SNAPSHOT' cannot be ordered"),
        (lambda p: p.make("Slip", files={"../evil.txt": b"x"}), Refusal, "escapes the package folder"),
    ],
    ids=["downgrade", "missing dependency", "old dependency", "unorderable version", "zip slip"],
)
def test_it_refuses_in_validation_what_the_import_would_refuse_without_any_side_effect(
    cluster: list[Path], packages: Packages, build: Callable[[Packages], Path], error: type[Refusal], reason: str
) -> None:
    path = build(packages)
    before = world_snapshot(cluster)
    with pytest.raises(error) as refused:
        _validate(path)
    assert reason in refused.value.reason
    assert_world_unchanged(before, cluster)


def test_it_applies_the_ha_policy_in_validation(cluster: list[Path], packages: Packages, settings) -> None:  # type: ignore[no-untyped-def]
    path = packages.make("Single", ha_compatible="false")
    before = world_snapshot(cluster)
    assert _validate(path)["warnings"] == [
        "Single is marked as not safe for clusters (haCompatible); it would be imported because the HA policy is warn"
    ]
    settings.EXTADMIN_HA_COMPATIBILITY = "deny"
    with pytest.raises(Refusal, match="HA policy is deny"):
        _validate(path)
    assert_world_unchanged(before, cluster)


def test_it_validates_through_the_cli_without_any_side_effect(cluster: list[Path], packages: Packages) -> None:
    good, bad = packages.make("Fresh"), packages.make("Base", "0.1.0")
    before = world_snapshot(cluster)
    code, out, err = run_command("import_extension", str(good), "--validate-only", "--json")
    assert code == 0, err
    assert json.loads(out)["validated"] is True
    code, out, _ = run_command("import_extension", str(good), "--validate-only")
    assert out.startswith("valid Fresh 1.0.0 sha256:")
    code, _, err = run_command("import_extension", str(bad), "--validate-only")
    assert code == 1 and err.startswith("error: validate: Base:1.0.0 is installed")
    assert_world_unchanged(before, cluster)


def test_it_validates_through_the_api_without_any_side_effect(
    api: APIClient, cluster: list[Path], packages: Packages
) -> None:
    good, bad = packages.make("Fresh"), packages.make("Base", "0.1.0")
    bundle = packages.bundle("suite", [packages.make("B2", depends_on="A2:1.0.0"), packages.make("A2")])
    before = world_snapshot(cluster)
    response = upload(api, good, validate=True)
    assert response.status_code == 200
    assert response.json()["validated"] is True
    assert response.json()["checksum"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert upload(api, bundle, validate=True).status_code == 200
    response = upload(api, bad, validate=True)
    assert response.status_code == 409
    assert response.json()["error"]["reason"].startswith("Base:1.0.0 is installed")
    assert_world_unchanged(before, cluster)


def test_it_would_see_a_real_import_as_a_change(cluster: list[Path], packages: Packages) -> None:
    """The proof above is sensitive: a real import changes both the rows and the storage hash."""
    from tests.semantics.support import import_file

    before = world_snapshot(cluster)
    import_file(packages.make("Fresh"))
    after = world_snapshot(cluster)
    assert after.db["extadmin_extensionpackage"] != before.db["extadmin_extensionpackage"]
    assert after.storage[str(cluster[0])] != before.storage[str(cluster[0])]
    assert after.storage[str(cluster[1])] == before.storage[str(cluster[1])]
