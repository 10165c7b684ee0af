"""Versions: real packages' versions are accepted, downgrades refused, re-imports and upgrades in place.

Each rule through the service, the CLI and the API.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from extadmin.models import Entity, ExtensionPackage, Operation
from extadmin.packaging import Conflict, Refusal
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.packages import folder_files, zip_files
from tests.processes import run_command
from tests.semantics.support import Packages, import_file, upload, world_snapshot

pytestmark = pytest.mark.django_db

REAL_VERSIONS = ["1.0.5", "2.2", "0.20201103.083645"]
DOWNGRADE = "X:3.0.1 is installed; remove it before importing X:2.2.0"


# --- accepted and refused versions -------------------------------------------------------------


@pytest.mark.parametrize("version", REAL_VERSIONS)
def test_it_imports_the_versions_real_packages_carry(
    node_storage: NodeStorage, packages: Packages, version: str
) -> None:
    (result,) = import_file(packages.make("Real", version))
    assert result.package is not None and result.package.version == version


@pytest.mark.parametrize("version", REAL_VERSIONS)
def test_it_imports_them_through_the_cli_and_the_api(api: APIClient, packages: Packages, version: str) -> None:
    code, out, err = run_command("import_extension", str(packages.make("Cli", version)), "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == version
    response = upload(api, packages.make("Api", version))
    assert response.status_code == 201
    assert response.json()["version"] == version


@pytest.mark.parametrize("version", ["1.x", "1.0-SNAPSHOT", "v1.0.0", "1..0", ""])
def test_it_refuses_a_version_that_cannot_be_ordered(
    api: APIClient, node_storage: NodeStorage, packages: Packages, version: str
) -> None:
    path = packages.make("Unorderable", version or "1.0.0", filename=f"u{len(version)}.zip",
                         metadata=None if version else _metadata_without_version())
    with pytest.raises(Refusal) as refused:
        import_file(path)
    assert refused.value.step == "validate"
    code, _, err = run_command("import_extension", str(path))
    assert code == 1 and err.startswith("error: validate: ")
    response = upload(api, path)
    assert response.status_code == 400
    assert response.json()["error"]["step"] == "validate"
    assert not ExtensionPackage.objects.exists()


def _metadata_without_version() -> str:
    return '<Entities><ExtensionPackages><ExtensionPackage name="Unorderable"/></ExtensionPackages></Entities>'


# --- downgrade ---------------------------------------------------------------------------------


def test_it_refuses_a_downgrade_naming_both_versions(
    node_storage: NodeStorage, packages: Packages, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("X", "3.0.1")
    before = world_snapshot([node_storage.root])
    with pytest.raises(Conflict) as refused:
        import_file(packages.make("X", "2.2.0"))
    assert refused.value.reason == DOWNGRADE
    assert refused.value.status == 409
    # Refused before anything was written: only the package as it was.
    assert world_snapshot([node_storage.root]).storage == before.storage
    assert ExtensionPackage.objects.get(name="X").version == "3.0.1"


def test_it_refuses_a_downgrade_through_the_cli(imported: Callable[..., ExtensionPackage], packages: Packages) -> None:
    imported("X", "3.0.1")
    code, out, err = run_command("import_extension", str(packages.make("X", "2.2.0")))
    assert (code, out) == (1, "")
    assert err.strip() == f"error: validate: {DOWNGRADE}"


def test_it_refuses_a_downgrade_through_the_api_with_409(
    api: APIClient, imported: Callable[..., ExtensionPackage], packages: Packages
) -> None:
    imported("X", "3.0.1")
    response = upload(api, packages.make("X", "2.2.0"))
    assert response.status_code == 409
    assert response.json() == {"error": {"step": "validate", "reason": DOWNGRADE}}


def test_it_orders_versions_numerically_not_as_text(
    imported: Callable[..., ExtensionPackage], packages: Packages
) -> None:
    imported("Num", "1.10.0")
    with pytest.raises(Conflict, match=r"Num:1\.10\.0 is installed; remove it before importing Num:1\.9\.0"):
        import_file(packages.make("Num", "1.9.0"))
    (result,) = import_file(packages.make("Num", "1.10.1"))
    assert result.plan.kind == Operation.Kind.UPGRADE


# --- same version ------------------------------------------------------------------------------


def _second_node_holding(package: ExtensionPackage) -> SyncState:
    """A second node that has installed the package as it is now (as its agent would report)."""
    node = Node.objects.create(name="node-2")
    return SyncState.objects.create(
        node=node, package_name=package.name, desired_version=package.version, desired_sha256=package.sha256,
        installed_version=package.version, installed_sha256=package.sha256, state=SyncState.State.INSTALLED,
        changed_at=package.imported_at,
    )


def test_it_reimports_the_same_file_without_changing_the_checksum(
    node_storage: NodeStorage, packages: Packages
) -> None:
    path = packages.make("Same", "1.0.0")
    (first,) = import_file(path)
    assert first.package is not None
    other = _second_node_holding(first.package)
    (again,) = import_file(path)
    assert again.plan.kind == Operation.Kind.REIMPORT
    package = ExtensionPackage.objects.get(name="Same")
    assert package.pk == first.package.pk
    # The checksum is what nodes compare: unchanged, so the other node has nothing to re-sync.
    assert package.sha256 == first.package.sha256 == other.installed_sha256
    assert folder_files(node_storage.package_dir("Same"), skip="Same.chk") == zip_files(path)


def test_it_reimports_the_same_version_with_new_bytes_under_a_new_checksum(
    node_storage: NodeStorage, packages: Packages
) -> None:
    (first,) = import_file(packages.make("Same", "1.0.0"))
    assert first.package is not None
    other = _second_node_holding(first.package)
    rebuilt = packages.make("Same", "1.0.0", filename="Same-rebuilt.zip")  # new random jar bytes
    (again,) = import_file(rebuilt)
    package = ExtensionPackage.objects.get(name="Same")
    assert again.plan.kind == Operation.Kind.REIMPORT
    # A new checksum: every node that holds the old bytes is now out of date and will re-sync.
    assert package.sha256 == again.sha256 != first.package.sha256
    assert other.installed_sha256 != package.sha256
    assert node_storage.read_chk("Same") == package.sha256
    assert folder_files(node_storage.package_dir("Same"), skip="Same.chk") == zip_files(rebuilt)


def test_it_makes_other_nodes_resync_only_when_the_checksum_changed(
    node_storage: NodeStorage, packages: Packages, tmp_path: Path
) -> None:
    """Played through the second node's own sync pass (``sync_node``), as its agent would run it."""
    other = NodeStorage(tmp_path / "node-2")

    def sync() -> list[str]:
        code, out, err = run_command("sync_node", "--name", "node-2", "--storage", str(other.root), "--json")
        assert code == 0, err
        return json.loads(out)["actions"]

    path = packages.make("Same", "1.0.0")
    import_file(path)
    assert sync()  # installs it
    installed = other.read_chk("Same")
    import_file(path)  # the same bytes again
    assert sync() == []  # nothing to do
    assert other.read_chk("Same") == installed
    (rebuilt,) = import_file(packages.make("Same", "1.0.0", filename="Same-rebuilt.zip"))
    assert sync()  # new bytes under the same version: installed again
    assert other.read_chk("Same") == rebuilt.sha256 != installed


def test_it_treats_2_2_and_2_2_0_as_the_same_version(
    imported: Callable[..., ExtensionPackage], packages: Packages
) -> None:
    imported("Short", "2.2")
    (result,) = import_file(packages.make("Short", "2.2.0"))
    assert result.plan.kind == Operation.Kind.REIMPORT


# --- upgrade -----------------------------------------------------------------------------------


def test_it_upgrades_in_place(node_storage: NodeStorage, packages: Packages) -> None:
    (old,) = import_file(packages.make("Up", "1.0.0", files={"lib/old.jar": b"old", "ui/Up/up.js": b"1"}))
    assert old.package is not None
    new_zip = packages.make(
        "Up", "1.1.0", files={"lib/new.jar": b"new", "ui/Up/up.js": b"2"},
        metadata=_metadata_with_thing("Up", "1.1.0", "UpThingV2"),
    )
    (new,) = import_file(new_zip)
    package = ExtensionPackage.objects.get(name="Up")
    assert package.pk == old.package.pk  # the same row, upgraded
    assert (package.version, package.sha256) == ("1.1.0", new.sha256)
    assert list(Entity.objects.filter(package=package).values_list("name", flat=True)) == ["UpThingV2"]
    # The folder holds exactly the new version's files: nothing of the old one is left behind.
    assert folder_files(node_storage.package_dir("Up"), skip="Up.chk") == zip_files(new_zip)
    op = Operation.objects.get(pk=new.operation.pk)  # type: ignore[union-attr]
    assert (op.kind, op.version, op.previous_version, op.sha256) == ("upgrade", "1.1.0", "1.0.0", new.sha256)


def test_it_upgrades_through_the_cli_and_the_api(
    api: APIClient, imported: Callable[..., ExtensionPackage], packages: Packages
) -> None:
    imported("Up", "1.0.0")
    code, out, _ = run_command("import_extension", str(packages.make("Up", "1.0.1")), "--json")
    assert code == 0 and json.loads(out)["version"] == "1.0.1"
    response = upload(api, packages.make("Up", "1.2.0"))
    assert response.status_code == 201
    assert (response.json()["version"], response.json()["kind"]) == ("1.2.0", "upgrade")


def test_it_keeps_the_old_version_whole_when_an_upgrade_is_refused_midway(
    node_storage: NodeStorage, packages: Packages, tmp_path: Path
) -> None:
    old_zip = packages.make("Keep", "1.0.0")
    import_file(old_zip)
    broken = tmp_path / "broken.zip"
    shutil.copy(packages.make("Keep", "2.0.0"), broken)
    data = bytearray(broken.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte inside a member: its CRC no longer matches
    broken.write_bytes(bytes(data))
    with pytest.raises(Refusal):
        import_file(broken)
    assert ExtensionPackage.objects.get(name="Keep").version == "1.0.0"
    assert folder_files(node_storage.package_dir("Keep"), skip="Keep.chk") == zip_files(old_zip)


def _metadata_with_thing(name: str, version: str, thing: str) -> str:
    from tests.packages import metadata_xml

    return metadata_xml(name, version, entities=f'  <Things>\n    <Thing name="{thing}"/>\n  </Things>\n')
