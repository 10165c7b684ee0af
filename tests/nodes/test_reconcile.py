from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from extadmin.models import ArchiveChunk, ExtensionPackage, Operation
from extadmin.removal import package_remove
from extadmin.storage import NodeStorage
from nodes.lease import lease_claim
from nodes.models import ClusterSettings, Node, SyncRun, SyncState
from nodes.reconcile import SKIPPED, describe_sync_error
from tests.nodes.conftest import Importer, Syncer
from tests.packages import folder_files, zip_files

pytestmark = pytest.mark.django_db


def in_thread(results: list, fn) -> threading.Thread:  # type: ignore[no-untyped-def]
    """Run ``fn`` in a thread with its own database connection, closed at the end."""

    def run() -> None:
        try:
            results.append(fn())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def state_of(package: str, node: str = "n1") -> SyncState:
    return SyncState.objects.get(node__name=node, package_name=package)


def assert_holds(storage: NodeStorage, package: ExtensionPackage, zip_path: Path) -> None:
    folder = storage.package_dir(package.name)
    assert storage.read_chk(package.name) == package.sha256 == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert folder_files(folder, skip=f"{package.name}.chk") == zip_files(zip_path)


def test_it_installs_every_package_with_its_chk_and_exactly_the_zip_files(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    alpha = import_package("Alpha")
    beta = import_package("Beta", "2.1.0")

    result = sync()

    assert result.ok, result.error
    assert result.actions == ["installed Alpha 1.0.0", "installed Beta 2.1.0"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")
    assert_holds(n1, beta, pkgdir / "Beta-2.1.0.zip")
    s = state_of("Beta")
    assert (s.state, s.installed_version, s.installed_sha256, s.error) == ("installed", "2.1.0", beta.sha256, "")
    assert s.duration_ms is not None and s.finished_at is not None
    run = SyncRun.objects.get(pk=result.run_id)
    assert (run.outcome, run.trigger, run.actions) == ("succeeded", "manual", result.actions)
    assert run.finished_at is not None
    assert not list((n1.work / "staging").iterdir())


def test_it_does_nothing_the_second_time(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    sync()
    before = SyncState.objects.get(package_name="Alpha", node__name="n1").changed_at

    result = sync()

    assert result.ok and result.actions == []
    assert state_of("Alpha").changed_at == before


def test_it_repairs_an_altered_file(import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path) -> None:
    alpha = import_package("Alpha")
    sync()
    jar = n1.package_dir("Alpha") / "lib" / "alpha.jar"
    data = bytearray(jar.read_bytes())
    data[100] ^= 0xFF  # same size: only a content check can see it
    jar.write_bytes(bytes(data))

    assert sync(verify_contents=False).actions == []  # names and sizes match
    result = sync(verify_contents=True)

    assert result.ok
    assert result.actions == ["repaired Alpha: file lib/alpha.jar was altered"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")
    assert state_of("Alpha").state == "installed"


def test_it_repairs_a_folder_deleted_by_hand(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    alpha = import_package("Alpha")
    sync()
    shutil.rmtree(n1.package_dir("Alpha"))

    result = sync(verify_contents=False)

    assert result.actions == ["repaired Alpha: the folder was missing"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")


def test_it_repairs_a_missing_or_wrong_chk(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    alpha = import_package("Alpha")
    sync()
    n1.chk_path("Alpha").unlink()

    assert sync(verify_contents=False).actions == ["repaired Alpha: Alpha.chk was missing"]
    n1.chk_path("Alpha").write_text("0" * 64 + "\n")
    assert sync(verify_contents=False).actions == ["repaired Alpha: Alpha.chk held a wrong checksum"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")


def test_it_removes_an_extra_file_and_what_the_database_no_longer_has(
    import_package: Importer, sync: Syncer, n1: NodeStorage
) -> None:
    import_package("Alpha")
    import_package("Beta")
    sync()
    (n1.package_dir("Alpha") / "ui" / "dropped.js").write_text("x")
    package_remove(name="Beta")

    result = sync(verify_contents=False)

    assert result.ok
    assert result.actions == ["repaired Alpha: unexpected file ui/dropped.js", "removed Beta"]
    assert n1.installed_names() == ["Alpha"]
    assert not SyncState.objects.filter(node__name="n1", package_name="Beta").exists()


def test_it_updates_to_the_new_version(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    import_package("Alpha", "1.0.0")
    sync()
    new = import_package("Alpha", "1.1.0")

    result = sync()

    assert result.actions == ["updated Alpha to 1.1.0 (was 1.0.0)"]
    assert_holds(n1, new, pkgdir / "Alpha-1.1.0.zip")
    assert (state_of("Alpha").installed_version, state_of("Alpha").state) == ("1.1.0", "installed")


@pytest.mark.django_db(transaction=True)
def test_it_reports_the_new_version_before_it_deletes_the_previous_copy(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deleting thousands of old files is housekeeping: the node has converged once the new copy is proven."""
    import_package("Alpha", "1.0.0")
    sync()
    new = import_package("Alpha", "1.1.0")
    release = tmp_path / "release"
    monkeypatch.setenv("EXTADMIN_FAULTS", f"sync.after_report=wait:{release}")
    results: list = []

    thread = in_thread(results, lambda: sync(verify_contents=False))
    try:
        reached = release.with_name("release.reached")
        deadline = time.monotonic() + 30
        while not reached.exists() and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reached.exists(), "the sync never reached the point between its report and its clean-up"
        s = state_of("Alpha")
        assert (s.state, s.installed_version, s.installed_sha256) == ("installed", "1.1.0", new.sha256)
        assert_holds(n1, new, pkgdir / "Alpha-1.1.0.zip")
        [previous] = list((n1.work / "retired").iterdir())  # not deleted yet
        assert n1.read_chk("Alpha") != (previous / "Alpha.chk").read_text().strip()
    finally:
        release.touch()
        thread.join(timeout=30)

    assert results and results[0].ok, results
    assert not list((n1.work / "retired").iterdir())
    assert not list((n1.work / "staging").iterdir())


def test_it_installs_dependencies_first_and_removes_dependents_first(
    import_package: Importer, sync: Syncer, n1: NodeStorage
) -> None:
    import_package("Zeta")
    import_package("Mid", depends_on="Zeta:1.0.0")
    import_package("Apex", depends_on="Mid:1.0.0")

    assert sync().actions == ["installed Zeta 1.0.0", "installed Mid 1.0.0", "installed Apex 1.0.0"]

    # The node was offline while all three were removed: only its disk says who depends on whom.
    for name in ["Apex", "Mid", "Zeta"]:
        package_remove(name=name)
    assert sync().actions == ["removed Apex", "removed Mid", "removed Zeta"]
    assert n1.installed_names() == []


def test_it_fails_a_package_whose_archive_is_corrupt_and_keeps_the_old_copy(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    old = import_package("Alpha", "1.0.0")
    sync()
    new = import_package("Alpha", "1.1.0")
    chunk = ArchiveChunk.objects.get(package=new, seq=0)
    chunk.data = b"PK" + bytes(chunk.data)[2:][::-1]
    chunk.save()

    result = sync()

    assert result.outcome == "failed"
    assert result.failures["Alpha"].startswith("checksum mismatch:")
    s = state_of("Alpha")
    assert (s.state, s.installed_version) == ("failed", "1.0.0")
    assert s.error.startswith("checksum mismatch:")
    assert_holds(n1, old, pkgdir / "Alpha-1.0.0.zip")  # never a mix
    assert not list((n1.work / "staging").iterdir())


def test_it_changes_nothing_while_syncing_is_paused(import_package: Importer, sync: Syncer, n1: NodeStorage) -> None:
    import_package("Alpha")
    ClusterSettings.objects.create(pk=1, sync_paused=True, paused_at=timezone.now())

    result = sync()

    assert result.outcome == "paused" and result.actions == []
    assert n1.installed_names() == []
    assert Node.objects.get(name="n1").behind_since is not None

    ClusterSettings.objects.filter(pk=1).update(sync_paused=False)
    assert sync().actions == ["installed Alpha 1.0.0"]
    assert Node.objects.get(name="n1").behind_since is None


def test_it_skips_a_nudge_that_a_later_sync_already_served(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    requested = timezone.now()
    time.sleep(0.01)
    sync(trigger=SyncRun.Trigger.PERIODIC)

    result = sync(trigger=SyncRun.Trigger.NUDGE, requested_at=requested)

    assert result.outcome == SKIPPED
    assert SyncRun.objects.filter(node__name="n1").count() == 1
    assert sync(trigger=SyncRun.Trigger.NUDGE, requested_at=timezone.now()).outcome == "succeeded"


def test_it_takes_over_a_lease_past_its_deadline_and_fails_that_sync(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    node = Node.objects.create(
        name="n1", sync_lock_owner="elsewhere:4242:hung", sync_lock_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    hung = SyncRun.objects.create(node=node, trigger="nudge", started_at=timezone.now() - timezone.timedelta(hours=1))

    result = sync()

    assert result.ok
    hung.refresh_from_db()
    assert hung.outcome == "timed_out" and "deadline" in hung.error
    assert Node.objects.get(name="n1").sync_lock_owner == ""


def test_it_takes_over_the_lease_of_a_dead_agent_at_once(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
    node = Node.objects.create(
        name="n1", sync_lock_owner=f"{socket.gethostname()}:{dead_pid}:x",
        sync_lock_until=timezone.now() + timezone.timedelta(hours=1),
    )
    killed = SyncRun.objects.create(node=node, trigger="startup", started_at=timezone.now())

    assert sync().ok
    killed.refresh_from_db()
    assert killed.outcome == "failed" and "stopped before" in killed.error


@pytest.mark.django_db(transaction=True)
def test_it_never_deletes_when_the_database_cannot_be_read(
    import_package: Importer, sync: Syncer, n1: NodeStorage
) -> None:
    import_package("Alpha")
    sync()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE extadmin_archive RENAME TO extadmin_archive_away")
    try:
        result = sync()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE extadmin_archive_away RENAME TO extadmin_archive")

    assert result.outcome == "failed"
    assert "could not read the packages from the database" in result.error
    assert result.actions == []
    assert n1.installed_names() == ["Alpha"]
    assert state_of("Alpha").state == "installed"


@pytest.mark.django_db(transaction=True)
def test_it_runs_one_sync_at_a_time(import_package: Importer, sync: Syncer, n1: NodeStorage) -> None:
    import_package("Alpha")
    node = Node.objects.create(name="n1")
    lease = lease_claim(node=node)  # another sync of n1 is running
    results: list = []
    waiter = in_thread(results, sync)
    time.sleep(1)

    assert results == [] and n1.installed_names() == []  # waiting, not running beside it
    lease.release()
    waiter.join(timeout=30)

    assert [r.actions for r in results] == [["installed Alpha 1.0.0"]]


@pytest.mark.django_db(transaction=True)
def test_it_stops_a_sync_that_runs_past_its_deadline(
    import_package: Importer, sync: Syncer, n1: NodeStorage, settings
) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    settings.EXTADMIN_SYNC_DEADLINE = 1
    results: list = []
    with n1.lock("Alpha", wait=False):  # the sync stalls on this package past its deadline
        worker = in_thread(results, sync)
        time.sleep(1.5)
    worker.join(timeout=30)

    [result] = results
    assert result.outcome == "timed_out" and "deadline" in result.error
    assert n1.installed_names() == []  # it stopped before changing the disk
    assert SyncRun.objects.get(pk=result.run_id).outcome == "timed_out"
    assert state_of("Alpha").state == "failed" and "deadline" in state_of("Alpha").error
    assert Node.objects.get(name="n1").sync_lock_owner == ""  # the lease is free again


def test_it_words_a_full_disk_for_the_operator(tmp_path: Path) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)  # a real ENOSPC from the kernel
    try:
        with pytest.raises(OSError) as raised:
            os.write(fd, b"x")
    finally:
        os.close(fd)
    full = raised.value
    full.filename = str(tmp_path / "extensions")

    assert describe_sync_error(full) == f"disk full ({tmp_path / 'extensions'})"


def test_it_keeps_only_the_latest_periodic_pass_that_changed_nothing(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    sync(trigger=SyncRun.Trigger.PERIODIC)
    for _ in range(3):
        sync(trigger=SyncRun.Trigger.PERIODIC)

    runs = list(SyncRun.objects.filter(node__name="n1").order_by("started_at").values_list("trigger", "actions"))

    assert runs == [("periodic", ["installed Alpha 1.0.0"]), ("periodic", [])]


def test_it_never_empties_a_node_from_a_database_without_any_history(
    import_package: Importer, sync: Syncer, n1: NodeStorage
) -> None:
    import_package("Alpha")
    sync()
    # As if the node were pointed at a fresh database: no package, no operation ever.
    ExtensionPackage.objects.all().delete()
    Operation.objects.all().delete()

    result = sync()

    assert result.outcome == "failed" and "wrong database" in result.error
    assert n1.installed_names() == ["Alpha"]
