"""Step 4's bytes sent to PostgreSQL while validation and the unzip work on the disk.

The import's last step stores the zip in the database, and that ``COPY`` used to start only after
the unzip had finished, though it needs nothing the unzip produces. Now, on PostgreSQL, a thread
with a connection of its own opens the transaction that will commit steps 3 and 4, and sends the
zip into it as the chunks of a ``StagedArchive`` while the main thread validates and unpacks the
same file. Then ``finish`` runs steps 3 and 4 in that thread, in that transaction: step 4 re-points
the staged chunks to the package (one UPDATE, no byte moves) and the commit shows everything at
once, exactly as before. The order the cluster sees does not change, because nothing is visible
before that commit: the archive still appears last, with the package. A refusal, a failure, a
cancel or a killed process rolls the transaction back, and no other connection ever sees a staged
chunk.

The transaction's only writes before step 3 are its own new rows, which no other transaction can
see or wait for, so the entity lock that step 3 takes first still comes before any lock another
import could hold.

It is an optimisation only: on SQLite (one writer at a time), inside a caller's transaction (whose
rows another connection cannot see), or when sending ahead failed, ``start`` or ``finish`` says
so and the import writes its archive in step 4 on its own connection, as it always did.
"""
from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from extadmin import faults
from extadmin.archive import Staged, copy_chunks_postgresql
from extadmin.models import StagedArchive

log = logging.getLogger(__name__)

Steps = Callable[[Staged], None]


class _RolledBack(Exception):
    """Ends the thread's transaction without committing it."""


class ArchiveAhead:
    """One import's zip, sent in a transaction of its own thread; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._work: queue.Queue[Steps | None] = queue.Queue(maxsize=1)
        self._abandoned = threading.Event()  # refused, or written by the caller: stop sending
        self._cancelled = threading.Event()
        # Not Thread.join(): interrupted by a signal, Python 3.11's join() can mark a thread that
        # still runs as stopped (bpo-45274), and a second join() then returns at once.
        self._done = threading.Event()
        self._ran = False  # the steps ran here (their outcome is the import's)
        self._error: BaseException | None = None
        # The thread sees what the caller's context holds (who is logged as doing this import).
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._serve,), name="archive-ahead", daemon=True)

    @classmethod
    def start(cls, path: Path, exits: ExitStack) -> ArchiveAhead | None:
        """Start sending ``path`` ahead, or None where it cannot help (see the module docstring).
        ``exits`` abandons it when it closes (a no-op once steps 3–4 committed in it): registered
        before the thread starts, so nothing that interrupts the caller leaves the thread waiting
        with its connection in an open transaction."""
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return None
        ahead = cls(path)
        exits.callback(ahead.abandon)
        ahead._thread.start()
        return ahead

    def _serve(self) -> None:
        try:
            with transaction.atomic():
                staged = self._send()
                steps = self._work.get()
                if steps is None or not connection.is_usable():
                    raise _RolledBack  # refused, or the connection was lost while it waited: the caller writes
                self._ran = True
                steps(staged)
                if self._cancelled.is_set():
                    raise _RolledBack  # the caller was interrupted before this commit: it backs out
        except _RolledBack:
            pass
        except BaseException as exc:  # handed to the caller, which raises it
            self._error = exc
            if not self._ran:
                log.warning("sending the archive of %s ahead failed (%s); step 4 writes it", self._path.name, exc)
        finally:
            connection.close()
            self._done.set()

    def _send(self) -> Staged:
        staged = StagedArchive.objects.create()
        chunk_size = settings.EXTADMIN_CHUNK_BYTES
        with self._path.open("rb") as f:
            count = copy_chunks_postgresql("staged_id", staged.pk, f, chunk_size, stop=self._stopped)
            sent = f.tell()
        faults.checkpoint("import.archive_sent")
        return Staged(staged_id=staged.pk, chunk_count=count, chunk_size=chunk_size, size=sent)

    def _stopped(self) -> bool:
        return self._abandoned.is_set() or self._cancelled.is_set()

    def finish(self, steps: Steps) -> bool:
        """Run ``steps`` (steps 3 and 4) in the thread's transaction and commit it.

        Returns False when they did not run there (sending ahead failed): then the caller runs
        them itself, as without this. Raises what
        ``steps`` raised, after the rollback. If the caller is interrupted while it waits, the
        transaction is rolled back unless it already committed, and the caller hears of it only
        once the thread is done, so it knows which of the two happened.
        """
        self._work.put(steps)
        self._join()
        if not self._ran:
            return False
        if self._error is not None:
            raise self._error
        return True

    def abandon(self) -> None:
        """The import ends without steps 3–4 here (refused, failed, or written by the caller): roll back."""
        self._abandoned.set()
        if self._thread.ident is None:  # never started
            return
        if not self._done.is_set():
            try:
                self._work.put_nowait(None)
            except queue.Full:  # finish() handed the steps over already: let them end, then roll back
                self._cancelled.set()
        self._join()

    def _join(self) -> None:
        try:
            self._done.wait()
        except BaseException:
            self._cancelled.set()
            self._done.wait()
            raise
