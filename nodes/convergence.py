"""What a node holds of a package, and whether a package is converged: the one rule.

Every door (the dashboard, the package and node pages, ``cluster_status``, ``/api/cluster/`` and
``/api/extensions/<name>/``) asks this module and says the same words:

- ``installed`` — the node is online and proved the package's checksum on its disk;
- ``pending``   — it has not synced this checksum yet; a node that proved an older checksum is
                  pending too ("has 1.0.0": ``outdated``);
- ``syncing``, ``failed``, ``removing`` — as the node reported them;
- ``removed``   — the package left the database and this online node holds no trace of it;
- ``quarantined`` — the package's checksum is quarantined: never installed nor converged; the
                  node's words say "holds quarantined 2.0.0" or "not installed: 2.0.0 is quarantined";
- ``waiting``, ``staged``, ``reverted`` — the package's rollout (``rollouts.rules``) keeps this node on
                  the previous version for now: waiting for its batch ("waiting for batch 2", the
                  state's sentence), built beside it until all activate together, or put back by an
                  abort. Never failed, never degraded: the node holds what it was told to hold;
- ``offline``   — the node stopped reporting. Whatever it last said is kept apart (``reported``):
                  an offline node is never ``installed`` nor up to date.

A package is *converged* when at least one node is online and every online node proved its
checksum; the offline nodes are counted beside it (``"converged": true, "online": 3, "offline": 1``).

A node is *online* while its last proof of life (a heartbeat, a registration, a sync pass or an
import on it) is younger than three heartbeat intervals by the **database's** clock, and not in
its future: a heartbeat stamped ahead of the database's clock (beyond a small tolerance for clock
skew) counts as none. Proofs of life are stamped with the database's clock (``Now()``), and
liveness is judged in the same query that reads the nodes, so no machine's clock decides it but
the database's: ``STATEMENT_TIMESTAMP()`` on PostgreSQL; on SQLite, which runs inside the
console's process, the database's clock *is* this machine's clock.

A node is *degraded* while it is online and has not converged a package whose version was imported
longer than ``EXTADMIN_DEGRADED_AFTER`` ago (two sync intervals unless set), by the database's clock
too. While syncing is paused the nodes are behind on the operator's word, not degraded.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import BooleanField, Case, ExpressionWrapper, Q, Value, When
from django.db.models.expressions import Combinable, CombinedExpression
from django.db.models.fields import DateTimeField
from django.db.models.functions import Now

INSTALLED = "installed"
PENDING = "pending"
SYNCING = "syncing"
FAILED = "failed"
REMOVING = "removing"
REMOVED = "removed"
OFFLINE = "offline"
ONLINE = "online"
# The package's desired checksum is quarantined: the node neither installs nor removes it, and is
# never installed nor converged for it; its cell says whether it holds those bytes (``quarantine_words``).
QUARANTINED = "quarantined"
WAITING = "waiting"
STAGED = "staged"
REVERTED = "reverted"
# Held on the previous version by the package's rollout: what the node was told to hold.
HELD_BY_ROLLOUT = frozenset({WAITING, STAGED, REVERTED})

# The package's own states (``ExtensionPackage.State``), and None once it left the database.
ACTIVE_PACKAGE = "active"

OFFLINE_AFTER_HEARTBEATS = 3
# A heartbeat this far ahead of the database's clock is still believed (two clocks never agree to
# the microsecond); further ahead, it is a wrong clock or a forged row, and counts as none.
FUTURE_TOLERANCE = timedelta(seconds=5)


def _db_now_plus(delta: timedelta) -> CombinedExpression:
    return ExpressionWrapper(Now() + Value(delta), output_field=DateTimeField())  # type: ignore[return-value]


def online_condition(prefix: str = "") -> Q:
    """The offline rule as a query condition on ``last_heartbeat``, judged by the database's clock."""
    window = timedelta(seconds=settings.EXTADMIN_HEARTBEAT_INTERVAL * OFFLINE_AFTER_HEARTBEATS)
    field = f"{prefix}last_heartbeat"
    return Q(**{f"{field}__gte": _db_now_plus(-window), f"{field}__lte": _db_now_plus(FUTURE_TOLERANCE)})


def online_annotation(prefix: str = "") -> Combinable:
    """``online``: True or False for each node row, by ``online_condition``."""
    return Case(When(online_condition(prefix), then=Value(True)), default=Value(False), output_field=BooleanField())


def overdue_annotation() -> Combinable:
    """``overdue``: True for an active package imported longer than ``EXTADMIN_DEGRADED_AFTER`` ago,
    judged by the database's clock in the query that reads the package."""
    since = _db_now_plus(-timedelta(seconds=settings.EXTADMIN_DEGRADED_AFTER))
    late = Q(state=ACTIVE_PACKAGE, imported_at__lt=since)
    return Case(When(late, then=Value(True)), default=Value(False), output_field=BooleanField())


class Verdict(NamedTuple):
    """One node's cell for one package."""

    state: str  # the word every door shows
    converged: bool  # online and proved the package's checksum (for a removed package: holds none of it)
    outdated: bool  # holds an older checksum than the database's
    reported: str  # for an offline node: the word it would have if it were online; else ""


@cache
def verdict(online: bool, package_state: str | None, reported: str | None, proved: bool) -> Verdict:
    """The rule for one cell. Positional and cached: the dashboard calls it for every cell, and
    its inputs take a few dozen values in all.

    ``package_state``: the package's state in the database, None once it left it.
    ``reported``: the node's ``SyncState.state`` for it, None when it has no row.
    ``proved``: the node's installed checksum is the package's.
    """
    said = _reported(package_state, reported, proved)
    if not online:
        return Verdict(OFFLINE, False, said.outdated, said.state)
    return said


def _reported(package_state: str | None, reported: str | None, proved: bool) -> Verdict:
    if package_state is None:  # removed from the database: only what nodes still hold remains
        if reported is None:
            return Verdict(REMOVED, True, False, "")
        return Verdict(FAILED if reported == FAILED else REMOVING, False, False, "")
    if package_state != ACTIVE_PACKAGE:
        return Verdict(REMOVING, False, False, "")
    if reported is None:
        return Verdict(PENDING, False, False, "")
    if reported == INSTALLED:
        return Verdict(INSTALLED, True, False, "") if proved else Verdict(PENDING, False, True, "")
    if reported == QUARANTINED:
        return Verdict(QUARANTINED, False, False, "")
    return Verdict(reported, False, False, "")


def quarantine_words(version: str, *, holds: bool) -> str:
    """What a quarantined cell says, on every door: the node holds the quarantined bytes, or keeps what it had."""
    return f"holds quarantined {version}" if holds else f"not installed: {version} is quarantined"


def degraded(v: Verdict, *, overdue: bool, paused: bool) -> bool:
    """The degraded rule for one cell: online, not converged, and the package's version is overdue."""
    return overdue and not paused and v.state != OFFLINE and not v.converged and v.state not in HELD_BY_ROLLOUT


class Tally(NamedTuple):
    """A package across the cluster: how many online nodes converged, how many are online and offline."""

    converged_nodes: int
    online: int
    offline: int

    @property
    def converged(self) -> bool:
        """Every online node proved it, and at least one node is online to say so."""
        return self.online > 0 and self.converged_nodes == self.online


def tally(cells: Iterable[tuple[Any, ...]]) -> Tally:
    """From each node's (state, converged), as in a ``Verdict``."""
    converged = online = offline = 0
    for state, is_converged, *_ in cells:
        converged += is_converged
        offline += state == OFFLINE
        online += state != OFFLINE
    return Tally(converged_nodes=converged, online=online, offline=offline)


# --- what the console's filters select (``/?state=``): the same verdicts, never a second rule -----

NOT_CONVERGED = "not_converged"
# The cell filters an operator can ask for, in the order the console offers them.
STATE_FILTERS = (NOT_CONVERGED, FAILED, OFFLINE, SYNCING, PENDING)


def matches(state_filter: str, v: Verdict) -> bool:
    """Whether the cell ``v`` is selected by ``state_filter`` (one of ``STATE_FILTERS``).

    ``not_converged`` is every cell the rule does not call converged (offline ones included); the
    others are the cell's word itself (``pending`` includes a node that holds an older version).
    """
    if state_filter == NOT_CONVERGED:
        return not v.converged
    return v.state == state_filter
