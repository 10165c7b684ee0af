"""Reads about nodes: queries only. What the rows mean is ``nodes.convergence``; how the console
shows them is ``nodes.presenters``.

Each read runs a fixed number of queries whatever the size of the cluster (the cluster: packages,
nodes, states, cluster settings), and rows are plain tuples, never one model instance per cell,
so that 100 nodes × 300 packages stays fast. Every node row carries ``online``, judged by the
database's clock in the query that reads it (``nodes.convergence.online_annotation``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
)
from django.db.models.fields import DateTimeField
from django.db.models.functions import Cast, Lower, Now
from django.utils import timezone

from extadmin.models import Archive, ExtensionPackage, Operation
from nodes.convergence import ACTIVE_PACKAGE, INSTALLED, online_annotation, online_condition, overdue_annotation
from nodes.models import ClusterSettings, Node, SyncRun, SyncState

# (id, name, last seen, online)
NodeRow = tuple[int, str, "datetime | None", bool]
# (name, version, sha256, state, imported_at, last_finished)
PackageTuple = tuple[str, str, str, str, datetime, "datetime | None"]

# Every list of names is sorted the way a person reads it: case-insensitively ("alpha", "Beta",
# "gamma"), the exact name breaking ties, the same on SQLite and on PostgreSQL whatever its collation.
BY_NAME = (Lower("name"), "name")


def by_name(name: str) -> tuple[str, str]:
    """The sort key of ``BY_NAME`` for names sorted in Python."""
    return name.casefold(), name


# The grid reads no datetime column: converting 30,000 of them would cost more than the rest.
GRID_FIELDS = (
    "node_id", "package_name", "state", "installed_version", "installed_sha256", "error", "duration_ms",
    "failures", "next_retry_at",  # a retry's time is NULL but in failed cells: nearly nothing to convert
)
STATE_FIELDS = (*GRID_FIELDS, "changed_at", "started_at", "finished_at")


@dataclass(frozen=True)
class StateRow:
    """What a node reported for a package: the fields of one SyncState row (``STATE_FIELDS``)."""

    node_id: int
    package_name: str
    state: str
    installed_version: str
    installed_sha256: str
    error: str
    duration_ms: float | None
    failures: int = 0
    next_retry_at: datetime | None = None
    changed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ClusterSnapshot:
    """Every node, every package and every state row, read once."""

    nodes: list[NodeRow]
    packages: list[PackageTuple]
    states: dict[str, dict[int, tuple]]  # package name → node id → the ``GRID_FIELDS`` of its row
    paused: bool
    now: datetime
    # Packages imported longer than EXTADMIN_DEGRADED_AFTER ago, by the database's clock.
    overdue: frozenset[str] = frozenset()
    # A lean snapshot (``cluster_snapshot(lean=True)``): the online nodes that prove each active
    # package, by package name; their rows are left out of ``states``. None: ``states`` is whole.
    proved: dict[str, frozenset[int]] | None = None

    @property
    def removed_still_held(self) -> list[str]:
        """Packages gone from the database that some node still has a row for."""
        return sorted(set(self.states) - {p[0] for p in self.packages}, key=by_name)


def nodes_with_liveness() -> QuerySet[Node]:
    return Node.objects.order_by(*BY_NAME).annotate(online=online_annotation())


def node_is_online(*, name: str) -> bool:
    """Whether the node ``name`` is online now, by the one rule (``nodes.convergence``)."""
    return Node.objects.filter(name=name).filter(online_condition()).exists()


def online_node_names(*, exclude: str | None = None) -> list[str]:
    """The names of the nodes online now (``nodes.convergence``), but ``exclude``."""
    online = Node.objects.filter(online_condition()).exclude(name=exclude or "")
    return list(online.order_by(*BY_NAME).values_list("name", flat=True))


def node_rows() -> list[NodeRow]:
    # django-stubs cannot see an annotation through the helper that adds it.
    return list(nodes_with_liveness().values_list("id", "name", "last_heartbeat", "online"))  # type: ignore[misc]


def sync_paused() -> bool:
    return ClusterSettings.objects.filter(pk=1, sync_paused=True).exists()


class JoinedIds(Aggregate):
    """A group's ids as one text, joined by commas: ``STRING_AGG`` on PostgreSQL, ``GROUP_CONCAT``
    on SQLite. Read back with ``ids_of``: 25,000 ids come as 300 strings, not as 25,000 rows."""

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, ',')"
    output_field = TextField()

    def __init__(self, field: str) -> None:
        super().__init__(Cast(field, TextField()))

    def as_sqlite(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        return self.as_sql(compiler, connection, function="GROUP_CONCAT", **extra_context)


def ids_of(joined: str) -> frozenset[int]:
    return frozenset(map(int, joined.split(",")))


def _proof(packages: list[tuple], nodes: list[NodeRow]) -> tuple[dict[str, frozenset[int]] | None, QuerySet]:
    """A lean snapshot's ``proved`` (the online nodes that prove each active package) and the rows
    it still reads (all the others), in one small grouped query: no join, no subquery, so that the
    database scans the states once and plans nothing per row.

    Proof counts for an active package only (``nodes.convergence.verdict``): a removing package's
    cells are all shown, so all its rows are read. A row "proves" here when it is installed on an
    online node and holds some active package's checksum; a checksum is one zip, so one package:
    a row holding another package's bytes (never written by an agent) sends back the whole read.
    """
    online = [n[0] for n in nodes if n[3]]
    current = {sha256: name for name, _, sha256, state, *_ in packages if state == ACTIVE_PACKAGE}
    proving = Q(state=INSTALLED, node_id__in=online, installed_sha256__in=list(current))
    groups = (
        SyncState.objects.filter(proving).order_by().values("package_name", "installed_sha256")
        .annotate(ids=JoinedIds("node_id")).values_list("package_name", "installed_sha256", "ids")
    )
    proved: dict[str, frozenset[int]] = {}
    for name, sha256, ids in groups:
        if current[sha256] != name:
            return None, SyncState.objects.all()
        proved[name] = ids_of(ids)
    return proved, SyncState.objects.exclude(proving).order_by()


def cluster_snapshot(*, nodes: list[NodeRow] | None = None, lean: bool = False) -> ClusterSnapshot:
    """Four queries: packages (with their latest finished sync), nodes (unless given), states,
    cluster settings; five when ``lean``.

    ``lean``: for the compact default view, which shows no cell of an online node that proves its
    package (it only counts them). Those rows, most of a settled cluster's, are not fetched: only
    their node ids, per package (``ClusterSnapshot.proved``). Every other row is in ``states``.
    "Online" is ``nodes``' own word for each node, so the two reads cannot disagree about it.
    """
    # None when no row finished (the index on package name, finished at: one step per package).
    last_finished = (
        SyncState.objects.filter(package_name=OuterRef("name"), finished_at__isnull=False)
        .order_by("-finished_at")
        .values("finished_at")[:1]
    )
    rows = list(
        ExtensionPackage.objects.order_by(*BY_NAME)
        .annotate(last_finished=Subquery(last_finished), overdue=overdue_annotation())
        .values_list("name", "version", "sha256", "state", "imported_at", "last_finished", "overdue")
    )
    nodes = node_rows() if nodes is None else nodes
    states: dict[str, dict[int, tuple]] = {}
    wanted = SyncState.objects.all()
    proved = None
    if lean:
        proved, wanted = _proof(rows, nodes)
    # Fetched at once, not through a server-side cursor: PostgreSQL would materialize the whole
    # result for the cursor (WITH HOLD, outside a transaction) before the first chunk anyway.
    for v in wanted.values_list(*GRID_FIELDS):
        states.setdefault(v[1], {})[v[0]] = v
    return ClusterSnapshot(
        nodes=nodes, packages=[r[:6] for r in rows], states=states, paused=sync_paused(), now=timezone.now(),
        overdue=frozenset(r[0] for r in rows if r[6]), proved=proved,
    )


def package_state_rows(*, name: str) -> dict[int, StateRow]:
    """Every node's row for one package, by node id."""
    rows = SyncState.objects.filter(package_name=name).values_list(*STATE_FIELDS)
    return {row.node_id: row for row in (StateRow(*v) for v in rows)}


@dataclass(frozen=True)
class NodeSnapshot:
    node: Node  # annotated with ``online``
    states: dict[str, StateRow]  # by package name
    packages: list[tuple[str, str, str, str, datetime]]  # name, version, sha256, state, imported_at
    runs: list[SyncRun]  # newest first
    paused: bool

    @property
    def online(self) -> bool:
        return bool(getattr(self.node, "online", False))

    @property
    def running(self) -> SyncRun | None:
        return next((r for r in self.runs if r.outcome == SyncRun.Outcome.RUNNING), None)

    @property
    def last_run(self) -> SyncRun | None:
        return next((r for r in self.runs if r.outcome != SyncRun.Outcome.RUNNING), None)


def node_snapshot(*, name: str, runs: int = 20) -> NodeSnapshot | None:
    """A node, its state rows, every package, and its recent syncs; None when no such node."""
    node = nodes_with_liveness().filter(name=name).first()
    if node is None:
        return None
    states = {
        s.package_name: s
        for s in (StateRow(*v) for v in SyncState.objects.filter(node=node).values_list(*STATE_FIELDS))
    }
    packages = list(
        ExtensionPackage.objects.order_by(*BY_NAME).values_list("name", "version", "sha256", "state", "imported_at")
    )
    recent = list(SyncRun.objects.filter(node=node).order_by("-started_at", "-id")[:runs])
    return NodeSnapshot(node=node, states=states, packages=packages, runs=recent, paused=sync_paused())


def node_next_retry_at(*, name: str) -> datetime | None:
    """When the node's earliest automatic retry of a failed checksum is due (``nodes.retries``), if any."""
    return (
        SyncState.objects.filter(node__name=name, state=SyncState.State.FAILED, next_retry_at__isnull=False)
        .order_by("next_retry_at").values_list("next_retry_at", flat=True).first()
    )


def node_list() -> list[Node]:
    """Every node with its agent's details, annotated with ``online``."""
    return list(nodes_with_liveness())


# --- what /metrics reads beside the cluster snapshot ----------------------------------------


@dataclass(frozen=True)
class SyncFigures:
    """The sync history and the operation log, counted in the database (a fixed number of queries)."""

    runs: list[tuple[str, str, int]]  # (node, outcome, how many) of finished runs
    duration_buckets: list[tuple[float, int]]  # (upper bound in seconds, finished runs that took at most that)
    duration_count: int
    duration_sum: float  # seconds
    running: int
    stuck: int  # running past EXTADMIN_SYNC_DEADLINE, by the database's clock
    nodes_behind: int  # nodes that noted they are behind while syncing is paused
    operations: list[tuple[str, str, str, int]]  # (kind, outcome, failed step or "", how many), finished ones
    archive_bytes: int


def _run_seconds() -> ExpressionWrapper:
    return ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def sync_figures(*, buckets: tuple[float, ...]) -> SyncFigures:
    """Six queries, whatever the history's length: runs by node and outcome, their durations in
    ``buckets``, running and stuck runs, nodes behind, operations by outcome and step, archive bytes."""
    finished = SyncRun.objects.exclude(outcome=SyncRun.Outcome.RUNNING).filter(finished_at__isnull=False)
    runs = finished.values_list("node__name", "outcome").annotate(n=Count("id")).order_by("node__name", "outcome")
    counted = finished.annotate(took=_run_seconds()).aggregate(
        n=Count("id"), total=Sum("took"),
        **{f"le{i}": Count("id", filter=Q(took__lte=timedelta(seconds=b))) for i, b in enumerate(buckets)},
    )
    deadline = ExpressionWrapper(Now() - Value(timedelta(seconds=settings.EXTADMIN_SYNC_DEADLINE)),
                                 output_field=DateTimeField())
    live = SyncRun.objects.filter(outcome=SyncRun.Outcome.RUNNING).aggregate(
        n=Count("id"), stuck=Count("id", filter=Q(started_at__lt=deadline))
    )
    operations = (
        Operation.objects.exclude(outcome=Operation.Outcome.RUNNING)
        .values_list("kind", "outcome", "error_step").annotate(n=Count("id")).order_by("kind", "outcome", "error_step")
    )
    total = counted["total"]
    return SyncFigures(
        runs=list(runs),  # type: ignore[arg-type]
        duration_buckets=[(b, counted[f"le{i}"]) for i, b in enumerate(buckets)],
        duration_count=counted["n"], duration_sum=total.total_seconds() if total else 0.0,
        running=live["n"], stuck=live["stuck"],
        nodes_behind=Node.objects.filter(behind_since__isnull=False).count(),
        operations=list(operations),  # type: ignore[arg-type]
        archive_bytes=Archive.objects.aggregate(n=Sum("size"))["n"] or 0,
    )
