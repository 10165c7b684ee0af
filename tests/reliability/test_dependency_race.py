"""A base package removed while a dependent of it is being imported: one of the two is refused.

Promise (reliability.md, Faults): dependencies hold at commit. The import runs in a real child
process held at a fault checkpoint (``wait:``) while the removal runs, so each order is exact:
  * the removal commits first → the import is refused at persist and backed out completely;
  * the import commits first (it holds the base's row, or SQLite's write lock, while the removal
    starts) → the removal is refused, through the CLI, the API and the form alike; nothing changed.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import ROOT, Pause
from tests.reliability.doors import DOORS, REMOVED, Doors
from tests.reliability.world import folder_matches_archive, package_traces

pytestmark = pytest.mark.django_db(transaction=True)


def _import(path: Path, storage: NodeStorage) -> ExtensionPackage:
    (result,) = package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web", storage_root=storage.root)
    assert result.package is not None
    return result.package


def _remove_after_the_commit(
    web_env, importing: subprocess.Popen[str], pause: Pause, tmp_path: Path
) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """A CLI removal held just past its first check until the import has committed: exact, however
    long the child takes to start."""
    held = Pause(tmp_path / "removal")
    removing = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "delete_extension", "Base"],
        cwd=ROOT, env=web_env(EXTADMIN_FAULTS=held.at("remove.after_validate")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    held.wait_reached()
    pause.release()
    importing.wait(timeout=60)
    held.release()
    _, err = removing.communicate(timeout=60)
    return removing.returncode, err.strip().removeprefix("error: ")


def _importing(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "import_extension", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_it_refuses_the_dependents_import_when_the_base_was_removed_meanwhile(web_storage, web_env, pkgdir, tmp_path):
    _import(build_package(pkgdir, "Base", "1.0.0"), web_storage)
    pause = Pause(tmp_path / "go")
    dependent = build_package(pkgdir, "Dependent", "1.0.0", depends_on="Base:1.0.0")
    importing = _importing(dependent, web_env(EXTADMIN_FAULTS=pause.at("import.after_unzip")))
    pause.wait_reached()  # validated (Base was there) and unpacked: only the commit is left

    assert Doors(env=web_env()).remove("cli", "Base") == (0, "")
    pause.release()
    _, err = importing.communicate(timeout=60)

    assert importing.returncode == 1, err
    assert err.strip() == (
        "error: persist: Dependent depends on Base:1.0.0, which is not installed "
        "(it changed while this import ran); nothing was imported"
    )
    assert package_traces("Dependent") == {"package": 0, "entities": 0, "chunks": 0, "archive": 0, "sync_states": 0}
    assert package_traces("Base")["package"] == 0
    assert web_storage.installed_names() == []
    assert leftovers(web_storage) == []


def test_it_refuses_the_dependents_import_when_the_base_is_being_removed(web_storage, web_env, pkgdir, tmp_path):
    """The removal killed after undeploy: the base is no longer active, so nothing may build on it."""
    _import(build_package(pkgdir, "Base", "1.0.0"), web_storage)
    pause = Pause(tmp_path / "go")
    importing = _importing(build_package(pkgdir, "Dependent", "1.0.0", depends_on="Base:1.0.0"),
                           web_env(EXTADMIN_FAULTS=pause.at("import.after_unzip")))
    pause.wait_reached()

    status, _ = Doors(env=web_env(EXTADMIN_FAULTS="remove.after_undeploy=kill")).remove("cli", "Base")
    assert status == -9
    pause.release()
    _, err = importing.communicate(timeout=60)

    assert importing.returncode == 1, err
    assert err.strip() == (
        "error: persist: Dependent depends on Base:1.0.0, which is being removed "
        "(it changed while this import ran); nothing was imported"
    )
    assert package_traces("Dependent")["package"] == 0
    assert web_storage.installed_names() == ["Base"]
    assert leftovers(web_storage) == []


@pytest.mark.parametrize("door", DOORS)
def test_it_refuses_the_removal_when_the_dependent_committed_meanwhile(door, web_storage, web_env, pkgdir, tmp_path):
    base = _import(build_package(pkgdir, "Base", "1.0.0"), web_storage)
    doors = Doors(env=web_env())
    pause = Pause(tmp_path / "go")
    importing = _importing(build_package(pkgdir, "Dependent", "1.0.0", depends_on="Base:1.0.0"),
                           web_env(EXTADMIN_FAULTS=pause.at("import.after_persist")))
    pause.wait_reached()  # inside the committing transaction: Base's row (or SQLite's write lock) is held
    if door == "cli":
        status, said = _remove_after_the_commit(web_env, importing, pause, tmp_path)
    else:
        # In this process the removal passes its own first check at once, then waits on the row (or
        # the write lock) that the import holds: let the import commit while it waits.
        threading.Timer(1.0, pause.release).start()
        status, said = doors.remove(door, "Base")
    importing.communicate(timeout=60)

    assert importing.returncode == 0
    assert status == (1 if door == "cli" else 409) != REMOVED[door], said
    assert (
        "undeploy: Base cannot be removed while these packages depend on it: Dependent:1.0.0 "
        "(imported while this removal ran); nothing was removed"
    ) in said, said
    base.refresh_from_db()
    assert base.state == ExtensionPackage.State.ACTIVE
    assert folder_matches_archive(web_storage, base) is None
    assert sorted(web_storage.installed_names()) == ["Base", "Dependent"]
    assert not Operation.objects.filter(package_name="Base", kind="remove", outcome="succeeded").exists()
