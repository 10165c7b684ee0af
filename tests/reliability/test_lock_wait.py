"""A removal or an import behind a sync hung on the same package folder: a bounded wait, a clear answer.

Promise (reliability.md, Faults): a removal or import waiting on a node's lock held by a hung sync
→ a bounded wait and a clear answer, never a request blocked for ever; the removal then changed
nothing, and succeeds once the lock is free. The hung sync is a real ``sync_node`` process stopped
by a fault checkpoint while it holds the package's folder lock (it repairs a deleted ``.chk``).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from tests.packages import build_package
from tests.processes import ROOT, manage, wait_for
from tests.reliability.doors import DOORS, REMOVED, Doors
from tests.reliability.world import package_traces

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 1.0


@pytest.fixture
def hung_sync(web_storage: NodeStorage, web_env, pkgdir: Path, settings) -> Iterator[tuple[ExtensionPackage, int]]:  # type: ignore[no-untyped-def]
    """Package ``Held`` imported on node web, and a sync of web hung while it holds ``Held``'s folder lock."""
    settings.EXTADMIN_LOCK_WAIT = WAIT
    (result,) = package_import(items=[ImportItem(path=build_package(pkgdir, "Held", "1.0.0"))], actor=Actor(),
                               node_name="web", storage_root=web_storage.root)
    assert result.package is not None
    web_storage.chk_path("Held").unlink()  # the sync repairs it: fetch, then hang holding the lock
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "sync_node", "--name", "web", "--storage", str(web_storage.root)],
        cwd=ROOT, env=web_env(EXTADMIN_FAULTS="sync.after_fetch=hang"), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: SyncState.objects.filter(node__name="web", package_name="Held", state="syncing").exists(),
                 timeout=60, what="the sync to take Held's lock")
        yield result.package, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _within(seconds: float, call):  # type: ignore[no-untyped-def]
    """``call()`` in a thread; fails (instead of hanging the suite) when it does not answer in time."""
    answer: list[object] = []

    def run() -> None:
        try:
            answer.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert answer, f"no answer after {seconds} s: blocked behind the hung sync"
    return answer[0], time.monotonic() - started


@pytest.mark.parametrize("door", DOORS)
def test_it_refuses_a_removal_behind_a_hung_sync_after_a_bounded_wait(door, hung_sync, web_env, web_storage):
    package, sync_pid = hung_sync
    doors = Doors(env=web_env(EXTADMIN_LOCK_WAIT=str(WAIT)))

    (status, said), took = _within(30, lambda: doors.remove(door, "Held"))

    assert status == (1 if door == "cli" else 409), said
    assert re.search(
        rf"lock: another import or sync of Held has held this node's folder for \d+ s \(pid {sync_pid}\); "
        "nothing was removed, try again", said,
    ), said
    assert took < 20
    package.refresh_from_db()  # nothing changed: still active, archive whole, no removal recorded
    assert package.state == ExtensionPackage.State.ACTIVE
    assert package.chunks.count() == package.archive.chunk_count
    assert web_storage.package_dir("Held").is_dir()
    assert not Operation.objects.filter(kind="remove").exists()


@pytest.mark.parametrize("door", DOORS)
def test_it_removes_once_the_hung_sync_is_gone(door, hung_sync, web_env, web_storage):
    _, sync_pid = hung_sync
    doors = Doors(env=web_env(EXTADMIN_LOCK_WAIT=str(WAIT)))
    os.killpg(sync_pid, signal.SIGKILL)  # the kernel releases its lock

    (status, said), _ = _within(60, lambda: doors.remove(door, "Held"))

    assert status == REMOVED[door], said
    assert package_traces("Held")["package"] == 0
    assert not web_storage.package_dir("Held").exists()


def test_it_refuses_an_import_behind_a_hung_sync_at_once(hung_sync, web_env, pkgdir):
    _, sync_pid = hung_sync

    started = time.monotonic()
    r = manage("import_extension", str(build_package(pkgdir, "Held", "1.1.0")), env=web_env(), timeout=60)

    assert r.returncode == 1
    assert re.fullmatch(
        rf"error: lock: another import or sync of Held is running on this node \(pid {sync_pid}, for \d+ s\); "
        r"nothing was imported, try again\n", r.stderr,
    ), r.stderr
    assert time.monotonic() - started < 30
    assert ExtensionPackage.objects.get(name="Held").version == "1.0.0"
