"""One sync at a time per node: a lease on the ``Node`` row, shared by every entry point.

The agent's Celery task, its periodic pass and ``sync_node`` all claim the same lease with a
conditional ``UPDATE … WHERE`` (whoever changes the row got it; everyone else waits and polls).
A lease carries a deadline: a sync still running after it is failed, and the next claimant may
take the lease over. A lease held by a process of this host that no longer exists (an agent
killed mid-sync) is taken over at once instead of blocking the restarted agent until the deadline.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from extadmin.packaging import Refusal
from extadmin.processes import process_alive
from nodes.models import Node, SyncRun
from nodes.sync_states import sync_states_interrupt

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25

# Owners of the leases this process holds right now. A lease row naming this process but not in
# here was abandoned by it: its release failed (the database connection was cut mid-sync).
_held: set[str] = set()


class LeaseLost(Exception):
    """This sync no longer holds the node's lease (deadline passed, taken over, or the agent is stopping)."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def new_owner() -> str:
    """``host:pid:token``: unique per claim, and enough to tell whether the holder still lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    node_id: int
    owner: str
    until: datetime
    stop: threading.Event | None = field(default=None, repr=False)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this sync may go on changing the disk.

        Called between steps, before anything irreversible (the swap, a removal).
        """
        if self.stop is not None and self.stop.is_set():
            raise LeaseLost("the agent is stopping; the sync was interrupted", timed_out=False)
        if timezone.now() >= self.until:
            raise LeaseLost(
                f"the sync ran past its deadline of {settings.EXTADMIN_SYNC_DEADLINE:g} s", timed_out=True
            )
        if not Node.objects.filter(pk=self.node_id, sync_lock_owner=self.owner).exists():
            raise LeaseLost("another sync took over this node's lock after the deadline", timed_out=True)

    def release(self) -> None:
        _held.discard(self.owner)  # first: if the update below fails, the next sync here may take over
        # Conditional: a lease already taken over belongs to someone else now.
        Node.objects.filter(pk=self.node_id, sync_lock_owner=self.owner).update(
            sync_lock_owner="", sync_lock_until=None
        )


def lease_claim(*, node: Node, stop: threading.Event | None = None) -> Lease:
    """Wait until the node's lease is free (or expired, or held by a dead process), then take it.

    Syncs are never run in parallel and never dropped: a claimant waits as long as it takes, at
    most until the current holder's deadline. Raises ``LeaseLost`` if ``stop`` is set meanwhile.
    """
    owner = new_owner()
    while True:
        now = timezone.now()
        until = now + timedelta(seconds=settings.EXTADMIN_SYNC_DEADLINE)
        row = Node.objects.filter(pk=node.pk).values_list("sync_lock_owner", "sync_lock_until").first()
        if row is None:  # forgotten meanwhile (forget_node): no lease to wait for, and none to claim
            raise Refusal("sync", f"node {node.name} was forgotten; its next sync registers it again")
        holder, held_until = row
        expired = bool(holder) and held_until is not None and held_until < now
        dead = bool(holder) and not expired and _holder_is_dead(holder)
        if not holder or expired or dead or held_until is None:
            # Held before the row says so: another thread of this process that reads the row must
            # never mistake this claim for an abandoned one.
            _held.add(owner)
            # Conditional on what we just read: if anyone else claimed it meanwhile, nothing changes.
            try:
                claimed = Node.objects.filter(pk=node.pk, sync_lock_owner=holder).update(
                    sync_lock_owner=owner, sync_lock_until=until
                )
            except BaseException:
                _held.discard(owner)
                raise
            if claimed == 1:
                try:
                    _close_abandoned_runs(node_id=node.pk, now=now, timed_out=expired)
                except BaseException:
                    _held.discard(owner)  # claimed but never used: the next claimant here takes it over
                    raise
                return Lease(node_id=node.pk, owner=owner, until=until, stop=stop)
            _held.discard(owner)
            continue
        if stop is not None and stop.wait(POLL_SECONDS):
            raise LeaseLost("the agent is stopping", timed_out=False)
        if stop is None:
            time.sleep(POLL_SECONDS)


def _holder_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text == str(os.getpid()):
        return owner not in _held  # ours, but no sync of this process holds it any more
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's process: only its deadline tells
    return not process_alive(int(pid_text))


def _close_abandoned_runs(*, node_id: int, now: datetime, timed_out: bool) -> None:
    """Runs still 'running' belong to the holder whose lease we just took: past its deadline, or dead.

    Only the lease holder writes runs, so once we hold it nothing else is running on this node.
    """
    if timed_out:
        outcome = SyncRun.Outcome.TIMED_OUT
        error = f"the sync ran past its deadline of {settings.EXTADMIN_SYNC_DEADLINE:g} s and was failed"
    else:
        outcome = SyncRun.Outcome.FAILED
        error = "the agent stopped before this sync finished; the next sync took over"
    SyncRun.objects.filter(node_id=node_id, outcome=SyncRun.Outcome.RUNNING).update(
        outcome=outcome, finished_at=now, error=error
    )
    # Its half-done packages say so until the next pass proves what the disk holds.
    sync_states_interrupt(node_id=node_id, error=error, now=now)
