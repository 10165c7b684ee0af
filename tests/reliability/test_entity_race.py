"""Two imports declaring the same entity at once: one commits, the other is refused at persist.

Promise (issue 11, item 4): the collision check holds at commit, not only at validation. The
import runs in a real child process held at a fault checkpoint (``wait:``) while a rival import
of the same entity runs in this process, so each order is exact:
  * the rival commits while the child unzips → the child is refused at persist and backed out;
  * the child is inside its committing transaction (it holds the entity lock: PostgreSQL's advisory
    lock, SQLite's write lock) when the rival reaches its own → the rival waits, then is refused.
Neither of them ever sees the other's uncommitted rows: without the lock both would commit.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import Entity, Operation
from extadmin.operations import Actor
from extadmin.packaging import Conflict
from extadmin.storage import NodeStorage
from tests.disk import leftovers
from tests.packages import build_package, metadata_xml
from tests.processes import ROOT, Pause
from tests.reliability.world import package_traces

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = '<Things><Thing name="PumpMonitor"/></Things>'
NO_TRACES = {"package": 0, "entities": 0, "chunks": 0, "archive": 0, "sync_states": 0}


def _declaring(folder: Path, name: str) -> Path:
    return build_package(folder, name, metadata=metadata_xml(name, entities=SHARED))


def _import(path: Path, storage: NodeStorage) -> None:
    package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web", storage_root=storage.root)


def _importing(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "import_extension", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_it_refuses_the_import_when_a_rival_committed_the_entity_meanwhile(web_storage, web_env, pkgdir, tmp_path):  # type: ignore[no-untyped-def]
    pause = Pause(tmp_path / "go")
    importing = _importing(_declaring(pkgdir, "Late"), web_env(EXTADMIN_FAULTS=pause.at("import.after_unzip")))
    pause.wait_reached()  # validated (nobody declared PumpMonitor yet) and unpacked: only the commit is left

    _import(_declaring(pkgdir, "PumpKit"), web_storage)
    pause.release()
    _, err = importing.communicate(timeout=60)

    assert importing.returncode == 1, err
    assert err.strip() == (
        "error: persist: Thing 'PumpMonitor' is already declared by PumpKit:1.0.0, "
        "imported while this import ran; nothing was imported"
    )
    assert package_traces("Late") == NO_TRACES
    assert list(Entity.objects.values_list("name", "package__name")) == [("PumpMonitor", "PumpKit")]
    assert web_storage.installed_names() == ["PumpKit"]
    assert leftovers(web_storage) == []
    assert Operation.objects.get(package_name="Late").error_step == "persist"


def test_it_makes_a_rival_wait_for_the_committing_import_and_refuses_it(web_storage, web_env, pkgdir, tmp_path):  # type: ignore[no-untyped-def]
    pause = Pause(tmp_path / "go")
    importing = _importing(_declaring(pkgdir, "First"), web_env(EXTADMIN_FAULTS=pause.at("import.after_persist")))
    pause.wait_reached()  # inside its committing transaction, its entity rows written but not committed
    # Let the child commit while the rival waits for the lock at its own commit.
    threading.Timer(1.5, pause.release).start()

    with pytest.raises(Conflict) as refused:
        _import(_declaring(pkgdir, "Rival"), web_storage)
    importing.communicate(timeout=60)

    assert importing.returncode == 0
    assert str(refused.value) == (
        "persist: Thing 'PumpMonitor' is already declared by First:1.0.0, "
        "imported while this import ran; nothing was imported"
    )
    assert package_traces("Rival") == NO_TRACES
    assert list(Entity.objects.values_list("name", "package__name")) == [("PumpMonitor", "First")]
    assert web_storage.installed_names() == ["First"]
    assert leftovers(web_storage) == []
