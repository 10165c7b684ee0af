"""Reads about nodes for the console: the convergence grid, a package's nodes, a node's packages.

Each read runs a fixed number of queries whatever the size of the cluster (the grid: packages,
nodes, states, cluster settings), and the rows are plain tuples, never one model instance per
cell, so that 100 nodes × 300 packages stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.liveness import is_online
from nodes.models import ClusterSettings, Node, SyncRun, SyncState

# Above this many nodes the grid would be unreadable: the dashboard shows a summary per package
# and only the cells that are not converged.
COMPACT_ABOVE_NODES = 40
# In the compact view, at most this many not-converged cells per package; the rest are counted.
COMPACT_CELLS_PER_PACKAGE = 8


def format_duration(seconds: float | None) -> str:
    """``'850 ms'``, ``'42 s'``, ``'3 min 5 s'``, ``'2 h 10 min'``, ``'3 d 4 h'``; ``''`` for None."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def clock(moment: datetime | None) -> str:
    """A time of day in the console's time zone, as the operator reads it: ``14:02:31``."""
    return timezone.localtime(moment).strftime("%H:%M:%S") if moment else "?"


@dataclass(frozen=True)
class NodeView:
    id: int
    name: str
    last_heartbeat: datetime | None
    online: bool
    url: str


@dataclass
class StateRow:
    """What a node reported for a package: the fields of one SyncState row."""

    node_id: int
    package_name: str
    state: str
    installed_version: str
    installed_sha256: str
    error: str
    duration_ms: float | None
    changed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


# The grid reads no datetime column: converting 30,000 of them would cost more than the rest.
_GRID_FIELDS = ("node_id", "package_name", "state", "installed_version", "installed_sha256", "error", "duration_ms")
_STATE_FIELDS = (*_GRID_FIELDS, "changed_at", "started_at", "finished_at")


@dataclass
class Cell:
    """What one node holds of one package, as the console shows it."""

    node: NodeView
    state: str  # installed, pending, syncing, failed, removing, removed
    version: str = ""
    sha256: str = ""
    error: str = ""
    converged: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    outdated: bool = False  # installed, but not the version the database holds
    reported: str = ""  # for an offline node: what it last reported, kept for the operator

    @property
    def short_sha(self) -> str:
        return self.sha256[:10]

    @property
    def duration(self) -> str:
        return format_duration(self.duration_ms / 1000 if self.duration_ms is not None else None)

    @property
    def kind(self) -> str:
        """The state counted in a package's summary."""
        return self.state

    @property
    def label(self) -> str:
        if self.state == "offline":
            return f"offline (last reported {self.reported})" if self.reported else "offline"
        if self.outdated:
            return f"pending (has {self.version})"
        return self.state

    @property
    def title(self) -> str:
        """The cell's tooltip: everything known about it in one line."""
        parts = [f"{self.node.name}: {self.label}"]
        if self.version:
            parts.append(f"version {self.version}")
        if self.sha256:
            parts.append(f"sha256 {self.sha256}")
        if self.duration_ms is not None:
            parts.append(f"took {self.duration}")
        if self.error:
            parts.append(f"error: {self.error}")
        return "; ".join(parts)


@dataclass
class PackageRow:
    """One package across the cluster. ``cells`` holds every node's cell, or in the compact view only
    the cells that are not converged (the converged ones are only counted)."""

    name: str
    url: str
    version: str
    sha256: str
    state: str  # the package's state: active, removing, or removed (only nodes still hold it)
    imported_at: datetime | None
    last_finished: datetime | None  # the latest sync to finish, from any node
    now: datetime
    total: int
    converged: int = 0
    cells: list[Cell] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.converged == self.total

    @property
    def not_converged(self) -> list[Cell]:
        return [c for c in self.cells if not c.converged]


    @property
    def hidden_not_converged(self) -> int:
        return max(self.total - self.converged - len(self.not_converged), 0)

    @property
    def sorted_counts(self) -> list[tuple[str, int]]:
        return sorted(self.counts.items())

    @property
    def short_sha(self) -> str:
        return self.sha256[:10]

    @property
    def since_import(self) -> str:
        return format_duration((self.now - self.imported_at).total_seconds()) if self.imported_at else ""

    @property
    def converged_at(self) -> datetime | None:
        """When the last node converged, once every node has; None while some have not."""
        if not self.done or self.imported_at is None:
            return None
        return max(self.last_finished or self.imported_at, self.imported_at)

    @property
    def time_to_converge(self) -> str:
        at = self.converged_at
        if at is None or self.imported_at is None:
            return ""
        return format_duration((at - self.imported_at).total_seconds())


@dataclass
class Dashboard:
    nodes: list[NodeView]
    rows: list[PackageRow]
    paused: bool
    now: datetime
    compact: bool = field(default=False)

    @property
    def online(self) -> int:
        return sum(1 for n in self.nodes if n.online)

    @property
    def offline_nodes(self) -> list[NodeView]:
        return [n for n in self.nodes if not n.online]

    @property
    def converged_packages(self) -> int:
        return sum(1 for r in self.rows if r.done)


def _node_views(now: datetime) -> list[NodeView]:
    nodes = Node.objects.order_by("name").values_list("id", "name", "last_heartbeat")
    return [
        NodeView(id=i, name=n, last_heartbeat=hb, online=is_online(hb, now), url=reverse("node", args=[n]))
        for i, n, hb in nodes
    ]


def _cell(node: NodeView, package: tuple[str, str] | None, s: StateRow | None) -> Cell:
    """The state of one node for one package. ``package`` is (sha256, state), or None once the
    package is removed from the database (then only nodes that still hold it have a row)."""
    cell = _reported_cell(node, package, s)
    if not node.online and cell.state != "removed":
        # A node that stopped reporting is never shown as installed; what it last said stays visible.
        cell.reported, cell.state, cell.converged = cell.label, "offline", False
    return cell


def _reported_cell(node: NodeView, package: tuple[str, str] | None, s: StateRow | None) -> Cell:
    if package is None:
        if s is None:
            return Cell(node=node, state="removed", converged=node.online)
        state = "failed" if s.state == SyncState.State.FAILED else "removing"
        return Cell(node=node, state=state, version=s.installed_version, sha256=s.installed_sha256,
                    error=s.error, started_at=s.started_at, finished_at=s.finished_at, duration_ms=s.duration_ms)
    sha256, package_state = package
    if package_state == ExtensionPackage.State.REMOVING:
        return Cell(node=node, state="removing", version=s.installed_version if s else "",
                    sha256=s.installed_sha256 if s else "")
    if s is None:
        return Cell(node=node, state="pending")
    cell = Cell(node=node, state=s.state, version=s.installed_version, sha256=s.installed_sha256,
                error=s.error, started_at=s.started_at, finished_at=s.finished_at, duration_ms=s.duration_ms)
    if s.state == SyncState.State.INSTALLED and s.installed_sha256 != sha256:
        cell.state, cell.outdated = "pending", True
    # A node converged only if it proved this very checksum on disk and is alive to serve it.
    cell.converged = cell.state == "installed" and s.installed_sha256 == sha256 and node.online
    return cell


def _row(
    row: PackageRow, package: tuple[str, str] | None, nodes: list[NodeView], states: dict[int, tuple], compact: bool
) -> PackageRow:
    """Fill a package's cells and counts. The common case (converged) takes the short path, and the
    compact view builds only the cells it shows."""
    installed, active = SyncState.State.INSTALLED, ExtensionPackage.State.ACTIVE
    counts = row.counts
    shown = 0
    for node in nodes:
        values = states.get(node.id)
        if (package is not None and package[1] == active and values is not None and node.online
                and values[2] == installed and values[4] == row.sha256):
            row.converged += 1
            counts["installed"] = counts.get("installed", 0) + 1
            if not compact:
                row.cells.append(Cell(node=node, state="installed", version=values[3], sha256=values[4],
                                      converged=True, duration_ms=values[6]))
            continue
        cell = _cell(node, package, StateRow(*values) if values is not None else None)
        row.converged += cell.converged
        counts[cell.kind] = counts.get(cell.kind, 0) + 1
        if not compact or (not cell.converged and shown < COMPACT_CELLS_PER_PACKAGE):
            row.cells.append(cell)
            shown += not cell.converged
    return row


def dashboard_grid(*, now: datetime | None = None) -> Dashboard:
    """Every package × every node, in four queries: packages, nodes, states, cluster settings."""
    now = now or timezone.now()
    last_finished = (
        SyncState.objects.filter(package_name=OuterRef("name"))
        .order_by(F("finished_at").desc(nulls_last=True))
        .values("finished_at")[:1]
    )
    packages = list(
        ExtensionPackage.objects.order_by("name")
        .annotate(last_finished=Subquery(last_finished))
        .values_list("name", "version", "sha256", "state", "imported_at", "last_finished")
    )
    nodes = _node_views(now)
    states: dict[str, dict[int, tuple]] = {}
    for v in SyncState.objects.values_list(*_GRID_FIELDS).iterator(chunk_size=5000):
        states.setdefault(v[1], {})[v[0]] = v
    paused = ClusterSettings.objects.filter(pk=1, sync_paused=True).exists()
    compact = len(nodes) > COMPACT_ABOVE_NODES

    rows = []
    for name, version, sha256, state, imported_at, finished in packages:
        row = PackageRow(name=name, url=reverse("package", args=[name]), version=version, sha256=sha256,
                         state=state, imported_at=imported_at, last_finished=finished, now=now, total=len(nodes))
        rows.append(_row(row, (sha256, state), nodes, states.get(name, {}), compact))
    # Packages removed from the database that some node still holds: they are being removed there.
    for gone in sorted(set(states) - {p[0] for p in packages}):
        row = PackageRow(name=gone, url=reverse("package", args=[gone]), version="", sha256="", state="removed",
                         imported_at=None, last_finished=None, now=now, total=len(nodes))
        rows.append(_row(row, None, nodes, states[gone], compact))
    return Dashboard(nodes=nodes, rows=rows, paused=paused, now=now, compact=compact)


# --- one package across the cluster -----------------------------------------------------------


@dataclass
class TimelineBar:
    node: str
    state: str
    start: float  # seconds after the import
    end: float | None
    x: float = 0.0  # in the chart's coordinates, filled by ``timeline``
    width: float = 0.0
    y: float = 0.0

    @property
    def text_y(self) -> float:
        return self.y + 13

    @property
    def start_text(self) -> str:
        return format_duration(self.start)

    @property
    def end_text(self) -> str:
        return format_duration(self.end) if self.end is not None else "not finished"


@dataclass
class Timeline:
    bars: list[TimelineBar]
    span: float  # seconds from the import to the last finish
    width: int
    height: int
    label_width: int
    row_height: int

    @property
    def span_text(self) -> str:
        return format_duration(self.span)

    @property
    def axis_x(self) -> int:
        return self.label_width + self.plot_width

    @property
    def plot_width(self) -> int:
        return self.width - self.label_width - 10


def package_cells(*, name: str, package: ExtensionPackage | None, now: datetime | None = None) -> list[Cell]:
    """Every node's state for one package, or for a removed one what nodes still hold (two queries)."""
    now = now or timezone.now()
    nodes = _node_views(now)
    rows = SyncState.objects.filter(package_name=name).values_list(*_STATE_FIELDS)
    states = {row.node_id: row for row in (StateRow(*v) for v in rows)}
    key = (package.sha256, package.state) if package is not None else None
    return [_cell(n, key, states.get(n.id)) for n in nodes]


def timeline(*, imported_at: datetime, cells: list[Cell], now: datetime | None = None,
             width: int = 640, row_height: int = 22, label_width: int = 120) -> Timeline:
    """Each node's sync, from start to finish, in seconds after the import (a small SVG chart)."""
    now = now or timezone.now()
    bars = []
    for c in cells:
        if c.started_at is None:
            continue
        start = max((c.started_at - imported_at).total_seconds(), 0.0)
        end = None
        if c.finished_at is not None:
            end = max((c.finished_at - imported_at).total_seconds(), start)
        bars.append(TimelineBar(node=c.node.name, state=c.state, start=start, end=end))
    span = max([b.end if b.end is not None else (now - imported_at).total_seconds() for b in bars] + [1.0])
    chart = Timeline(bars=bars, span=span, width=width, height=row_height * len(bars) + 24,
                     label_width=label_width, row_height=row_height)
    scale = chart.plot_width / span
    for i, b in enumerate(bars):
        end = b.end if b.end is not None else span
        b.x = round(label_width + b.start * scale, 1)
        b.width = round(max((end - b.start) * scale, 2.0), 1)
        b.y = i * row_height + 4
    return chart


# --- one node across the packages -------------------------------------------------------------


@dataclass
class NodePackage:
    cell: Cell
    package_name: str
    version: str
    imported_at: datetime | None
    why: str  # empty when converged


@dataclass
class RunView:
    run: SyncRun

    @property
    def took(self) -> str:
        if self.run.finished_at is None:
            return ""
        return format_duration((self.run.finished_at - self.run.started_at).total_seconds())


@dataclass
class NodeDetail:
    node: Node
    view: NodeView
    packages: list[NodePackage]
    runs: list[RunView]
    paused: bool
    running: SyncRun | None

    @property
    def not_converged(self) -> int:
        return sum(1 for p in self.packages if p.why)


def _lock_held(node: Node, now: datetime) -> bool:
    return bool(node.sync_lock_owner) and node.sync_lock_until is not None and node.sync_lock_until > now


def why_not_converged(
    *, cell: Cell, node: Node, imported_at: datetime | None, paused: bool, last_run: SyncRun | None,
    running: SyncRun | None, now: datetime,
) -> str:
    """One sentence on why this node does not (yet) hold this package; empty when it does.

    The first cause that applies wins, in the order an operator would act on them.
    """
    if cell.converged:
        return ""
    if not cell.node.online:
        if node.last_heartbeat is None:
            return "offline: the node's agent has never reported"
        return f"offline since {clock(node.last_heartbeat)}"
    if paused:
        behind = f" (this node is behind since {clock(node.behind_since)})" if node.behind_since else ""
        return f"paused: cluster syncing is paused{behind}"
    if cell.state == "failed":
        retry = ""
        if last_run is not None:
            base = last_run.finished_at or last_run.started_at
            retry = f", retry at {clock(base + timedelta(seconds=settings.EXTADMIN_SYNC_INTERVAL))}"
        return f"sync failed: {cell.error or 'no error recorded'}{retry}"
    if cell.state == "syncing":
        return f"syncing since {clock(cell.started_at)}"
    if cell.state in ("removing", "removed"):
        return "removing: the package was removed from the database; this node has not synced since"
    if _lock_held(node, now):
        since = running.started_at if running is not None else None
        return f"waiting: another sync running since {clock(since)}" if since else (
            f"waiting: another sync holds the node until {clock(node.sync_lock_until)}"
        )
    if cell.outdated:
        return f"pending: holds {cell.version}; not synced since the import at {clock(imported_at)}"
    return f"pending: not synced since the import at {clock(imported_at)}"


def node_detail(*, name: str, runs: int = 20, now: datetime | None = None) -> NodeDetail | None:
    """A node, every package's state there with the reason when not converged, and its recent syncs."""
    now = now or timezone.now()
    node = Node.objects.filter(name=name).first()
    if node is None:
        return None
    view = NodeView(id=node.pk, name=node.name, last_heartbeat=node.last_heartbeat,
                    online=is_online(node.last_heartbeat, now), url=reverse("node", args=[node.name]))
    paused = ClusterSettings.objects.filter(pk=1, sync_paused=True).exists()
    recent = list(SyncRun.objects.filter(node=node).order_by("-started_at", "-id")[:runs])
    running = next((r for r in recent if r.outcome == SyncRun.Outcome.RUNNING), None)
    last_run = next((r for r in recent if r.outcome != SyncRun.Outcome.RUNNING), None)
    states = {
        s.package_name: s
        for s in (StateRow(*v) for v in SyncState.objects.filter(node=node).values_list(*_STATE_FIELDS))
    }
    out = []
    for name_, version, sha256, state, imported_at in ExtensionPackage.objects.order_by("name").values_list(
        "name", "version", "sha256", "state", "imported_at"
    ):
        cell = _cell(view, (sha256, state), states.pop(name_, None))
        why = why_not_converged(cell=cell, node=node, imported_at=imported_at, paused=paused,
                                last_run=last_run, running=running, now=now)
        out.append(NodePackage(cell=cell, package_name=name_, version=version, imported_at=imported_at, why=why))
    for gone in sorted(states):  # removed from the database, still on this node
        cell = _cell(view, None, states[gone])
        why = why_not_converged(cell=cell, node=node, imported_at=None, paused=paused,
                                last_run=last_run, running=running, now=now)
        out.append(NodePackage(cell=cell, package_name=gone, version="", imported_at=None, why=why))
    return NodeDetail(
        node=node, view=view, packages=out, runs=[RunView(r) for r in recent], paused=paused, running=running
    )
