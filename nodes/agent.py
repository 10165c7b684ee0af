"""The node agent (``manage.py run_node``): one per node, beside it, syncing its own storage.

Start-up order matters:
  1. claim the storage (``extadmin.claim``) — refuse when ``<storage>/.extadmin/node`` names another
     node, or when a live agent holds the storage's lock (flock, released by the kernel when that
     agent dies); through a linked ``extensions/``, the storage it leads into too
  2. register the node (host, storage, pid, agent version, started) and start the heartbeat
  3. startup reconcile, verifying file contents, before anything else touches the disk
  4. the periodic reconcile thread — runs directly, not through the broker, so a node converges
     even while the broker is down or its messages are lost; it also wakes when the next retry of a
     failed checksum is due (``nodes.retries``); and, while this node holds a version staged for a
     rollout that activates all nodes together, a watch for that activation
  5. a Celery worker (solo pool: one task at a time) consuming only ``node.<name>`` for nudges, and
     taking no remote control commands
Every sync, whatever started it, takes the node's lease (``nodes.lease``): one at a time.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from celery.signals import setup_logging, worker_shutting_down
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from extadmin import faults
from extadmin.celery import app
from extadmin.claim import storage_claim
from extadmin.logs import log_context_default, log_format
from extadmin.operations import describe_error
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from nodes.agent_metrics import HEARTBEAT_FAILURES, agent_metrics_serve, agent_sync_observed
from nodes.broker import agent_broker_options
from nodes.credentials import database_refused, describe_refusal
from nodes.lease import LeaseLost
from nodes.models import SyncRun
from nodes.reconcile import SKIPPED, SyncRunResult, reconcile
from nodes.selectors import node_next_retry_at
from nodes.services import node_heartbeat, node_queue, node_register_agent
from rollouts.engine import rollout_activating

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
# The periodic loop looks this often whether a pass is due (a retry scheduled by another pass, the
# interval); and wakes this much after a retry's time, so that the pass finds it due.
PERIODIC_TICK = 1.0
RETRY_MARGIN = 0.05
ACTIVATION_POLL_SECONDS = 0.1  # while a staged version waits: how soon this node sees the activation
# Registering at start while the database cannot be reached: the first retry, and the longest wait.
REGISTER_RETRY_FIRST = 0.5
REGISTER_RETRY_MOST = 5.0
# What a failed connection says when retrying never mends it: the operator must fix a setting.
PERMANENT_CONNECTION_FAILURES = (
    "password authentication failed", "does not exist", "pg_hba.conf", "no password", "no such table",
)


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection: a later try may succeed.

    Not a refusal, a wrong password or a missing database (``PERMANENT_CONNECTION_FAILURES``), nor
    any error of a statement itself.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    said = str(exc).lower()
    return not any(words in said for words in PERMANENT_CONNECTION_FAILURES)


# --- the agent --------------------------------------------------------------------------------
@dataclass
class Agent:
    name: str
    storage: Path
    sync_interval: float
    heartbeat_interval: float
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    retry_due: float | None = None  # time.monotonic() of the next due retry, read after every pass
    staged: bool = False  # the last pass left a rollout's version staged: watch for its activation
    stopping: bool = False  # a shutdown signal arrived (set before ``stop``, whose lock a signal must not wait for)

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status. Raises ``Refusal`` when it may not start."""
        global _running
        log_context_default(node=self.name)  # every line of this process, in every thread, names its node
        claim = storage_claim(storage=NodeStorage(self.storage), node_name=self.name, exclusive=True)
        previous = _stop_on_signals(self.stop)
        try:
            if not self._register():  # 2.
                return 0  # stopped while the database could not be reached
            agent_metrics_serve(port=settings.EXTADMIN_AGENT_METRICS_PORT)
            self._start_thread("heartbeat", self._heartbeat_loop)
            _running = self
            self._sync(SyncRun.Trigger.STARTUP, verify_contents=True)  # 3. before anything else
            if self.stop.is_set():
                return 0
            self._start_thread("periodic", self._periodic_loop)  # 4.
            self._start_thread("activation", self._activation_loop)
            faults.checkpoint("agent.before_worker")
            _restore_signals(previous)  # the worker installs its own (warm shutdown)
            if self.stop.is_set():  # a signal after the check above: the worker would never hear of it
                return 0
            return self._work()  # 5.
        finally:
            _running = None
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=30)
            _restore_signals(previous)
            connection.close()
            claim.release()

    def _register(self) -> bool:
        """Register this agent; False if it was stopped first.

        A database that cannot be reached (restarting, failing over, its connections cut) is waited
        for, the waits growing to ``REGISTER_RETRY_MOST``, as the heartbeat and the syncs wait for
        it later: an agent started a moment too early must not exit. A refusal, or a setting that
        retrying never mends, ends the start as before.
        """
        delay = REGISTER_RETRY_FIRST
        while True:
            try:
                node_register_agent(
                    name=self.name, storage=NodeStorage(self.storage).root, pid=os.getpid(),
                    agent_version=AGENT_VERSION,
                )
                return True
            except DatabaseError as exc:
                # Another node's credentials, or a node row the console never created for these: say so.
                if database_refused(exc):
                    raise Refusal("start", describe_refusal(node_name=self.name, exc=exc)) from exc
                if not database_unavailable(exc):
                    raise
                log.warning("node %s could not register: the database cannot be reached (%s); trying again in %.1f s",
                            self.name, describe_error(exc).splitlines()[0], delay)
            connection.close()  # the next try opens a new connection
            if self.stop.wait(delay):
                return False
            delay = min(delay * 2, REGISTER_RETRY_MOST)

    def handle_nudge(self, *, requested_at: datetime | None) -> SyncRunResult | None:
        return self._sync(SyncRun.Trigger.NUDGE, verify_contents=False, requested_at=requested_at)

    def _sync(
        self, trigger: str, *, verify_contents: bool, requested_at: datetime | None = None
    ) -> SyncRunResult | None:
        t0 = time.monotonic()
        try:
            result = reconcile(
                node_name=self.name, storage_root=self.storage, trigger=trigger,
                verify_contents=verify_contents, requested_at=requested_at, stop=self.stop,
            )
        except LeaseLost:
            return None  # stopping while waiting for the lease
        except Exception as exc:
            agent_sync_observed(trigger=trigger, outcome="error", seconds=time.monotonic() - t0)
            if database_refused(exc):
                log.error("%s sync of node %s could not run: %s", trigger, self.name,
                          describe_refusal(node_name=self.name, exc=exc))
                return None
            # The database is down or similar: the next pass tries again.
            log.exception("%s sync of node %s could not run", trigger, self.name)
            return None
        agent_sync_observed(trigger=trigger, outcome=result.outcome, seconds=time.monotonic() - t0)
        if result.outcome != SKIPPED:
            self.staged = result.staged
        log.info("%s sync of %s: %s %s", trigger, self.name, result.outcome, "; ".join(result.actions))
        self._note_next_retry()
        return result

    def _note_next_retry(self) -> None:
        try:
            at = node_next_retry_at(name=self.name)
        except DatabaseError:
            log.warning("could not read when node %s retries next; it retries at its periodic pass", self.name)
            return
        ahead = None if at is None else (at - timezone.now()).total_seconds()
        # One already due that this pass left (syncing is paused, say) waits for the periodic pass:
        # waking for it at once would only repeat the pass.
        self.retry_due = None if ahead is None or ahead <= 0 else time.monotonic() + ahead

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._in_thread(target), name=f"{self.name}-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    @staticmethod
    def _in_thread(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            finally:
                connection.close()  # each thread has its own connection

        return run

    def _heartbeat_loop(self) -> None:
        while True:
            try:
                if not node_heartbeat(name=self.name):  # an operator deleted the node's row
                    self._register()
            except Exception as exc:  # the database is briefly unreachable: keep beating
                HEARTBEAT_FAILURES.inc()
                if isinstance(exc, Refusal):  # re-registering a deleted node row was refused
                    log.error("heartbeat of %s failed: %s", self.name, exc.reason)
                elif database_refused(exc):
                    log.error("heartbeat of %s failed: %s", self.name, describe_refusal(node_name=self.name, exc=exc))
                else:
                    log.warning("heartbeat of %s failed: %s", self.name, exc)
                connection.close()
            if self.stop.wait(self.heartbeat_interval):
                return

    def _periodic_loop(self) -> None:
        last = time.monotonic()
        while not self.stop.wait(min(max(self._periodic_due_in(last), 0.0), PERIODIC_TICK)):
            if self._periodic_due_in(last) > 0:
                continue
            self._sync(SyncRun.Trigger.PERIODIC, verify_contents=False)
            last = time.monotonic()
            connection.close()  # never hold a connection across a whole interval

    def _periodic_due_in(self, last: float) -> float:
        """Seconds until the next periodic pass: the interval after the last one, or a due retry if sooner.

        Any pass (a nudge's too) may schedule a retry, so the loop looks again every tick, in memory.
        """
        due = last + self.sync_interval
        if self.retry_due is not None:
            due = min(due, self.retry_due + RETRY_MARGIN)
        return due - time.monotonic()
    def _activation_loop(self) -> None:
        """Swap a staged version in as soon as its rollout activates: every admitted node within a
        fraction of a second of the others, whether or not the broker's nudge reaches this node."""
        while not self.stop.wait(ACTIVATION_POLL_SECONDS):
            try:
                due = self.staged and rollout_activating(node_name=self.name)
            except DatabaseError as exc:
                log.warning("%s: could not look at its rollouts: %s", self.name, exc)
                connection.close()
                continue
            if due:
                self._sync(SyncRun.Trigger.NUDGE, verify_contents=False)

    def _work(self) -> int:
        # Keep retrying a broker that is down: meanwhile the periodic pass keeps the node in sync.
        app.conf.broker_connection_max_retries = None
        # Anyone who can reach the broker could otherwise stop the agent (``app.control.shutdown()``)
        # or change it (pool, rate limits): the worker listens to its node's queue and nothing else.
        app.conf.worker_enable_remote_control = False
        # On Redis, unacked bookkeeping of its own: what the node's ACL user may touch (nodes.broker).
        own = agent_broker_options(node_name=self.name, broker_url=app.conf.broker_url)
        app.conf.broker_transport_options = {**app.conf.broker_transport_options, **own}
        # No limit on unacknowledged nudges. With a limit of one, a nudge whose late ack failed (the
        # broker went away during its sync) stays counted as unacknowledged in the worker's channel
        # for ever: the channel never asks for its queue again and, once the broker is back, the node
        # hears no nudge until its agent restarts. Nudges are hints; the lease keeps one sync at a time.
        app.conf.worker_prefetch_multiplier = 0
        worker_shutting_down.connect(self._on_worker_shutdown, weak=False)
        # Django's LOGGING stays (its format and credential masking, on every line): a receiver of this
        # signal tells Celery to configure no logging of its own, and the JSON log has no banner.
        setup_logging.connect(_keep_django_logging, weak=False)
        worker = app.Worker(
            hostname=f"{self.name}@{socket.gethostname()}", queues=[node_queue(self.name)], concurrency=1, pool="solo",
            loglevel=os.environ.get("EXTADMIN_LOG_LEVEL", "INFO"), without_gossip=True, without_mingle=True,
            without_heartbeat=True, optimization="fair", quiet=log_format() == "json",
        )
        worker.start()
        code = int(worker.exitcode or 0)
        if code and not self.stopping:  # not a shutdown asked for: Celery's "unrecoverable error", say
            log.error("agent of %s: its worker stopped (exit status %d); the agent stops too", self.name, code)
        return code

    def _on_worker_shutdown(self, **kwargs: object) -> None:
        if self.stopping:  # a second signal (SIGINT, then SIGTERM): see _stop_on_signals
            return
        self.stopping = True
        log.info("agent of %s: %s shutdown", self.name, kwargs.get("how", "warm"))
        self.stop.set()  # a sync in progress stops at its next step instead of delaying the shutdown


_running: Agent | None = None  # the agent of this process, for the Celery task


def _keep_django_logging(**kwargs: object) -> None:
    """Celery's ``setup_logging`` signal: Django has configured logging already."""


def agent_handle_nudge(*, node_name: str, requested_at: str | None) -> None:
    """A nudge from the broker: sync now, unless a sync started since the nudge was sent."""
    agent = _running
    if agent is None or agent.name != node_name:
        log.warning("nudge for node %s reached a process that is not its agent; ignored", node_name)
        return
    agent.handle_nudge(requested_at=datetime.fromisoformat(requested_at) if requested_at else None)


def _stop_on_signals(stop: threading.Event) -> dict[int, object]:
    """SIGTERM/SIGINT set ``stop``. A handler runs in the main thread between two of its steps, so
    a second signal can land while the first handler is inside ``Event.set()`` and holds its lock:
    taking that lock again there would wait for ever. Only the first signal sets it."""
    asked: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if asked:
            return
        asked.append(signum)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)  # type: ignore[arg-type]
