"""What the benchmark scripts share: the database, child environments, timed child processes."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BASE_DATABASE_URL = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
BENCH_DB = os.environ.get("EXTADMIN_BENCH_DB", "extadmin_bench")
REDIS_URL = os.environ.get("EXTADMIN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
MB = 1024 * 1024


def database_url(name: str = BENCH_DB) -> str:
    parts = urlsplit(BASE_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def psycopg_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def admin_sql(*statements: str) -> None:
    """Run statements on the base database (autocommit): CREATE/DROP DATABASE of the bench's own."""
    import psycopg

    with psycopg.connect(psycopg_url(BASE_DATABASE_URL), autocommit=True) as conn:
        for s in statements:
            conn.execute(s)  # type: ignore[arg-type]


def bench_sql(sql: str, params: tuple = (), *, url: str | None = None) -> list[tuple]:
    import psycopg

    with psycopg.connect(psycopg_url(url or database_url()), autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def create_database(var: Path) -> str:
    admin_sql(
        f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)",
        f"CREATE DATABASE {BENCH_DB}",
    )
    env = child_env(var=var)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return database_url()


def drop_database() -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def child_env(*, var: Path, node: str = "bench-importer", storage: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "extadmin.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "EXTADMIN_VAR": str(var),
        "EXTADMIN_NODE": node,
        "EXTADMIN_STORAGE": str(storage or var / "nodes" / node),
        "DJANGO_DEBUG": "0",  # as deployed: no query log kept in memory
        "PYTHONUNBUFFERED": "1",
        # Compiled modules cached outside the tree, as a deployed install has them: without this
        # (PYTHONDONTWRITEBYTECODE is set here) every command compiles Django from source.
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "extadmin-bench-pycache"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


@dataclass
class Timed:
    seconds: float
    maxrss_mb: float
    returncode: int
    output: str
    cpu_seconds: float = 0.0  # user + system of the child itself (not of PostgreSQL)


def run_timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Timed:
    """Run ``cmd`` to completion: its wall time, and its peak RSS as ``/usr/bin/time`` reports it.

    Not wait4's own rusage: a child's ru_maxrss starts from the RSS of the process that forked it
    (the high-water mark of the parent's memory is carried across fork and exec), so a benchmark
    that holds a big package in memory would inflate every figure. ``time`` is a small process,
    so what it reports is the command's own peak. For ``bash -c`` sequences it is the largest
    process bash waited for.
    """
    with tempfile.NamedTemporaryFile(prefix="bench-rss-", suffix=".txt", delete=False) as f:
        rss_file = Path(f.name)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-o", str(rss_file), "-f", "%M %U %S", *cmd],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    out = b""
    assert proc.stdout is not None
    # Read output until EOF (a chatty child would block on a full pipe otherwise).
    for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
        out = (out + chunk)[-20000:]
    proc.wait()
    seconds = time.perf_counter() - t0
    maxrss_kb, user, system = 0.0, 0.0, 0.0
    try:
        fields = rss_file.read_text().split()[-3:]  # the last line; "Command exited with ..." may precede it
        maxrss_kb, user, system = float(fields[0]), float(fields[1]), float(fields[2])
    except (OSError, ValueError, IndexError):
        pass
    finally:
        rss_file.unlink(missing_ok=True)
    return Timed(seconds, maxrss_kb / 1024, proc.returncode, out.decode(errors="replace")[-4000:], user + system)


def manage(*args: str, env: dict[str, str], check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


def checkpoint() -> None:
    """Flush PostgreSQL's dirty pages now, so no checkpoint lands inside the next measured command."""
    bench_sql("CHECKPOINT")
