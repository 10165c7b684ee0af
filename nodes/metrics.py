"""The cluster as Prometheus metrics: what ``/metrics`` answers, computed at scrape time.

Nothing is counted in a process's memory: a console runs several web workers, and each would count
only what it saw. Every figure is read from the database when Prometheus scrapes, in a fixed number
of queries whatever the cluster's size (``nodes.selectors.cluster_snapshot``, four, and
``nodes.selectors.sync_figures``, six), with the one rule (``nodes.convergence``), so the numbers
are the truth the dashboard shows.

What the figures mean, where it is not obvious from their help text:

- ``extadmin_package_node_states{state}`` counts package × node cells by the dashboard's word; a
  package removed from the database is counted only on the nodes that still hold a trace of it.
  Per-package series (``extadmin_package_converged{package}``) only up to ``PER_PACKAGE_MAX``
  packages; above, the counts and ``extadmin_oldest_unconverged_import_age_seconds`` say enough.
- ``extadmin_convergence_seconds`` is built at scrape time from the rows: for each package whose
  current version is converged, from its import to the last sync that finished on a node (the
  dashboard's "converged in"). It describes the packages as they are now, so it can go down (a
  package removed, a new version not converged yet): read it with ``histogram_quantile`` over
  ``_bucket``, and its ``_count`` as "converged packages", not with ``rate()``.
- ``extadmin_sync_runs_total{node,outcome}`` counts the finished ``SyncRun`` rows. A periodic pass
  that changed nothing replaces the previous such pass of its node in the history, so quiet passes
  add nothing: the counter grows with every sync that did something, failed or timed out (what
  alerts are about), plus one quiet pass per node. Forgetting a node drops its series.
- ``extadmin_sync_duration_seconds`` are those same runs, from start to finish.
- ``extadmin_operations_total{kind,outcome,step}``: finished operations; ``step`` names the step a
  failed one stopped at, empty for the others.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from nodes.convergence import FAILED, OFFLINE, tally, verdict
from nodes.presenters import degraded_cells, degraded_nodes
from nodes.selectors import ClusterSnapshot, SyncFigures, cluster_snapshot, sync_figures

# Above this many packages, no per-package series: counts only.
PER_PACKAGE_MAX = 200
CONVERGENCE_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)
SYNC_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


def _gauge(name: str, doc: str, value: float | None = None, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=None if value is not None else list(labels))


def _buckets(bounds: Iterable[float], counts: Iterable[int], total: int) -> list[tuple[str, float]]:
    return [*((str(b), float(c)) for b, c in zip(bounds, counts, strict=True)), ("+Inf", float(total))]


def node_metrics(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    """Nodes by liveness, and which are degraded."""
    online = sum(1 for n in snapshot.nodes if n[3])
    nodes = _gauge("extadmin_nodes", "Nodes by liveness (the offline rule, by the database's clock).", labels=["state"])
    nodes.add_metric(["online"], online)
    nodes.add_metric([OFFLINE], len(snapshot.nodes) - online)
    yield nodes
    each = _gauge("extadmin_node_online", "1 while the node is online, 0 while offline.", labels=["node"])
    for _, name, _, is_online in snapshot.nodes:
        each.add_metric([name], 1.0 if is_online else 0.0)
    yield each
    reasons = degraded_nodes(degraded_cells(snapshot))
    yield _gauge("extadmin_nodes_degraded", "Online nodes that have not converged a package within "
                 "EXTADMIN_DEGRADED_AFTER of its import.", value=len(reasons))
    degraded = _gauge("extadmin_node_degraded", "1 while the node is degraded.", labels=["node"])
    for node_id, name, _, _ in snapshot.nodes:
        degraded.add_metric([name], 1.0 if node_id in reasons else 0.0)
    yield degraded
    yield _gauge("extadmin_sync_paused", "1 while syncing is paused cluster-wide.", value=float(snapshot.paused))


def _cells(snapshot: ClusterSnapshot, name: str, sha256: str, state: str | None) -> list[tuple[str, bool]]:
    held = snapshot.states.get(name, {})
    out = []
    for node_id, _, _, online in snapshot.nodes:
        values = held.get(node_id)
        if values is None and state is None:
            continue  # a removed package this node never held
        v = verdict(bool(online), state, values[2] if values else None, values is not None and values[4] == sha256)
        out.append((v.state, v.converged))
    return out


def package_metrics(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    """Package × node cells by state, converged packages, the convergence histogram."""
    states: dict[str, int] = {}
    per_package = len(snapshot.packages) <= PER_PACKAGE_MAX
    each = _gauge("extadmin_package_converged", "1 when every online node proved the package's current "
                  f"version (only up to {PER_PACKAGE_MAX} packages).", labels=["package", "version"])
    converged, seconds, oldest = 0, [], 0.0
    packages: list[tuple[str, str, str, Any, Any, Any]] = list(snapshot.packages)
    packages += [(gone, "", "", None, None, None) for gone in snapshot.removed_still_held]
    for name, version, sha256, state, imported_at, finished in packages:
        cells = _cells(snapshot, name, sha256, state)
        for word, _ in cells:
            states[word] = states.get(word, 0) + 1
        if state is None:
            continue
        done = tally(cells).converged
        converged += done
        if per_package:
            each.add_metric([name, version], 1.0 if done else 0.0)
        if done:
            seconds.append((max(finished or imported_at, imported_at) - imported_at).total_seconds())
        else:
            oldest = max(oldest, (snapshot.now - imported_at).total_seconds())
    counts = _gauge("extadmin_package_node_states", "Package × node cells by state (the dashboard's words).",
                    labels=["state"])
    for word, n in sorted(states.items()):
        counts.add_metric([word], n)
    yield counts
    total = _gauge("extadmin_packages", "Packages in the database, converged or not.", labels=["converged"])
    total.add_metric(["true"], converged)
    total.add_metric(["false"], len(snapshot.packages) - converged)
    yield total
    yield each
    yield _gauge("extadmin_oldest_unconverged_import_age_seconds", "Seconds since the import of the oldest "
                 "package not converged yet; 0 when every package is.", value=oldest)
    yield _convergence_histogram(seconds)


def _convergence_histogram(seconds: list[float]) -> HistogramMetricFamily:
    counts = [sum(1 for s in seconds if s <= b) for b in CONVERGENCE_BUCKETS]
    return HistogramMetricFamily(
        "extadmin_convergence_seconds", "From a package version's import to the last node proving it, for "
        "each package whose current version converged (computed at scrape time from the rows).",
        buckets=_buckets(CONVERGENCE_BUCKETS, counts, len(seconds)), sum_value=sum(seconds),
    )


def retry_metrics(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    """Failed package × node cells by what comes next (``nodes.retries``): a retry scheduled, or none (gave up)."""
    counts = {"scheduled": 0, "gave_up": 0}
    for held in snapshot.states.values():
        for values in held.values():
            if values[2] == FAILED and values[7] > 0:
                counts["scheduled" if values[8] is not None else "gave_up"] += 1
    retries = _gauge("extadmin_package_node_retries", "Failed package × node cells by what comes next: a retry "
                     "scheduled, or none because the node gave up after EXTADMIN_SYNC_RETRIES.", labels=["state"])
    for state, n in counts.items():
        retries.add_metric([state], n)
    yield retries


def sync_metrics(figures: SyncFigures) -> Iterator[Metric]:
    """Sync runs, their durations, running and stuck syncs, nodes behind, operations, archive bytes."""
    runs = CounterMetricFamily("extadmin_sync_runs", "Finished sync runs by node and outcome (quiet periodic "
                               "passes are collapsed into one per node).", labels=["node", "outcome"])
    for node, outcome, n in figures.runs:
        runs.add_metric([node, outcome], n)
    yield runs
    counts = [c for _, c in figures.duration_buckets]
    yield HistogramMetricFamily(
        "extadmin_sync_duration_seconds", "How long finished sync runs took, from start to finish.",
        buckets=_buckets(SYNC_BUCKETS, counts, figures.duration_count), sum_value=figures.duration_sum,
    )
    yield _gauge("extadmin_syncs_running", "Sync runs running now.", value=figures.running)
    yield _gauge("extadmin_syncs_stuck", "Sync runs still running past EXTADMIN_SYNC_DEADLINE.", value=figures.stuck)
    yield _gauge("extadmin_nodes_behind", "Nodes behind while syncing is paused.", value=figures.nodes_behind)
    ops = CounterMetricFamily("extadmin_operations", "Finished operations (imports, removals, pauses, ...) by "
                              "kind, outcome and the step a failed one stopped at.", labels=["kind", "outcome", "step"])
    for kind, outcome, step, n in figures.operations:
        ops.add_metric([kind, outcome, step], n)
    yield ops
    yield _gauge("extadmin_archive_bytes", "Bytes of package archives stored in the database.",
                 value=figures.archive_bytes)


class ClusterCollector(Collector):
    """Reads the cluster on every scrape; describes nothing up front, so registering it reads nothing."""

    def collect(self) -> Iterator[Metric]:
        snapshot = cluster_snapshot()
        yield from node_metrics(snapshot)
        yield from package_metrics(snapshot)
        yield from retry_metrics(snapshot)
        yield from sync_metrics(sync_figures(buckets=SYNC_BUCKETS))


def cluster_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector())
    return registry
