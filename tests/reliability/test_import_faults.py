"""Failures inside the importing process that it survives (raise, not kill), and what the node shows.

Promise: what a node reports matches its disk; the database and the importing node's folder
never disagree once the import has returned.
"""
from __future__ import annotations

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from nodes.models import SyncState
from nodes.reconcile import reconcile
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import manage
from tests.reliability.world import folder_matches_archive


def _import(path, storage):  # type: ignore[no-untyped-def]
    return package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web", storage_root=storage.root)


def _shown_installed_matches_disk(storage) -> list[str]:  # type: ignore[no-untyped-def]
    """Every 'installed' claim of node web, checked against its disk; returns the false ones."""
    false = []
    for s in SyncState.objects.filter(node__name="web", state=SyncState.State.INSTALLED):
        if storage.read_chk(s.package_name) != s.installed_sha256:
            false.append(f"{s.package_name}: shown {s.installed_sha256[:8]}, disk {storage.read_chk(s.package_name)}")
    return false


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("upgrade", [False, True], ids=["new", "upgrade"])
def test_it_keeps_the_folder_when_something_fails_after_the_commit(upgrade, web_storage, pkgdir, monkeypatch):
    """After the commit the package is in for every node: the importing node must keep its folder too."""
    if upgrade:
        _import(build_package(pkgdir, "Late", "1.0.0"), web_storage)
    monkeypatch.setenv("EXTADMIN_FAULTS", "import.after_commit=raise")
    (result,) = _import(build_package(pkgdir, "Late", "2.0.0"), web_storage)  # it did happen: no error
    monkeypatch.delenv("EXTADMIN_FAULTS")

    assert result.operation.outcome == Operation.Outcome.SUCCEEDED

    package = ExtensionPackage.objects.get(name="Late")
    assert package.version == "2.0.0"  # committed: every other node will install it
    assert folder_matches_archive(web_storage, package) is None
    assert _shown_installed_matches_disk(web_storage) == []
    assert leftovers(web_storage) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", ["import.after_unzip", "import.after_persist", "import.after_archive"])
def test_it_never_shows_the_old_version_installed_over_a_killed_upgrades_files(point, web_storage, web_env, pkgdir):
    """Killed mid-upgrade, the new files are in place but uncommitted: the node may not claim the old one."""
    _import(build_package(pkgdir, "Torn", "1.0.0"), web_storage)
    r = manage("import_extension", str(build_package(pkgdir, "Torn", "2.0.0")),
               env=web_env(EXTADMIN_FAULTS=f"{point}=kill"))
    assert r.returncode == -9

    assert _shown_installed_matches_disk(web_storage) == []

    # The node's own sync (its agent at startup, or the periodic pass) puts the database's version back.
    result = reconcile(node_name="web", storage_root=web_storage.root, trigger="startup", verify_contents=True)
    assert result.ok, result.error
    assert folder_matches_archive(web_storage, ExtensionPackage.objects.get(name="Torn")) is None
    assert leftovers(web_storage) == []
    assert SyncState.objects.get(node__name="web", package_name="Torn").state == SyncState.State.INSTALLED


@pytest.mark.django_db(transaction=True)
def test_it_removes_a_killed_imports_folder_on_the_nodes_next_sync(web_storage, web_env, pkgdir):
    """Killed after the unzip of a first import: the folder is there but the database never had it."""
    r = manage("import_extension", str(build_package(pkgdir, "Stray", "1.0.0")),
               env=web_env(EXTADMIN_FAULTS="import.after_persist=kill"))
    assert r.returncode == -9

    result = reconcile(node_name="web", storage_root=web_storage.root, trigger="startup", verify_contents=True)

    assert result.ok, result.error
    assert not web_storage.package_dir("Stray").exists()
    assert leftovers(web_storage) == []
    assert not SyncState.objects.filter(package_name="Stray").exists()
