"""The console's change feed: a cheap token that changes whenever what a live page shows changes,
and a way to wait for the next change without asking the database in a loop.

The token (``change_token``) is a few aggregate queries (no row is read into Python): the sync
states (how many, their ids, their latest change and each state's count), the packages (how many,
their latest import, how many are active and how many overdue by the database's clock), the nodes
(how many, and which are online by ``nodes.convergence``'s rule, judged by the database's clock)
and whether syncing is paused. Time alone changes some of it (a node going offline, a version
becoming overdue), so a page is never told "nothing changed" only because nobody wrote a row.

Waiting (``ChangeListener``): on PostgreSQL, triggers (migration ``0008_change_feed``) send a
``NOTIFY extadmin_changes`` when a transaction that wrote sync states, packages, nodes or the
cluster settings commits. One thread per console process (``_Feed``) ``LISTEN``s on a connection of
its own for every open stream and sleeps in ``select`` until a notification comes; a heartbeat alone
sends none, so the same thread rechecks liveness (two precompiled queries) every
``EXTADMIN_LIVE_RECHECK_SECONDS`` while a stream is open. Each announcement or liveness change moves
the feed's generation, which wakes the streams; the change token is read once per generation and
shared, so a browser that reconnects its bounded stream costs no token query while nothing changed.
The connection outlives the last stream by ``LINGER_SECONDS`` (a reconnect finds it), then closes.
On SQLite, which has no notifications, the listener sleeps a short poll interval and the caller
compares tokens: one cheap query set in the console's own process.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import selectors
import threading
import time
from types import TracebackType
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Max, Q, Sum

from extadmin.models import ExtensionPackage
from nodes.convergence import ACTIVE_PACKAGE, online_condition, overdue_annotation
from nodes.models import ClusterSettings, Node, SyncRun, SyncState

log = logging.getLogger(__name__)

CHANNEL = "extadmin_changes"
FEED_NAME = "extadmin change feed"  # the listener's application_name
# On SQLite (no notifications), or while the listener is away: how often a waiting stream compares tokens.
SQLITE_POLL_SECONDS = 0.4
# After the last stream of a process left, its listener keeps the connection this long: the browser
# of a bounded stream reconnects within about a second and finds it (and the shared token) there.
LINGER_SECONDS = 10.0
# How long a new stream waits for the listener's first connection, and the pause between two
# attempts to (re)connect it, doubling up to the second figure.
CONNECT_WAIT_SECONDS = 5.0
RECONNECT_SECONDS = (0.5, 5.0)


def _state_figures() -> dict[str, Any]:
    per_state = {f"n_{s}": Count("id", filter=Q(state=s)) for s in SyncState.State.values}
    return SyncState.objects.aggregate(
        n=Count("id"), ids=Sum("id"), changed=Max("changed_at"), took=Sum("duration_ms"), **per_state
    )


def _package_figures() -> dict[str, Any]:
    annotated = ExtensionPackage.objects.annotate(late=overdue_annotation())
    return annotated.aggregate(
        n=Count("id"), ids=Sum("id"), imported=Max("imported_at"),
        active=Count("id", filter=Q(state=ACTIVE_PACKAGE)), overdue=Count("id", filter=Q(late=True)),
    )


@functools.cache
def _liveness_queries(vendor: str, heartbeat_interval: float, degraded_after: float) -> tuple[tuple[str, Any], ...]:
    """``liveness_token``'s two queries as SQL, compiled once per rule (the arguments are the cache's
    key): the windows are parameters and the clock is the database's (``Now()`` in the text), so the
    same statements answer at any time without the ORM building them again."""
    online = Node.objects.filter(online_condition()).order_by("id").values_list("id", flat=True)
    late = ExtensionPackage.objects.annotate(late=overdue_annotation()).filter(late=True)
    return tuple(qs.query.sql_with_params() for qs in (online, late.order_by("id").values_list("id", flat=True)))


def liveness_token(*, using: BaseDatabaseWrapper | None = None) -> str:
    """Which nodes are online now (``nodes.convergence``'s rule, by the database's clock), and which
    packages are overdue: what time alone changes (two small precompiled queries, on ``using``'s
    connection, else this thread's). The feed rechecks only this while no write was announced."""
    wrapper = using or connections["default"]
    queries = _liveness_queries(
        wrapper.vendor, settings.EXTADMIN_HEARTBEAT_INTERVAL, settings.EXTADMIN_DEGRADED_AFTER
    )
    found = []
    with wrapper.cursor() as cursor:
        for sql, params in queries:
            cursor.execute(sql, params)
            found.append(cursor.fetchall())
    return repr(found)


def _node_figures(node: str | None) -> dict[str, Any]:
    online = online_condition()
    figures = Node.objects.aggregate(
        n=Count("id"), ids=Sum("id"), online=Count("id", filter=online), online_ids=Sum("id", filter=online),
    )
    if node is not None:  # a node's page also shows its heartbeat and its sync runs
        figures["node"] = list(Node.objects.filter(name=node).values_list("last_heartbeat", "behind_since"))
        figures["runs"] = SyncRun.objects.filter(node__name=node).aggregate(
            n=Count("id"), last=Max("id"), running=Count("id", filter=Q(outcome=SyncRun.Outcome.RUNNING)),
            finished=Max("finished_at"),
        )
    return figures


def change_token(*, node: str | None = None) -> str:
    """A short hex token: equal tokens mean a live page would show the same thing.

    ``node``: the node page's name, whose heartbeat and runs count too.
    """
    paused = list(ClusterSettings.objects.filter(pk=1).values_list("sync_paused", "paused_at"))
    parts = (_state_figures(), _package_figures(), _node_figures(node), paused)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def feed_is_pushed() -> bool:
    """Whether writes announce themselves (PostgreSQL ``NOTIFY``) or must be polled for (SQLite)."""
    return connections["default"].vendor == "postgresql"


class _Feed:
    """The ``LISTEN`` connection every stream of this console process shares, and its thread.

    ``generation`` moves on each announced write, each change of ``liveness_token`` and each
    (re)connection (what happened while nobody listened is unknown): a stream waits for it to move.
    ``shared`` is the change token read at a generation: still right while the generation stays.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.generation = 0
        self.connected = False
        self.tried = False  # the thread's first attempt to connect is over, whatever its outcome
        self.users = 0
        self.left_at = time.monotonic()
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.shared: tuple[int, str] | None = None
        self._wake_r, self._wake_w = os.pipe()

    def join(self) -> None:
        with self.cond:
            self.users += 1
            if self.thread is None:
                self.tried = False
                self.thread = threading.Thread(target=self._run, name="extadmin-change-feed", daemon=True)
                self.thread.start()
            self.cond.wait_for(lambda: self.tried, timeout=CONNECT_WAIT_SECONDS)

    def leave(self) -> None:
        with self.cond:
            self.users -= 1
            if self.users == 0:
                self.left_at = time.monotonic()

    def stop(self, timeout: float) -> None:
        with self.cond:
            self.stopping, thread = True, self.thread
        os.write(self._wake_w, b"x")
        if thread is not None:
            thread.join(timeout)
        with self.cond:
            self.stopping = self.thread is not None and self.stopping

    def token(self) -> str:
        """The whole view's change token: the one read at the current generation, else read now."""
        with self.cond:
            generation, shared, connected = self.generation, self.shared, self.connected
        if connected and shared is not None and shared[0] == generation:
            return shared[1]
        token = change_token()
        # Read inside a transaction, a token may count rows no one else ever sees: never shared.
        if connected and not connections["default"].in_atomic_block:
            with self.cond:
                if self.generation == generation:
                    self.shared = (generation, token)
        return token

    def _moved(self, *, connected: bool | None = None) -> None:
        with self.cond:
            if connected is not None:
                self.connected, self.tried = connected, True
            self.generation += 1
            self.cond.notify_all()

    def _done(self) -> bool:
        return self.stopping or (self.users == 0 and time.monotonic() - self.left_at >= LINGER_SECONDS)

    def _run(self) -> None:
        pause = RECONNECT_SECONDS[0]
        while True:
            with self.cond:
                if self._done():
                    self.thread, self.tried = None, True
                    self.cond.notify_all()
                    return
            try:
                wrapper = connections.create_connection("default")
                wrapper.ensure_connection()
                wrapper.connection.autocommit = True
                wrapper.connection.execute(f"SET application_name = '{FEED_NAME}'")  # what pg_stat_activity shows
                wrapper.connection.execute(f"LISTEN {CHANNEL}")
            except Exception as exc:  # the database is away: the streams compare tokens meanwhile
                log.warning("live pages: the change feed cannot listen (%s); trying again in %.1f s", _said(exc), pause)
                with self.cond:
                    self.tried = True
                    self.cond.notify_all()
                self._sleep(pause)
                pause = min(pause * 2, RECONNECT_SECONDS[1])
                continue
            pause = RECONNECT_SECONDS[0]
            self._moved(connected=True)
            try:
                self._listen(wrapper)
            except Exception as exc:  # a lost connection: listen again (and tell every stream to look)
                log.warning("live pages: the change feed's connection failed (%s); listening again", _said(exc))
            finally:
                wrapper.close()
                self._moved(connected=False)

    def _sleep(self, seconds: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            if sel.select(seconds):
                os.read(self._wake_r, 512)

    def _listen(self, wrapper: BaseDatabaseWrapper) -> None:
        """Sleep in ``select`` on the connection until it says something or the next liveness recheck
        is due; return once nobody used the feed for ``LINGER_SECONDS`` (or it is stopped)."""
        conn = wrapper.connection
        heard: list[object] = []
        conn.add_notify_handler(heard.append)  # notifications that arrive during a recheck's query
        alive, checked = liveness_token(using=wrapper), time.monotonic()
        with selectors.DefaultSelector() as sel:
            sel.register(conn.fileno(), selectors.EVENT_READ, "db")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            while True:
                with self.cond:
                    if self._done():
                        return
                    now = time.monotonic()
                    timeout = checked + settings.EXTADMIN_LIVE_RECHECK_SECONDS - now
                    if self.users == 0:
                        timeout = min(timeout, self.left_at + LINGER_SECONDS - now)
                for key, _ in sel.select(max(timeout, 0.0)):
                    if key.data == "wake":
                        os.read(self._wake_r, 512)
                        continue
                    conn.pgconn.consume_input()  # raises when the connection is gone
                    while (notice := conn.pgconn.notifies()) is not None:
                        heard.append(notice)
                if time.monotonic() - checked >= settings.EXTADMIN_LIVE_RECHECK_SECONDS:
                    now_alive, checked = liveness_token(using=wrapper), time.monotonic()
                    if now_alive != alive:
                        alive = now_alive
                        heard.append(alive)
                if heard:
                    heard.clear()
                    self._moved()


def _said(exc: BaseException) -> str:
    """The first line of a database error (never a password: libpq does not repeat it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_feed: _Feed | None = None
_feed_lock = threading.Lock()
_closing = threading.Event()  # this process is stopping: see close_listeners


def close_listeners() -> None:
    """This process is stopping (its server was asked to stop): every ``ChangeListener.wait`` returns
    now, and at once from now on, and says ``closing``, so a live stream ends instead of holding its
    server thread, and the server's stop, until its bound. Safe in a signal handler: it takes only
    the event's and the feed's own locks, which a stream thread holds for a moment, never for a wait."""
    _closing.set()
    feed = _feed
    if feed is not None and feed.pid == os.getpid():
        with feed.cond:
            feed.cond.notify_all()


def _this_process_feed() -> _Feed:
    global _feed
    with _feed_lock:
        if _feed is None or _feed.pid != os.getpid():  # a forked child has its own
            _feed = _Feed()
        return _feed


def feed_stop(timeout: float = 5.0) -> None:
    """Close this process's listener now, not ``LINGER_SECONDS`` after the last stream (before the
    database it listens to is dropped); the next stream opens it again."""
    with _feed_lock:
        feed = _feed
    if feed is not None and feed.pid == os.getpid():
        feed.stop(timeout)


class ChangeListener:
    """``with ChangeListener() as feed: feed.wait(5)``: True when a change was announced.

    On PostgreSQL it joins this process's shared feed (``_Feed``); ``wait`` sleeps until the feed's
    generation moves. Elsewhere, or while the feed's connection is away, ``wait`` sleeps at most
    ``SQLITE_POLL_SECONDS`` and says False: the caller compares tokens.
    """

    def __init__(self) -> None:
        self._feed: _Feed | None = None
        self._seen = 0

    def __enter__(self) -> ChangeListener:
        if feed_is_pushed():
            self._feed = _this_process_feed()
            self._feed.join()
            self._seen = self._feed.generation
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._feed is not None:
            self._feed.leave()
            self._feed = None

    @property
    def pushed(self) -> bool:
        return self._feed is not None and self._feed.connected

    @property
    def closing(self) -> bool:
        """This process is stopping (``close_listeners``): a stream should end now."""
        return _closing.is_set()

    def token(self, *, node: str | None = None) -> str:
        """``change_token(node=node)``; the whole view's is shared by the process's streams."""
        if self._feed is None or node is not None:
            return change_token(node=node)
        return self._feed.token()

    def wait(self, timeout: float) -> bool:
        """Sleep until a change is announced or ``timeout`` seconds pass; True when announced."""
        feed = self._feed
        if feed is None or not feed.connected:
            if _closing.wait(max(min(timeout, SQLITE_POLL_SECONDS), 0.0)) or feed is None:
                return False
            timeout = 0.0  # only whether the feed came back (its generation moved) meanwhile
        with feed.cond:
            feed.cond.wait_for(lambda: feed.generation != self._seen or _closing.is_set(), timeout=max(timeout, 0.0))
            moved, self._seen = feed.generation != self._seen, feed.generation
        return moved

    def drain(self, settle: float) -> None:
        """After a first notification, take the ones that follow within ``settle`` seconds (one
        sync pass writes many rows in many transactions): one update for the burst."""
        if self._feed is None:
            return
        deadline = time.monotonic() + settle
        while (left := deadline - time.monotonic()) > 0 and self.wait(left):
            pass
