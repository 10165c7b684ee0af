"""Rollout figures (``bench/run.py --only rollout``), with 8 real agents on Redis and PostgreSQL.

- ``activation_skew_s_8``: ``import_extension v2 --activation together``; every agent stages the
  new version, then all swap it in when the rollout activates. The figure is the time between the
  first and the last agent's swap (``RolloutNode.swapped_at``, stamped when each proved it).
- ``rollout_s_8``: ``import_extension v3 --canary <one agent> --batch 2`` of a small package, every
  node healthy: seconds from the archive's commit to the rollout's ``completed``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from common import REDIS_URL, bench_sql, fresh_dir, manage
from packages import build_small

AGENTS = 8
SKEW_TARGET_S = 1.0


def fig_rollout(b: Any, *, agents: Callable[..., Any]) -> None:
    """``agents``: run.py's ``Agents`` (N ``run_node`` processes, stopped by their own ids)."""
    names = [f"bench-roll-{i}" for i in range(1, AGENTS + 1)]
    folder = fresh_dir(b.work / "packages" / "rollout")
    running = agents(b, names, interval=30.0, broker=REDIS_URL)
    try:
        running.wait_ready()
        v1 = build_small(folder, "BenchRoll", version="1.0.0")
        manage("import_extension", str(v1), env=b.env())
        _wait(lambda: _installed(names, "1.0.0") == len(names), timeout=120, what="1.0.0 on every agent")

        manage("import_extension", str(build_small(folder, "BenchRoll", version="2.0.0")),
               "--activation", "together", env=b.env())
        _wait(lambda: _state("2.0.0") == "completed", timeout=120, what="the together rollout")
        skew, staged_before = _skew(names, "2.0.0")
        b.add(f"activation_skew_s_{AGENTS}", round(skew, 3), f"< {SKEW_TARGET_S:g} s", skew < SKEW_TARGET_S,
              f"first to last swap of {AGENTS} agents; every one staged before any swapped: {staged_before}")

        manage("import_extension", str(build_small(folder, "BenchRoll", version="3.0.0")),
               "--canary", names[0], "--batch", "2", env=b.env())
        _wait(lambda: _state("3.0.0") == "completed", timeout=180, what="the canary + batches rollout")
        seconds, batches = _rollout_seconds("3.0.0")
        b.add(f"rollout_s_{AGENTS}", round(seconds, 2), "(informational)", None,
              f"canary then batches of 2: {batches} batches, small package, all healthy")
    finally:
        running.stop()


def _wait(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _installed(names: list[str], version: str) -> int:
    return int(bench_sql(
        """SELECT count(*) FROM nodes_syncstate s JOIN nodes_node n ON n.id = s.node_id
           WHERE n.name = ANY(%s) AND s.package_name = 'BenchRoll' AND s.installed_version = %s
             AND s.state = 'installed'""", (names, version),
    )[0][0])


def _state(version: str) -> str | None:
    rows = bench_sql("SELECT state FROM rollouts_rollout WHERE package_name = 'BenchRoll' AND version = %s "
                     "ORDER BY id DESC LIMIT 1", (version,))
    return rows[0][0] if rows else None


def _skew(names: list[str], version: str) -> tuple[float, bool]:
    """Seconds between the first and the last swap; whether every agent reported it staged before
    the first swap."""
    [(first, last)] = bench_sql(
        """SELECT min(rn.swapped_at), max(rn.swapped_at) FROM rollouts_rolloutnode rn
           JOIN rollouts_rollout r ON r.id = rn.rollout_id JOIN nodes_node n ON n.id = rn.node_id
           WHERE r.package_name = 'BenchRoll' AND r.version = %s AND n.name = ANY(%s)""", (version, names),
    )
    [(staged_last, staged)] = bench_sql(
        """SELECT max(rn.staged_at), count(rn.staged_at) FROM rollouts_rolloutnode rn
           JOIN rollouts_rollout r ON r.id = rn.rollout_id JOIN nodes_node n ON n.id = rn.node_id
           WHERE r.package_name = 'BenchRoll' AND r.version = %s AND n.name = ANY(%s)""", (version, names),
    )
    return (last - first).total_seconds(), staged == len(names) and staged_last <= first


def _rollout_seconds(version: str) -> tuple[float, int]:
    [(committed, done, batches)] = bench_sql(
        """SELECT a.created_at, r.changed_at, r.last_batch + 1 FROM rollouts_rollout r
           JOIN extadmin_extensionpackage p ON p.name = r.package_name JOIN extadmin_archive a ON a.package_id = p.id
           WHERE r.package_name = 'BenchRoll' AND r.version = %s ORDER BY r.id DESC LIMIT 1""", (version,),
    )
    return (done - committed).total_seconds(), batches
