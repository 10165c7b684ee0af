"""How the console shows nodes and their packages: cells, rows, durations, clocks, sentences and
the timeline's geometry. Built from what ``nodes.selectors`` read, with the words of
``nodes.convergence``; no query here.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from nodes.convergence import (
    FAILED,
    HELD_BY_ROLLOUT,
    INSTALLED,
    OFFLINE,
    QUARANTINED,
    SYNCING,
    Tally,
    Verdict,
    degraded,
    tally,
    verdict,
)
from nodes.models import Node, SyncRun
from nodes.selectors import ClusterSnapshot, NodeRow, NodeSnapshot, StateRow, by_name

# Above this many nodes the grid would be unreadable: the dashboard shows a summary per package
# and only the cells that are not converged.
COMPACT_ABOVE_NODES = 40
# A cell filter: which verdicts a view selects (``nodes.convergence.matches`` with a filter's name).
CellMatch = Callable[["NodeView", Verdict], bool]
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
    """A time of day in the console's time zone, with the zone: ``14:02:31 UTC``."""
    return timezone.localtime(moment).strftime("%H:%M:%S %Z") if moment else "?"


def retry_words(*, state: str, failures: int, next_retry_at: datetime | None) -> str:
    """``retry 3/5 at 14:05:10 UTC`` or ``gave up after 5 retries`` for a counted failure (``nodes.retries``);
    ``''`` for anything else (a failure not counted, a "retry now" not yet tried, any other state)."""
    if state != FAILED or failures <= 0:
        return ""
    if next_retry_at is None:
        used = failures - 1
        return f"gave up after {used} {'retry' if used == 1 else 'retries'}"
    return f"retry {failures}/{settings.EXTADMIN_SYNC_RETRIES} at {clock(next_retry_at)}"


def moment_text(moment: datetime | None, *, never: str = "never") -> str:
    """A date and time in the console's time zone, with the zone: ``2026-12-01 14:02:31 UTC``."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else never


# What an operating system's error means, in the console's words (by the phrase its text holds).
_OS_ERRORS = (
    ("No space left on device", "the disk is full"),
    ("disk full", "the disk is full"),
    ("Disk quota exceeded", "the disk quota is used up"),
    ("Permission denied", "permission denied on the node's storage"),
    ("Operation not permitted", "permission denied on the node's storage"),
    ("Read-only file system", "the node's storage is read-only"),
    ("No such file or directory", "a file or folder is missing"),
    ("Input/output error", "the disk could not be read or written"),
    ("Too many open files", "the agent has too many files open"),
    ("File name too long", "a file name is too long for the node's file system"),
)
_ERRNO = re.compile(r"\[Errno \d+\] ([^:']+)")
_PATH = re.compile(r"""\(?['"]?/[^\s'")]*['"]?\)?""")


def error_words(error: str) -> str:
    """An error said in words, short enough for a cell and never cut mid-path: ``unzip: the disk is
    full`` for ``unzip: [Errno 28] No space left on device: '/srv/…/lib/a.jar'``; a sync's several
    failures (``A: …; B: …``) each so. The full text goes in the element's title."""
    return "; ".join(_one_error_in_words(part) for part in error.split("; ")) if error else ""


def _one_error_in_words(error: str) -> str:
    prefix, rest = "", error
    while True:  # the steps and names it starts with ("Base: unzip: …") stay as they are
        head, sep, tail = rest.partition(": ")
        if not sep or " " in head or "/" in head or head.startswith("["):
            break
        prefix, rest = prefix + head + sep, tail
    for phrase, words in _OS_ERRORS:
        if phrase.lower() in rest.lower():
            return prefix + words
    errno_text = _ERRNO.search(rest)
    if errno_text:
        return prefix + errno_text.group(1).strip().lower()
    return prefix + (" ".join(_PATH.sub("", rest).split()) or rest)


def node_url(name: str) -> str:
    """The node page, or "" for a name no URL can carry (old rows from before names were checked)."""
    try:
        return reverse("node", args=[name])
    except NoReverseMatch:
        return ""


# A name made of these only is its own URL path segment (``reverse`` would quote nothing in it).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+")


def package_urls() -> Callable[[str], str]:
    """The package page's URL for a name: ``reverse``'s answer, with the prefix built once a page
    instead of once a package (300 ``reverse`` calls were a tenth of the dashboard's time)."""
    prefix = reverse("package", args=["x"])[:-2]
    return lambda name: f"{prefix}{name}/" if _PLAIN_NAME.fullmatch(name) else reverse("package", args=[name])


def nodes_summary(t: Tally) -> str:
    """``3/3 online, 1 offline``: the converged online nodes of the online ones, then the offline ones."""
    text = f"{t.converged_nodes}/{t.online} online"
    return f"{text}, {t.offline} offline" if t.offline else text


@dataclass(frozen=True)
class NodeView:
    id: int
    name: str
    last_seen: datetime | None  # the last proof of life, by the database's clock
    online: bool
    url: str
    degraded: str = ""  # the sentence saying why the node is degraded; empty when it is not

    @classmethod
    def of(cls, row: NodeRow) -> NodeView:
        node_id, name, last_seen, online = row
        return cls(id=node_id, name=name, last_seen=last_seen, online=bool(online), url=node_url(name))

    @property
    def state(self) -> str:
        return "online" if self.online else OFFLINE

    @property
    def last_seen_text(self) -> str:
        return moment_text(self.last_seen)


@dataclass
class Cell:
    """What one node holds of one package, as the console shows it (``nodes.convergence.verdict``)."""

    node: NodeView
    state: str  # installed, pending, syncing, failed, removing, removed, offline
    version: str = ""
    sha256: str = ""
    error: str = ""
    converged: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    outdated: bool = False  # holds an older checksum than the database's
    reported: str = ""  # for an offline node: what it last reported, kept for the operator
    degraded: str = ""  # the sentence saying why this cell makes its node degraded
    retry: str = ""  # a failed checksum's next retry, or that the node gave up (``retry_words``)

    @property
    def short_sha(self) -> str:
        return self.sha256[:10]

    @property
    def duration(self) -> str:
        return format_duration(self.duration_ms / 1000 if self.duration_ms is not None else None)

    @property
    def error_words(self) -> str:
        """The error in words for a cell (``error_words``); ``error`` is the full text, for its title."""
        return error_words(self.error)

    @property
    def kind(self) -> str:
        """The state counted in a package's summary."""
        return self.state

    @property
    def reported_label(self) -> str:
        """What an offline node last reported; nothing when it was never seen (then it reported nothing)."""
        if not self.reported or self.node.last_seen is None:
            return ""
        return f"{self.reported} (has {self.version})" if self.outdated else self.reported

    @property
    def label(self) -> str:
        if self.state == OFFLINE:
            return f"offline (last reported {self.reported_label})" if self.reported_label else "offline"
        if self.outdated:
            return f"pending (has {self.version})"
        if self.state == QUARANTINED:
            return self.error or QUARANTINED  # "holds quarantined 2.0.0" (nodes.convergence.quarantine_words)
        if self.state in HELD_BY_ROLLOUT and self.error:
            return self.error  # the rollout's sentence: "waiting for batch 2"
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
        if self.error and self.state not in HELD_BY_ROLLOUT:
            parts.append(f"error: {self.error}")
        if self.retry:
            parts.append(self.retry)
        if self.degraded:
            parts.append(f"degraded: {self.degraded}")
        return "; ".join(parts)


def cell_of(node: NodeView, v: Verdict, row: StateRow | None) -> Cell:
    if row is None:
        return Cell(node=node, state=v.state, converged=v.converged, outdated=v.outdated, reported=v.reported)
    return Cell(
        node=node, state=v.state, version=row.installed_version, sha256=row.installed_sha256, error=row.error,
        converged=v.converged, started_at=row.started_at, finished_at=row.finished_at,
        duration_ms=row.duration_ms, outdated=v.outdated, reported=v.reported,
        retry=retry_words(state=v.state, failures=row.failures, next_retry_at=row.next_retry_at),
    )


def package_cells(
    *, nodes: list[NodeRow], package: tuple[str, str] | None, states: dict[int, StateRow]
) -> list[Cell]:
    """Every node's cell for one package; ``package`` is (sha256, state), None once removed."""
    sha256, package_state = package if package is not None else ("", None)
    cells = []
    for n in nodes:
        view = NodeView.of(n)
        row = states.get(view.id)
        v = verdict(view.online, package_state, row.state if row else None,
                    row is not None and row.installed_sha256 == sha256)
        cells.append(cell_of(view, v, row))
    return cells


def cells_tally(cells: list[Cell]) -> Tally:
    return tally((c.state, c.converged) for c in cells)


# --- the dashboard ----------------------------------------------------------------------------


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
    converged: int = 0  # online nodes that proved it
    offline: int = 0
    cells: list[Cell] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # The cells a filter selects (``nodes.convergence.matches``; not converged when no filter):
    # how many, how many of them ``cells`` shows, and on which nodes.
    matched: int = 0
    shown_matched: int = 0
    matched_nodes: set[int] = field(default_factory=set)

    @property
    def hidden_matched(self) -> int:
        """Selected cells the compact view leaves out (shown as "+N more")."""
        return max(self.matched - self.shown_matched, 0)

    @property
    def tally(self) -> Tally:
        return Tally(converged_nodes=self.converged, online=self.total - self.offline, offline=self.offline)

    @property
    def done(self) -> bool:
        return self.tally.converged

    @property
    def nodes_text(self) -> str:
        return nodes_summary(self.tally)

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
        """When the last online node converged, once every online node has; None while some have not."""
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

    @property
    def degraded_nodes(self) -> list[NodeView]:
        return [n for n in self.nodes if n.degraded]


def _holding(states: dict[int, tuple], sha256: str) -> set[int]:
    """The nodes whose row says the package's bytes are installed (``GRID_FIELDS`` tuples)."""
    return {i for i, values in states.items() if values[2] == INSTALLED and values[4] == sha256}


def _fill(row: PackageRow, package_state: str | None, nodes: list[NodeView], states: dict[int, tuple],
          compact: bool, degraded_cells: dict[tuple[str, int], str], match: CellMatch | None = None,
          proved_by: frozenset[int] | None = None) -> PackageRow:
    """Fill a package's cells and counts; the compact view builds only the cells it shows: those
    ``match`` selects (the ones not converged when no filter is asked for).

    ``proved_by``: the online nodes that prove the package, from a lean snapshot (whose ``states``
    leave their rows out); None: worked out from ``states``.

    The hot loop of the dashboard (30,000 cells at 100 × 300): plain tuples, one cached verdict each,
    counted by verdict (a few distinct ones a package) and summed once at the end.
    """
    sha256, shown, cells, matched_nodes = row.sha256, 0, row.cells, row.matched_nodes
    seen: dict[Verdict, int] = {}
    if compact and match is None:
        # Most cells are an online node proving the package: the compact view shows none of them
        # and the rule says the same of each, so they are counted at once and only the rest walked.
        proved = verdict(True, package_state, INSTALLED, True)
        if proved.converged:
            held = proved_by if proved_by is not None else _holding(states, sha256)
            nodes = [n for n in nodes if not (n.online and n.id in held)]
            if len(nodes) < row.total:
                seen[proved] = row.total - len(nodes)
    for node in nodes:
        values = states.get(node.id)
        if values is None:
            v = verdict(node.online, package_state, None, False)
        else:
            v = verdict(node.online, package_state, values[2], values[4] == sha256)
        seen[v] = seen.get(v, 0) + 1
        hit = not v.converged if match is None else match(node, v)
        if hit:
            matched_nodes.add(node.id)
        if compact and (not hit or shown >= COMPACT_CELLS_PER_PACKAGE):
            continue
        cells.append(cell_of(node, v, StateRow(*values) if values is not None else None))
        cells[-1].degraded = degraded_cells.get((row.name, node.id), "")
        shown += hit
    counts = row.counts
    for v, n in seen.items():
        counts[v.state] = counts.get(v.state, 0) + n
        row.converged += n if v.converged else 0
        row.offline += n if v.state == OFFLINE else 0
    row.matched = len(matched_nodes)
    row.shown_matched = shown
    return row


def dashboard(snapshot: ClusterSnapshot, *, match: CellMatch | None = None, compact: bool | None = None) -> Dashboard:
    """Every package × every node; ``match`` selects cells (``nodes.dashboard_query``), ``compact``
    forces a view (by default compact above ``COMPACT_ABOVE_NODES`` nodes). A lean snapshot
    serves the compact default view only: the others show cells it did not read."""
    cells = degraded_cells(snapshot)
    reasons = degraded_nodes(cells)
    nodes = [replace(NodeView.of(n), degraded=reasons.get(n[0], "")) for n in snapshot.nodes]
    compact = len(nodes) > COMPACT_ABOVE_NODES if compact is None else compact
    proved = snapshot.proved
    if proved is not None and not (compact and match is None):
        raise ValueError("a lean snapshot serves the compact view without a filter only")
    rows, url, nobody = [], package_urls(), frozenset[int]()
    for name, version, sha256, state, imported_at, finished in snapshot.packages:
        row = PackageRow(name=name, url=url(name), version=version, sha256=sha256,
                         state=state, imported_at=imported_at, last_finished=finished, now=snapshot.now,
                         total=len(nodes))
        rows.append(_fill(row, state, nodes, snapshot.states.get(name, {}), compact, cells, match,
                          proved_by=None if proved is None else proved.get(name, nobody)))
    # Packages removed from the database that some node still holds: they are being removed there.
    for gone in snapshot.removed_still_held:
        row = PackageRow(name=gone, url=url(gone), version="", sha256="", state="removed",
                         imported_at=None, last_finished=None, now=snapshot.now, total=len(nodes))
        rows.append(_fill(row, None, nodes, snapshot.states[gone], compact, cells, match))
    return Dashboard(nodes=nodes, rows=rows, paused=snapshot.paused, now=snapshot.now, compact=compact)


# --- degraded nodes -------------------------------------------------------------------------


def degraded_reason(*, node: str, package: str, version: str, cause: str, within: str = "") -> str:
    """``node-2 has not installed Pump 1.2.0 within 1 min of its import: sync failed: disk full``."""
    within = within or format_duration(settings.EXTADMIN_DEGRADED_AFTER)
    return f"{node} has not installed {package} {version} within {within} of its import: {cause}"


def _degraded_cause(v: Verdict, values: tuple | None) -> str:
    if v.state == FAILED:
        said = f"sync failed: {(values[5] if values else '') or 'no error recorded'}"
        retry = retry_words(state=v.state, failures=values[7], next_retry_at=values[8]) if values else ""
        return f"{said}; {retry}" if retry else said
    if v.state == SYNCING:
        return "still syncing"
    if v.outdated and values is not None:
        return f"pending: it still holds {values[3]}"
    return f"{v.state}: not synced since the import" if v.state != "removing" else "removing"


def degraded_cells(snapshot: ClusterSnapshot) -> dict[tuple[str, int], str]:
    """Every cell that makes its node degraded (``nodes.convergence.degraded``), with its sentence,
    by (package, node id), in the packages' order. Only overdue packages on online nodes can be."""
    out: dict[tuple[str, int], str] = {}
    within = format_duration(settings.EXTADMIN_DEGRADED_AFTER)
    online = [(node_id, name) for node_id, name, _, is_online in snapshot.nodes if is_online]
    for name, version, sha256, state, _, _ in snapshot.packages:
        if name not in snapshot.overdue:
            continue
        held = snapshot.states.get(name, {})
        # Most cells hold the package: asked once per package, the rule clears them all at once.
        cleared: Collection[int] = ()
        if verdict(True, state, INSTALLED, True).converged:
            # lean: the online nodes that prove it, read as such
            cleared = snapshot.proved.get(name, ()) if snapshot.proved is not None else _holding(held, sha256)
        for node_id, node_name in [n for n in online if n[0] not in cleared]:
            values = held.get(node_id)
            v = verdict(True, state, values[2] if values else None, values is not None and values[4] == sha256)
            if degraded(v, overdue=True, paused=snapshot.paused):
                out[(name, node_id)] = degraded_reason(
                    node=node_name, package=name, version=version, cause=_degraded_cause(v, values), within=within
                )
    return out


def degraded_nodes(cells: dict[tuple[str, int], str]) -> dict[int, str]:
    """Each degraded node's sentence, by node id: its first package's, and how many more there are."""
    by_node: dict[int, list[str]] = {}
    for (_, node_id), sentence in cells.items():
        by_node.setdefault(node_id, []).append(sentence)
    return {
        node_id: sentences[0] + (f" (and {len(sentences) - 1} more)" if len(sentences) > 1 else "")
        for node_id, sentences in by_node.items()
    }


# --- one package: the timeline ----------------------------------------------------------------


@dataclass
class TimelineBar:
    node: str
    state: str
    start: float  # seconds after the import
    end: float | None
    x: float = 0.0  # in the chart's coordinates, filled by ``timeline``
    width: float = 0.0
    y: float = 0.0
    left_pct: float = 0.0  # where the bar starts and how long it is, in % of the chart's whole width
    width_pct: float = 0.0

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
        b.left_pct = round(min(b.start / span * 100, 99.0), 2)
        b.width_pct = round(min(max((end - b.start) / span * 100, 1.0), 100 - b.left_pct), 2)
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

    @property
    def retryable(self) -> list[str]:
        """The packages whose sync failed here ("retry now" makes them due at once); removals retry anyway."""
        return [p.package_name for p in self.packages if p.cell.state == FAILED and p.version]


def _lock_held(node: Node, now: datetime) -> bool:
    return bool(node.sync_lock_owner) and node.sync_lock_until is not None and node.sync_lock_until > now


def _why_offline(view: NodeView) -> str:
    # The same last-seen as the page's "Last seen" and the cells' "last reported".
    if view.last_seen is None:
        return "offline: the node's agent has never reported"
    return f"offline since {clock(view.last_seen)}"


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
        return _why_offline(cell.node)
    if paused:
        behind = f" (this node is behind since {clock(node.behind_since)})" if node.behind_since else ""
        return f"paused: cluster syncing is paused{behind}"
    if cell.state == "failed":
        if cell.retry:
            return f"sync failed: {cell.error or 'no error recorded'}; {cell.retry}"
        retry = ""
        if last_run is not None:
            base = last_run.finished_at or last_run.started_at
            retry = f", retry at {clock(base + timedelta(seconds=settings.EXTADMIN_SYNC_INTERVAL))}"
        return f"sync failed: {error_words(cell.error) or 'no error recorded'}{retry}"
    if cell.state == QUARANTINED:
        return f"quarantined: {cell.error}"
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


def node_detail(snapshot: NodeSnapshot, *, now: datetime | None = None) -> NodeDetail:
    """A node, every package's state there with the reason when not converged, and its recent syncs."""
    now = now or timezone.now()
    node = snapshot.node
    view = NodeView.of((node.pk, node.name, node.last_heartbeat, snapshot.online))
    running, last_run = snapshot.running, snapshot.last_run
    states = dict(snapshot.states)
    items: list[tuple[str, str, tuple[str, str] | None, datetime | None]] = [
        (name, version, (sha256, state), imported_at)
        for name, version, sha256, state, imported_at in snapshot.packages
    ]
    gone_names = sorted(set(states) - {p[0] for p in snapshot.packages}, key=by_name)
    items += [(gone, "", None, None) for gone in gone_names]
    out = []
    for name, version, package, imported_at in items:
        [cell] = package_cells(nodes=[(view.id, view.name, view.last_seen, view.online)], package=package,
                               states={view.id: states[name]} if name in states else {})
        why = why_not_converged(cell=cell, node=node, imported_at=imported_at, paused=snapshot.paused,
                                last_run=last_run, running=running, now=now)
        out.append(NodePackage(cell=cell, package_name=name, version=version, imported_at=imported_at, why=why))
    return NodeDetail(node=node, view=view, packages=out, runs=[RunView(r) for r in snapshot.runs],
                      paused=snapshot.paused, running=running)


# --- every node -------------------------------------------------------------------------------


@dataclass
class NodeListItem:
    node: Node
    view: NodeView
    counts: dict[str, int]  # how many packages in each state on this node

    @property
    def sorted_counts(self) -> list[tuple[str, int]]:
        return sorted(self.counts.items())


def node_list_items(*, nodes: list[Node], snapshot: ClusterSnapshot) -> list[NodeListItem]:
    """Every node, with how many packages it holds in each state (the dashboard's words)."""
    counts: dict[int, dict[str, int]] = {n.pk: {} for n in nodes}
    online = {n.pk: bool(getattr(n, "online", False)) for n in nodes}
    packages: list[tuple[str, str, str | None]] = [
        (name, sha256, state) for name, _, sha256, state, _, _ in snapshot.packages
    ]
    packages += [(gone, "", None) for gone in snapshot.removed_still_held]
    for name, sha256, state in packages:
        held = snapshot.states.get(name, {})
        for node_id, node_counts in counts.items():
            values = held.get(node_id)
            if values is None and state is None:
                continue  # a removed package this node never held: nothing to count
            v = verdict(online[node_id], state, values[2] if values else None,
                        values is not None and values[4] == sha256)
            node_counts[v.state] = node_counts.get(v.state, 0) + 1
    return [
        NodeListItem(node=n, view=NodeView.of((n.pk, n.name, n.last_heartbeat, online[n.pk])), counts=counts[n.pk])
        for n in nodes
    ]
