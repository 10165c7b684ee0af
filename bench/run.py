"""extadmin benchmarks: import, sync, memory, convergence, dashboard and upload against their floors.

    .venv/bin/python bench/run.py [--quick] [--only import,sync,rss,converge,dashboard,upload,live,signature]

Prints one ``name: value`` line per figure, then a table with each target and ``target met`` /
``MISSED``. Exit status 0 whether or not targets are met (CI runs ``--quick`` as a smoke check).

Every measured command is a real child process (``manage.py import_extension``, ``sync_node``,
``run_node``, gunicorn + curl, and the raw tools ``sha256sum``, ``unzip``, a psycopg COPY). The
machine is shared and small, so no absolute time is a figure on its own: each ratio compares two
commands run alternately in the same run (A B B A ...), as medians of ≥3 runs each.

Needs PostgreSQL at ``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/test``; the
bench creates and drops its own database ``extadmin_bench`` there) and Redis at
``redis://127.0.0.1:6379/0`` (``EXTADMIN_BENCH_REDIS``) for the agents.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PYTHON,
    REDIS_URL,
    ROOT,
    bench_sql,
    checkpoint,
    child_env,
    create_database,
    database_url,
    drop_database,
    fresh_dir,
    manage,
    median,
    run_timed,
)
from live import fig_live
from packages import MB, build_mixed, build_small, unpacked_size
from rollout import fig_rollout
from signature import fig_signature

BENCH = Path(__file__).resolve().parent
DEAD_BROKER = "redis://127.0.0.1:9/0"  # nothing listens on port 9 (discard): connection refused


@dataclass
class Figure:
    name: str
    value: float | int | str | None
    target: str
    met: bool | None  # None: informational
    note: str = ""


@dataclass
class Sizes:
    main: int  # import_ratio, sync_ratio, upload_http_ratio
    small: int  # RSS "50" and the convergence "50 MB" package
    big: int  # RSS "1g": memory stays flat from the small package to this one
    repeats: int
    agents: tuple[int, ...]
    converge_repeats: int
    dashboard: tuple[tuple[int, int], ...]

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(20 * MB, 5 * MB, 50 * MB, 3, (1, 8), 2, ((10, 30), (100, 300)))
        return cls(200 * MB, 50 * MB, 1024 * MB, 5, (1, 2, 4, 8), 3, ((10, 30), (100, 300)))


@dataclass
class Bench:
    work: Path
    sizes: Sizes
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    packages: dict[str, Path] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def var(self) -> Path:
        return self.work / "var"

    def env(self, **kw: str) -> dict[str, str]:
        storage = kw.pop("storage", None)
        node = kw.pop("node", "bench-importer")
        return child_env(var=self.var, node=node, storage=Path(storage) if storage else None, **kw)

    def add(self, name: str, value: float | int | str | None, target: str, met: bool | None, note: str = "") -> None:
        fig = Figure(name, value, target, met, note)
        self.figures.append(fig)
        print(f"{name}: {_fmt(value)}", flush=True)

    def log(self, text: str) -> None:
        print(f"  … {text}", file=sys.stderr, flush=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "n/a" if value is None else str(value)


# --- packages -----------------------------------------------------------------------------------
def package(b: Bench, key: str, build: Callable[[Path], Path]) -> Path:
    if key not in b.packages:
        folder = b.work / "packages" / key
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        b.packages[key] = build(folder)
        built = b.packages[key]
        b.log(f"built {built.name} ({built.stat().st_size / MB:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    return b.packages[key]


def main_package(b: Bench) -> Path:
    return package(b, "main", lambda d: build_mixed(d, "BenchMain", b.sizes.main))


def delete_package(b: Bench, name: str) -> None:
    manage("delete_extension", name, env=b.env(storage=str(b.work / "storage-delete")), check=False)


def import_once(b: Bench, path: Path, storage: Path, **env: str) -> float:
    fresh_dir(storage)
    checkpoint()
    t = run_timed([PYTHON, "manage.py", "import_extension", str(path)], env=b.env(storage=str(storage), **env))
    if t.returncode != 0:
        raise RuntimeError(f"import_extension failed: {t.output}")
    return t.seconds


def alternate(n: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Run the two measurements A B B A A B ... n times each; returns both lists of seconds."""
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


# --- 1. import_ratio ----------------------------------------------------------------------------
RAW_TABLE = "bench_raw_chunks"


def raw_import(b: Bench, path: Path) -> float:
    """The floor: sha256sum, unzip to a folder, and the same bytes into PostgreSQL with COPY."""
    out = fresh_dir(b.work / "raw-unzip")
    bench_sql(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    checkpoint()
    return raw_sequence(b, "raw_import", [
        f"sha256sum {path} >/dev/null",
        f"unzip -q {path} -d {out}",
        f"{PYTHON} {BENCH / 'raw_pg.py'} in {_pg(database_url())} {path}",
    ])


def raw_sequence(b: Bench, key: str, commands: list[str]) -> float:
    """Run shell commands one after the other in one bash; the whole wall time is the figure,
    each command's own time (bash's ``time``) is kept for the notes."""
    parts = b.work / f"{key}.times"
    parts.unlink(missing_ok=True)
    cmd = "TIMEFORMAT=%R; " + " && ".join(f"{{ time {c} ; }} 2>>{parts}" for c in commands)
    t = run_timed(["bash", "-c", cmd], env=b.env())
    if t.returncode != 0:
        raise RuntimeError(f"{key} failed: {t.output} {parts.read_text() if parts.exists() else ''}")
    seconds = [float(x) for x in parts.read_text().split()]
    b.detail.setdefault(key, []).append(seconds)  # type: ignore[union-attr]
    return t.seconds


def raw_parts(b: Bench, key: str, names: list[str]) -> str:
    runs = b.detail.get(key) or []
    return ", ".join(f"{n} {median([r[i] for r in runs]):.2f}" for i, n in enumerate(names))


def _pg(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def import_steps(name: str) -> dict[str, float]:
    rows = bench_sql(
        """SELECT s.name, s.duration_ms FROM extadmin_operationstep s WHERE s.operation_id =
           (SELECT max(id) FROM extadmin_operation WHERE package_name = %s AND outcome = 'succeeded'
            AND kind IN ('import', 'upgrade', 'reimport')) ORDER BY s.number""",
        (name,),
    )
    return {step: ms / 1000 for step, ms in rows}


def fig_import(b: Bench) -> None:
    path = main_package(b)
    entries, unpacked = unpacked_size(path)
    b.log(f"import_ratio: {path.stat().st_size / MB:.0f} MB zip, {entries} entries, {unpacked / MB:.0f} MB unpacked")
    steps: list[dict[str, float]] = []

    def ours() -> float:
        delete_package(b, "BenchMain")
        s = import_once(b, path, b.work / "storage-import")
        steps.append(import_steps("BenchMain"))
        return s

    raw, imp = alternate(b.sizes.repeats, lambda: raw_import(b, path), ours)
    ratio = median(imp) / median(raw)
    b.detail["import"] = {"raw_s": raw, "import_s": imp, "steps": steps}
    step_medians = {k: median([s[k] for s in steps if k in s]) for k in steps[0]}
    start = startup_s(b)
    note = (
        f"Django start-up {start:.2f} s; "
        f"raw {median(raw):.2f} s ({raw_parts(b, 'raw_import', ['sha256sum', 'unzip', 'COPY'])}), "
        f"import {median(imp):.2f} s (steps " + ", ".join(f"{k} {v:.2f}" for k, v in step_medians.items()) + ")"
    )
    b.add("import_ratio", ratio, "≤ 0.9", ratio <= 0.9, note)


# --- 2. sync_ratio ------------------------------------------------------------------------------
def raw_sync(b: Bench) -> float:
    """The floor: the bytes back out of PostgreSQL into a file, sha256sum, unzip."""
    out = fresh_dir(b.work / "raw-sync")
    checkpoint()
    return raw_sequence(b, "raw_sync", [
        f"{PYTHON} {BENCH / 'raw_pg.py'} out {_pg(database_url())} {out}/p.zip",
        f"sha256sum {out}/p.zip >/dev/null",
        f"unzip -q {out}/p.zip -d {out}/x",
    ])


def sync_once(b: Bench, node: str, storage: Path) -> tuple[float, float]:
    fresh_dir(storage)
    checkpoint()
    t = run_timed(
        [PYTHON, "manage.py", "sync_node", "--name", node, "--storage", str(storage)],
        env=b.env(node=node, storage=str(storage)),
    )
    if t.returncode != 0:
        raise RuntimeError(f"sync_node failed: {t.output}")
    return t.seconds, t.maxrss_mb


def forget_nodes(b: Bench, prefix: str) -> None:
    """Remove bench nodes (and what they reported) so later imports do not nudge dead queues."""
    code = (
        "from nodes.models import Node, SyncRun, SyncState;"
        f"q = Node.objects.filter(name__startswith={prefix!r});"
        "SyncState.objects.filter(node__in=q).delete(); SyncRun.objects.filter(node__in=q).delete(); q.delete()"
    )
    manage("shell", "-c", code, env=b.env(), check=False)
    try:
        import redis  # kombu's dependency, installed with celery[redis]

        r = redis.Redis.from_url(REDIS_URL)
        queue = f"node.{prefix}*"
        for pattern in (queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"):
            for key in r.scan_iter(pattern):
                r.delete(key)
    except Exception as exc:  # only tidiness: stale queues never affect a figure
        b.log(f"could not purge bench queues ({exc})")


def fig_sync(b: Bench) -> None:
    path = main_package(b)
    # The package in the database (via the real import) and the same bytes in the raw table.
    if not bench_sql("SELECT 1 FROM extadmin_extensionpackage WHERE name = 'BenchMain'"):
        import_once(b, path, b.work / "storage-import")
    if not bench_sql(f"SELECT to_regclass('{RAW_TABLE}')")[0][0]:
        raw_import(b, path)
    counter = iter(range(1000))

    def ours() -> float:
        return sync_once(b, f"bench-sync-{next(counter)}", b.work / "storage-sync")[0]

    raw, syn = alternate(b.sizes.repeats, lambda: raw_sync(b), ours)
    forget_nodes(b, "bench-sync-")
    ratio = median(syn) / median(raw)
    start = startup_s(b)
    b.detail["sync"] = {"raw_s": raw, "sync_s": syn, "startup_s": start}
    parts = raw_parts(b, "raw_sync", ["SELECT", "sha256sum", "unzip"])
    note = (
        f"raw {median(raw):.2f} s ({parts}), sync_node {median(syn):.2f} s; of which Django start-up "
        f"{start:.2f} s (without it: {(median(syn) - start) / median(raw):.2f}×)"
    )
    b.add("sync_ratio", ratio, "≤ 0.9", ratio <= 0.9, note)


def startup_s(b: Bench) -> float:
    """Wall time of a manage.py process that only sets Django up: the fixed cost in every command."""
    runs = 1 if b.quick else 3
    return median([run_timed([PYTHON, "manage.py", "shell", "-c", "pass"], env=b.env()).seconds for _ in range(runs)])


# --- 3. peak RSS ----------------------------------------------------------------------------------
def idle_rss(b: Bench) -> float:
    """Peak RSS of a manage.py process that sets Django up and does nothing (the lowest of 3, so
    that a one-off spike — e.g. modules recompiled after a source change — never flatters growth)."""
    values = []
    for _ in range(3):
        t = run_timed([PYTHON, "manage.py", "shell", "-c", "pass"], env=b.env())
        values.append(t.maxrss_mb)
    b.detail.setdefault("idle_rss_mb", []).append(values)  # type: ignore[union-attr]
    return min(values)


def fig_rss(b: Bench) -> None:
    growth: dict[str, float] = {}
    idles: list[float] = []
    for key, size, label in (("rss50", b.sizes.small, "50"), ("rss1g", b.sizes.big, "1g")):
        name = f"BenchRss{label}"
        path = package(b, key, lambda d, n=name, s=size: build_mixed(d, n, s))
        storage = b.work / f"storage-{key}"
        delete_package(b, name)
        fresh_dir(storage)
        idle = idle_rss(b)  # measured right before, like the command it is compared with
        idles.append(idle)
        checkpoint()
        t = run_timed([PYTHON, "manage.py", "import_extension", str(path)], env=b.env(storage=str(storage)))
        if t.returncode != 0:
            raise RuntimeError(f"import failed: {t.output}")
        growth[f"import_{label}"] = t.maxrss_mb - idle
        b.log(f"import of {path.stat().st_size / MB:.0f} MB: peak RSS {t.maxrss_mb:.1f} MB, idle {idle:.1f} MB")
        if label == "1g":
            idle = idle_rss(b)
            _, rss = sync_once(b, "bench-rss-sync", b.work / "storage-rss-sync")
            shutil.rmtree(b.work / "storage-rss-sync", ignore_errors=True)
            growth["sync_1g"] = rss - idle
            b.log(f"sync_node of {path.stat().st_size / MB:.0f} MB: peak RSS {rss:.1f} MB, idle {idle:.1f} MB")
        fresh_dir(storage)
        delete_package(b, name)
    forget_nodes(b, "bench-rss-")
    idle = min(idles)
    flat = abs(growth["import_1g"] - growth["import_50"]) < 16
    suffix = "" if not b.quick else " (quick: the packages are 5 and 50 MB)"
    b.add("import_peak_rss_mb_50", round(growth["import_50"], 1), "< 64 MB", growth["import_50"] < 64,
          f"idle {idle:.0f} MB{suffix}")
    b.add("import_peak_rss_mb_1g", round(growth["import_1g"], 1), "< 64 MB, flat from 50 MB",
          growth["import_1g"] < 64 and flat, f"{b.sizes.big // MB} MB package")
    b.add("sync_peak_rss_mb_1g", round(growth["sync_1g"], 1), "< 64 MB", growth["sync_1g"] < 64,
          f"{b.sizes.big // MB} MB package")


# --- 4. convergence -------------------------------------------------------------------------------
class Agents:
    """N ``run_node`` processes, each with its own fresh storage, stopped by their own ids."""

    def __init__(self, b: Bench, names: list[str], *, interval: float, broker: str) -> None:
        self.b, self.names = b, names
        self.procs: list[subprocess.Popen[bytes]] = []
        for name in names:
            storage = fresh_dir(b.work / "agents" / name)
            log = (b.work / "agents" / f"{name}.log").open("wb")
            env = b.env(node=name, storage=str(storage), CELERY_BROKER_URL=broker, EXTADMIN_LOG_LEVEL="WARNING")
            self.procs.append(
                subprocess.Popen(
                    [PYTHON, "manage.py", "run_node", "--name", name, "--storage", str(storage),
                     "--interval", str(interval)],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )

    def wait_ready(self, timeout: float = 120) -> None:
        """Every agent registered and done with its startup sync, and its worker consuming."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"an agent exited ({p.returncode}) during startup")
            rows = bench_sql(
                """SELECT count(DISTINCT n.name) FROM nodes_node n JOIN nodes_syncrun r ON r.node_id = n.id
                   WHERE n.name = ANY(%s) AND r.trigger = 'startup' AND r.finished_at IS NOT NULL""",
                (self.names,),
            )
            if rows[0][0] == len(self.names):
                time.sleep(1.0)  # let every worker finish subscribing to its queue
                return
            time.sleep(0.2)
        raise RuntimeError("agents did not finish their startup sync in time")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def wait_converged(
    names: list[str], package_name: str, sha256: str, timeout: float
) -> tuple[float, float, float] | None:
    """Seconds from the archive's commit to the last of ``names`` reporting the package installed;
    also when the last install started after the commit, and the longest install."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = bench_sql(
            """WITH c AS (SELECT a.created_at AS at FROM extadmin_archive a
                   JOIN extadmin_extensionpackage p ON p.id = a.package_id WHERE p.name = %s)
               SELECT count(*), max(s.finished_at) - (SELECT at FROM c), max(s.started_at) - (SELECT at FROM c),
                      max(s.duration_ms)
               FROM nodes_syncstate s JOIN nodes_node n ON n.id = s.node_id
               WHERE n.name = ANY(%s) AND s.package_name = %s AND s.installed_sha256 = %s AND s.state = 'installed'""",
            (package_name, names, package_name, sha256),
        )
        count, span, last_start, longest_ms = rows[0]
        if count == len(names) and span is not None:
            return span.total_seconds(), last_start.total_seconds(), (longest_ms or 0) / 1000
        time.sleep(0.05)
    return None


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MB):
            h.update(block)
    return h.hexdigest()


def converge_series(
    b: Bench, n: int, series: list[tuple[str, list[Path]]], *, broker: str, interval: float, label: str
) -> dict[str, list[float]]:
    """Start ``n`` agents once, then import each version of each package in turn and time how
    long after its commit every agent reports it installed."""
    for name, _ in series:
        delete_package(b, name)
    names = [f"bench-agent-{label}-{n}-{i}" for i in range(n)]
    agents = Agents(b, names, interval=interval, broker=broker)
    samples: dict[str, list[float]] = {}
    try:
        agents.wait_ready()
        for name, versions in series:
            for path in versions:
                sha256 = sha256_of(path)
                import_once(b, path, b.work / "storage-converge", CELERY_BROKER_URL=broker)
                before = cpu_times()
                took = wait_converged(names, name, sha256, timeout=max(120.0, 3 * interval))
                if took is None:
                    raise RuntimeError(f"{n} agents did not converge on {path.name}")
                samples.setdefault(name, []).append(took[0])
                busy = cpu_busy(before, cpu_times())
                b.detail.setdefault(f"converge_{label}_{n}_{name}", []).append((*took, *busy))  # type: ignore[union-attr]
    finally:
        agents.stop()
        forget_nodes(b, "bench-agent-")
        for name, _ in series:
            delete_package(b, name)
    return samples


def cpu_times() -> list[int]:
    """The machine's CPU time so far, by kind (the first line of /proc/stat, in clock ticks)."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def cpu_busy(before: list[int], after: list[int]) -> tuple[float, float] | tuple[()]:
    """Between two ``cpu_times``: the share of all CPUs that was busy, and the kernel's share of
    that busy time (user, nice, system, idle, iowait, irq, softirq, steal, ...); nothing when the
    span was too short for the clock's ticks (10 ms each) to say."""
    d = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(d[:8])
    busy = total - d[3] - d[4]
    if total < 100:
        return ()
    return busy / total, (d[2] + d[5] + d[6]) / (busy or 1)


def _breakdown(b: Bench, key: str) -> str:
    """Where a convergence went: how late the last node started (nudge delivery and waiting for a
    CPU), the longest install itself, and how busy the machine's CPUs were meanwhile (all of
    them busy: the nodes wait for a CPU, not for the database, a lock or the broker)."""
    runs = b.detail.get(f"converge_{key}") or []
    if not runs:
        return ""
    said = (f"; last start after commit (median) {median([r[1] for r in runs]):.2f} s, "
            f"longest install (median) {median([r[2] for r in runs]):.2f} s")
    cpu = [r[3:] for r in runs if len(r) == 5]
    if cpu:
        said += f", CPUs busy {median([c[0] for c in cpu]):.0%} (the kernel {median([c[1] for c in cpu]):.0%} of it)"
    return said


def fig_converge(b: Bench) -> None:
    reps = b.sizes.converge_repeats
    tiny = [package(b, f"tiny{i}", lambda d, i=i: build_small(d, "BenchTiny", version=f"1.0.{i}")) for i in range(reps)]
    mid = [
        package(b, f"mid{i}", lambda d, i=i: build_mixed(d, "BenchMid", b.sizes.small, version=f"1.0.{i}", seed=i))
        for i in range(reps)
    ]
    mb = b.sizes.small // MB
    big_medians: dict[int, float] = {}
    for n in b.sizes.agents:
        got = converge_series(b, n, [("BenchTiny", tiny), ("BenchMid", mid)], broker=REDIS_URL, interval=300, label="s")
        small, big = got["BenchTiny"], got["BenchMid"]
        value = median(small)
        big_medians[n] = median(big)
        b.add(f"converge_s_{n}", round(value, 3), "< 1 s" if n == 8 else "", (value < 1.0) if n == 8 else None,
              "small package, samples: " + ", ".join(f"{s:.2f}" for s in small) + _breakdown(b, f"s_{n}_BenchTiny"))
        b.add(f"converge_s_{n}_{mb}mb", round(big_medians[n], 3), "", None,
              f"{mb} MB package, samples: " + ", ".join(f"{s:.2f}" for s in big) + _breakdown(b, f"s_{n}_BenchMid"))
    if 1 in big_medians and 8 in big_medians:
        # How convergence scales with nodes: 8 agents on this machine against 1, in the same run.
        ratio = big_medians[8] / big_medians[1]
        b.add(f"converge_ratio_8_1_{mb}mb", round(ratio, 2), "≤ 2", ratio <= 2.0,
              f"converge_s_8_{mb}mb {big_medians[8]:.2f} s / converge_s_1_{mb}mb {big_medians[1]:.2f} s "
              f"(8 agents share {os.cpu_count()} CPUs)")
    interval = 4.0 if b.quick else 10.0
    down = converge_series(b, 2, [("BenchTiny", tiny)], broker=DEAD_BROKER, interval=interval, label="d")["BenchTiny"]
    worst = max(down)
    b.add("converge_s_broker_down", round(worst, 3), f"≤ interval ({interval:g} s) + 1 s", worst <= interval + 1,
          f"worst of {len(down)}; 2 agents and the import on a dead broker, periodic interval {interval:g} s; "
          "samples " + ", ".join(f"{s:.2f}" for s in down))


# --- 5. dashboard ---------------------------------------------------------------------------------
def fig_dashboard(b: Bench) -> None:
    db = "extadmin_bench_dash"
    from common import admin_sql

    results = {}
    try:
        for nodes, packages in b.sizes.dashboard:
            admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"CREATE DATABASE {db}")
            env = b.env(DATABASE_URL=database_url(db))
            manage("migrate", "-v0", env=env)
            done = subprocess.run(
                [PYTHON, str(BENCH / "dashboard_probe.py"), "--nodes", str(nodes), "--packages", str(packages)],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
            )
            if done.returncode != 0:
                raise RuntimeError(f"dashboard probe failed: {done.stderr[-3000:]}")
            results[(nodes, packages)] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    big = results[b.sizes.dashboard[-1]]
    small = results[b.sizes.dashboard[0]]
    b.add("dashboard_ms", round(big["ms"], 1), "< 150 ms", big["ms"] < 150,
          f"100 nodes × 300 packages, median of {big['runs']} GETs; 10 × 30: {small['ms']:.1f} ms")
    views = " and ".join(
        f"{view} view {small['queries_by_view'][view]} at 10 × 30, {n} at 100 × 300"
        for view, n in big["queries_by_view"].items()
    )
    b.add("dashboard_queries", big["queries"], "constant", big["queries_by_view"] == small["queries_by_view"],
          f"queries of one GET /, each view by name: {views}")
    b.add("dashboard_queries_10x30", small["queries"], "", None)


# --- 6. upload over HTTP --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fig_upload(b: Bench) -> None:
    path = main_package(b)
    env_code = (
        "from django.contrib.auth import get_user_model; U = get_user_model();"
        "U.objects.filter(username='bench').exists() or U.objects.create_superuser('bench', 'b@x.invalid', 'bench-pw')"
    )
    manage("shell", "-c", env_code, env=b.env())
    token = manage("create_api_token", "bench", env=b.env()).stdout.strip()
    port = free_port()
    storage = b.work / "storage-upload"
    fresh_dir(storage)
    log = (b.work / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "extadmin.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2",
         "--timeout", "900", "--log-level", "warning", "--no-control-socket"],
        cwd=ROOT, env=b.env(storage=str(storage)), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

        def upload() -> float:
            delete_package(b, "BenchMain")
            for child in storage.iterdir():
                shutil.rmtree(child, ignore_errors=True)
            checkpoint()
            t = run_timed(
                ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Token {token}",
                 "-F", f"file=@{path}", f"http://127.0.0.1:{port}/api/extensions/"],
                env=b.env(),
            )
            if t.returncode != 0 or not t.output.startswith("201"):
                raise RuntimeError(f"upload failed: {t.output} {(b.work / 'gunicorn.log').read_text()[-2000:]}")
            return t.seconds

        def cli() -> float:
            delete_package(b, "BenchMain")
            return import_once(b, path, b.work / "storage-import")

        cli_s, http_s = alternate(b.sizes.repeats, cli, upload)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    ratio = median(http_s) / median(cli_s)
    b.add("upload_http_ratio", ratio, "≤ 1.3", ratio <= 1.3,
          f"HTTP {median(http_s):.2f} s, import_extension {median(cli_s):.2f} s")


# --- main -----------------------------------------------------------------------------------------
# --- 7. a quiet periodic pass on a node holding many packages -----------------------------------
def fig_periodic(b: Bench) -> None:
    db = "extadmin_bench_steady"
    from common import admin_sql

    count = 100 if b.quick else 1000
    storage = b.work / "storage-steady"
    try:
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"CREATE DATABASE {db}")
        env = b.env(DATABASE_URL=database_url(db), node="bench-steady", storage=str(storage))
        manage("migrate", "-v0", env=env)
        done = subprocess.run(
            [PYTHON, str(BENCH / "periodic_probe.py"), "--packages", str(count), "--files", "100", "--runs", "7"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"periodic probe failed: {done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(storage, ignore_errors=True)
    ms = round(result["pass_ms"], 1)
    note = (f"{count} packages × 100 files, nothing to do, median of 7 passes; the raw floor "
            f"(find listing every file's size) {result['raw_ms']:.0f} ms: {ms / result['raw_ms']:.1f}×")
    b.add(f"periodic_pass_ms_{count}", ms, "< 1000 ms" if count == 1000 else "(quick: 100 packages)",
          ms < 1000 if count == 1000 else None, note)


FIGURES: dict[str, Callable[[Bench], None]] = {
    "import": fig_import,
    "sync": fig_sync,
    "rss": fig_rss,
    "upload": fig_upload,
    "dashboard": fig_dashboard,
    "converge": fig_converge,
    "periodic": fig_periodic,
    "rollout": lambda b: fig_rollout(b, agents=Agents),  # activation_skew_s_8, rollout_s_8 (bench/rollout.py)
    "live": fig_live,  # bench/live.py: live_latency_ms, idle_dashboard_cpu_ms_per_min
    # bench/signature.py: verify_signature_ms_200mb (quick: _20mb) against raw ssh-keygen -Y verify
    "signature": lambda b: fig_signature(b, zip_path=main_package(b), alternate=alternate),
}


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")), ""
        )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, load average {load[0]:.1f} at start"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "target", "verdict", "detail")]
    for f in figures:
        verdict = "" if f.met is None else ("target met" if f.met else "MISSED")
        rows.append((f.name, _fmt(f.value), f.target, verdict, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(widths[j]) for j in range(4)) + "  " + r[4])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small packages, fewer runs (a smoke check, < 3 min)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(FIGURES))
    parser.add_argument("--repeats", type=int, default=0, help="runs of each side of a ratio (default 5, quick 3)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the database")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    sizes = Sizes.for_mode(args.quick)
    if args.repeats:
        sizes.repeats = args.repeats
    chosen = [f for f in (args.only.split(",") if args.only else FIGURES) if f]
    unknown = [f for f in chosen if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="extadmin-bench-"))
    b = Bench(work=work, sizes=sizes, quick=args.quick)
    started = time.perf_counter()
    print(f"# extadmin bench{' --quick' if args.quick else ''}: {machine()}", flush=True)
    try:
        create_database(b.var)
        manage("check", env=b.env())  # warm: compiled modules cached before anything is timed
        for name in chosen:
            t0 = time.perf_counter()
            try:
                FIGURES[name](b)
            except Exception as exc:  # one figure failing must not hide the others (and exits 0 too)
                b.add(f"{name}_error", re.sub(r"\s+", " ", str(exc))[:300], "", False)
            b.log(f"{name} took {time.perf_counter() - t0:.0f} s")
    finally:
        if not args.keep:
            drop_database()
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"# kept {work} and database {database_url()}")
    print(f"\n{table(b.figures)}\n\n# {time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in b.figures], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
