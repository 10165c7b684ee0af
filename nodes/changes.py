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
cluster settings commits; the listener ``LISTEN``s on a connection of its own and sleeps until one
comes (a heartbeat alone sends none: a node's liveness is rechecked every few seconds instead).
On SQLite, which has no notifications, the listener sleeps a short poll interval and the caller
compares tokens: one cheap query set in the console's own process.
"""
from __future__ import annotations

import hashlib
import time
from types import TracebackType
from typing import Any

from django.db import connections
from django.db.models import Count, Max, Q, Sum

from extadmin.models import ExtensionPackage
from nodes.convergence import ACTIVE_PACKAGE, online_condition, overdue_annotation
from nodes.models import ClusterSettings, Node, SyncRun, SyncState

CHANNEL = "extadmin_changes"
# On SQLite (no notifications): how often a waiting stream compares tokens.
SQLITE_POLL_SECONDS = 0.4


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


def liveness_token() -> str:
    """Which nodes are online now (``nodes.convergence``'s rule, by the database's clock), and which
    packages are overdue: what time alone changes (two queries). A stream rechecks only this while
    no write was announced, and reads the whole token when it changed."""
    online = online_condition()
    nodes = Node.objects.aggregate(online=Count("id", filter=online), ids=Sum("id", filter=online))
    late = ExtensionPackage.objects.annotate(late=overdue_annotation()).filter(late=True).aggregate(n=Count("id"))
    return repr((nodes, late))


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


class ChangeListener:
    """``with ChangeListener() as feed: feed.wait(5)``: True when a change was announced.

    On PostgreSQL a connection of its own ``LISTEN``s (closed on exit); elsewhere ``wait`` sleeps
    at most ``SQLITE_POLL_SECONDS`` and says False: the caller compares tokens.
    """

    def __init__(self) -> None:
        self._wrapper: Any = None

    def __enter__(self) -> ChangeListener:
        if feed_is_pushed():
            self._wrapper = connections.create_connection("default")
            self._wrapper.ensure_connection()
            self._wrapper.connection.autocommit = True
            self._wrapper.connection.execute(f"LISTEN {CHANNEL}")
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._wrapper is not None:
            self._wrapper.close()
            self._wrapper = None

    @property
    def pushed(self) -> bool:
        return self._wrapper is not None

    def wait(self, timeout: float) -> bool:
        """Sleep until a change is announced or ``timeout`` seconds pass; True when announced."""
        if self._wrapper is None:
            time.sleep(min(timeout, SQLITE_POLL_SECONDS))
            return False
        got = False
        for _ in self._wrapper.connection.notifies(timeout=max(timeout, 0.0), stop_after=1):
            got = True
        return got

    def drain(self, settle: float) -> None:
        """After a first notification, take the ones that follow within ``settle`` seconds (one
        sync pass writes many rows in many transactions): one update for the burst."""
        if self._wrapper is None:
            return
        deadline = time.monotonic() + settle
        while (left := deadline - time.monotonic()) > 0 and self.wait(left):
            pass
