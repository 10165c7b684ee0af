"""The importing process is SIGKILLed after each step of the import (a real child process).

Promise (reliability.md, Faults): the importing process dies after any step → no other node ever
sees the package; the next attempt succeeds; leftovers are cleaned; the killed operation is
recorded as interrupted, not left "running".
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import manage
from tests.reliability.world import folder_matches_archive, package_traces

BEFORE_COMMIT = ["import.after_checksum", "import.after_unzip", "import.after_persist", "import.after_archive"]
ALL_POINTS = [*BEFORE_COMMIT, "import.after_commit"]
NOTHING = {"package": 0, "entities": 0, "chunks": 0, "archive": 0, "sync_states": 0}

pytestmark = pytest.mark.django_db(transaction=True)


def _listed() -> dict[str, str]:
    from io import StringIO

    out = StringIO()
    call_command("list_extensions", "--json", stdout=out)
    return {p["name"]: p["checksum"] for p in json.loads(out.getvalue())}


def _other_node() -> Node:
    """A second node that already reported itself: it must never be shown the killed import."""
    return Node.objects.create(name="node-2", storage_path="/nowhere", last_heartbeat=timezone.now())


def _retry(path: Path, storage: NodeStorage) -> ExtensionPackage:
    (result,) = package_import(
        items=[ImportItem(path=path)], actor=Actor(via="cli"), node_name="web", storage_root=storage.root
    )
    assert result.package is not None
    return result.package


def _killed_import(path: Path, env, point: str) -> None:  # type: ignore[no-untyped-def]
    r = manage("import_extension", str(path), env=env(EXTADMIN_FAULTS=f"{point}=kill"))
    assert r.returncode == -9, f"the importer was not killed at {point}: rc={r.returncode} {r.stderr}"


@pytest.mark.parametrize("point", BEFORE_COMMIT)
def test_it_keeps_a_killed_import_invisible_and_the_retry_succeeds(point, web_storage, web_env, pkgdir):
    other = _other_node()
    path = build_package(pkgdir, "Killed", "1.0.0")

    _killed_import(path, web_env, point)

    assert package_traces("Killed") == NOTHING
    assert not SyncState.objects.filter(node=other).exists()
    assert "Killed" not in _listed()
    killed = Operation.objects.get(package_name="Killed")
    assert killed.outcome == Operation.Outcome.RUNNING  # nobody has looked yet

    package = _retry(path, web_storage)

    assert folder_matches_archive(web_storage, package) is None
    assert leftovers(web_storage) == []
    assert _listed() == {"Killed": package.sha256}
    killed.refresh_from_db()
    assert killed.outcome == Operation.Outcome.INTERRUPTED
    assert "nothing of it was kept" in killed.error
    assert not SyncState.objects.filter(node=other).exists()  # node-2 has not synced yet


@pytest.mark.parametrize("point", BEFORE_COMMIT)
def test_it_keeps_the_old_version_when_an_upgrade_is_killed(point, web_storage, web_env, pkgdir):
    other = _other_node()
    old = _retry(build_package(pkgdir, "Upgraded", "1.0.0"), web_storage)
    SyncState.objects.create(
        node=other, package_name="Upgraded", desired_version="1.0.0", desired_sha256=old.sha256,
        installed_version="1.0.0", installed_sha256=old.sha256, state=SyncState.State.INSTALLED,
        changed_at=timezone.now(),
    )
    new_path = build_package(pkgdir, "Upgraded", "1.1.0")

    _killed_import(new_path, web_env, point)

    # The database, and so every other node, still has 1.0.0 complete.
    package = ExtensionPackage.objects.get(name="Upgraded")
    assert (package.version, package.sha256) == ("1.0.0", old.sha256)
    assert package.archive.sha256 == old.sha256
    assert package.chunks.count() == package.archive.chunk_count
    assert _listed() == {"Upgraded": old.sha256}
    assert SyncState.objects.get(node=other).installed_sha256 == old.sha256

    upgraded = _retry(new_path, web_storage)

    assert upgraded.version == "1.1.0"
    assert folder_matches_archive(web_storage, upgraded) is None
    assert leftovers(web_storage) == []
    assert Operation.objects.get(package_name="Upgraded", version="1.1.0", pid__isnull=False,
                                 outcome=Operation.Outcome.INTERRUPTED)


def test_it_keeps_an_import_killed_after_commit_and_says_so(web_storage, web_env, pkgdir):
    """Killed after the commit: the package is in, complete; the record must not say it was lost."""
    _other_node()
    path = build_package(pkgdir, "Committed", "1.0.0")

    _killed_import(path, web_env, "import.after_commit")

    package = ExtensionPackage.objects.get(name="Committed")
    assert package.chunks.count() == package.archive.chunk_count
    assert folder_matches_archive(web_storage, package) is None
    assert _listed() == {"Committed": package.sha256}

    again = _retry(path, web_storage)  # a re-import of the same version: the operator's retry

    assert again.sha256 == package.sha256
    assert leftovers(web_storage) == []
    killed = Operation.objects.filter(package_name="Committed").order_by("started_at", "id").first()
    assert killed.outcome == Operation.Outcome.INTERRUPTED
    assert "nothing of it was kept" not in killed.error
    assert "kept" in killed.error


def test_it_cleans_the_retired_folder_of_an_upgrade_killed_after_commit(web_storage, web_env, pkgdir):
    _retry(build_package(pkgdir, "Retired", "1.0.0"), web_storage)
    new_path = build_package(pkgdir, "Retired", "2.0.0")

    _killed_import(new_path, web_env, "import.after_commit")

    assert ExtensionPackage.objects.get(name="Retired").version == "2.0.0"
    assert [p.split("/")[0] for p in leftovers(web_storage)] == ["retired"]

    again = _retry(new_path, web_storage)

    assert folder_matches_archive(web_storage, again) is None
    assert leftovers(web_storage) == []
