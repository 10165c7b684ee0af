"""The zip sent to PostgreSQL while the import unzips (``extadmin.archive_ahead``).

Real PostgreSQL, real connections and threads: the import runs as the services run it (not inside
a test transaction), and the test watches it from a connection of its own.
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from extadmin.archive import Staged, archive_copy_to
from extadmin.archive_ahead import ArchiveAhead
from extadmin.models import Archive, ArchiveChunk, ExtensionPackage, Quarantine, StagedArchive
from extadmin.packaging import Refusal
from extadmin.rollback import package_rollback
from extadmin.versions import retained_copy_to
from tests.extadmin.conftest import (
    FAULT_POINTS,
    FAULT_STEPS,
    assert_installed,
    assert_nothing_of,
    import_path,
    nonzero_rows,
    sha256_of,
)

AUDIT = ("extadmin.Operation", "extadmin.OperationStep")  # the failed import's record stays

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def others_in_transaction() -> list[tuple[str, bool]]:
    """The other connections to this database inside a transaction: (state, whether it wrote)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return list(cursor.fetchall())


def eventually(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)
    return result


def current_archive_sha256(package: ExtensionPackage) -> str:
    out = io.BytesIO()
    archive_copy_to(package_id=package.pk, out=out, expected_sha256=package.sha256)
    return hashlib.sha256(out.getvalue()).hexdigest()


class Importing:
    """An import in a thread of its own, as a request or a command runs it."""

    def __init__(self, path: Path) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(path,))
        self.thread.start()

    def _run(self, path: Path) -> None:
        try:
            self.result = import_path(path)
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def join(self) -> Any:
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def held_after_unzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The import stops after its unzip until the returned file exists."""
    gate = tmp_path / "go-on"
    monkeypatch.setenv("EXTADMIN_FAULTS", f"import.after_unzip=wait:{gate}")
    yield gate
    gate.touch()


def test_the_zip_is_in_the_imports_transaction_before_the_unzip_ends_and_no_one_sees_it_before_the_commit(
    node_storage, make_package, held_after_unzip
):
    path = make_package("Alpha", files={"lib/big.jar": os.urandom(3 * 1024 * 1024)})
    importing = Importing(path)
    try:
        eventually(lambda: held_after_unzip.with_name("go-on.reached").exists())

        # Another connection, inside a transaction that already wrote: the zip's chunks, sent ahead.
        assert eventually(lambda: ("idle in transaction", True) in others_in_transaction())
        assert not ArchiveChunk.objects.exists()
        assert not StagedArchive.objects.exists()
        assert not ExtensionPackage.objects.exists()
    finally:
        held_after_unzip.touch()
        importing.join()

    package = assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert current_archive_sha256(package) == sha256_of(path)
    assert not StagedArchive.objects.exists()
    assert not ArchiveChunk.objects.filter(package=None).exists()
    assert eventually(lambda: others_in_transaction() == [])


def test_a_refused_package_leaves_nothing_of_what_was_sent_ahead(node_storage, make_package):
    path = make_package("Beta", depends_on="Missing:1.0.0", files={"lib/big.jar": os.urandom(2 * 1024 * 1024)})

    with pytest.raises(Refusal) as refused:
        import_path(path)

    assert (refused.value.step, "Missing:1.0.0, which is not installed" in refused.value.reason) == ("validate", True)
    assert_nothing_of(node_storage, "Beta")
    assert nonzero_rows(ignore=AUDIT) == {}
    assert eventually(lambda: others_in_transaction() == [])  # rolled back before the refusal was answered


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_failure_at_any_step_after_the_zip_was_sent_ahead_backs_out_all_of_it(
    node_storage, make_package, monkeypatch, point
):
    path = make_package("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", f"{point}=raise")

    with pytest.raises(Refusal) as refused:
        import_path(path)

    assert (refused.value.step, refused.value.reason) == (FAULT_STEPS[point], f"fault injected at {point}")
    assert_nothing_of(node_storage, "Alpha")
    assert nonzero_rows(ignore=AUDIT) == {}
    assert eventually(lambda: others_in_transaction() == [])


def test_when_sending_ahead_fails_step_4_writes_the_archive_itself(node_storage, make_package, monkeypatch, caplog):
    path = make_package("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", "import.archive_sent=raise")

    import_path(path)

    package = assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert current_archive_sha256(package) == sha256_of(path)
    assert not StagedArchive.objects.exists()
    assert "sending the archive of Alpha-1.0.0.zip ahead failed (fault injected at import.archive_sent)" in caplog.text


def test_upgrades_rollbacks_and_bytes_already_retained_keep_every_version_whole(node_storage, make_package):
    one, two = make_package("Alpha", "1.0.0"), make_package("Alpha", "2.0.0")
    import_path(one)
    import_path(two)  # sent ahead: the new archive re-points the staged chunks, the old one is retained

    package = assert_installed(node_storage, two, "Alpha", "2.0.0")
    assert current_archive_sha256(package) == sha256_of(two)
    retained = package.retained_versions.get()
    out = io.BytesIO()
    retained_copy_to(version_id=retained.pk, out=out, expected_sha256=sha256_of(one))

    package_rollback(name="Alpha", to="1.0.0")  # not sent ahead: its bytes are retained already
    assert current_archive_sha256(ExtensionPackage.objects.get()) == sha256_of(one)

    import_path(two)  # sent ahead, but these bytes are retained: the staged chunks go unused
    package = assert_installed(node_storage, two, "Alpha", "2.0.0")
    assert current_archive_sha256(package) == sha256_of(two)
    assert not StagedArchive.objects.exists()
    assert ArchiveChunk.objects.count() == Archive.objects.get().chunk_count + sum(
        r.chunk_count for r in package.retained_versions.all()
    )


class Interrupted(BaseException):
    pass


def test_an_interrupt_while_the_steps_run_rolls_them_back_unless_they_committed(tmp_path):
    path = tmp_path / "some.zip"
    path.write_bytes(os.urandom(1024))
    running, go_on = threading.Event(), threading.Event()

    def steps(staged: Staged) -> None:
        Quarantine.objects.create(package_name="Alpha", version="1.0.0", sha256="a" * 64, reason="written by the steps")
        running.set()
        go_on.wait(10)

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    def interrupt_the_waiting_caller() -> None:
        running.wait(10)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        time.sleep(0.3)
        go_on.set()

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with ExitStack() as exits:
            ahead = ArchiveAhead.start(path, exits)
            assert ahead is not None
            threading.Thread(target=interrupt_the_waiting_caller).start()
            with pytest.raises(Interrupted):
                ahead.finish(steps)
    finally:
        signal.signal(signal.SIGUSR1, previous)

    assert go_on.is_set()  # the caller heard of the interrupt only once the steps were done
    assert not Quarantine.objects.exists()  # and they were rolled back, not committed
    assert not StagedArchive.objects.exists()
    assert eventually(lambda: others_in_transaction() == [])


def test_an_import_that_ends_right_after_starting_to_send_leaves_no_transaction_open(tmp_path):
    """The caller's exit stack holds the abandon from before the thread starts: an interrupt in the
    very next line still rolls the thread's transaction back and frees its connection."""
    path = tmp_path / "some.zip"
    path.write_bytes(os.urandom(4 * 1024 * 1024))

    with pytest.raises(Interrupted), ExitStack() as exits:
        assert ArchiveAhead.start(path, exits) is not None
        raise Interrupted

    assert eventually(lambda: others_in_transaction() == [])
    assert not StagedArchive.objects.exists()
