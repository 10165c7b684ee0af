"""The live dashboard's figures, in a real Chromium against gunicorn as ``scripts/run`` starts it.

    live_latency_ms                 a node's report (its sync state row, written as the agent writes
                                    it) → the cell changed in the open page; median of 20; < 500
    idle_dashboard_cpu_ms_per_min   CPU time of the console's processes (gunicorn's master and
                                    workers) while one 100 × 300 dashboard is open and nothing
                                    changes, per minute; < 100 (``--quick``: 15 s, scaled to a minute)

Run by ``bench/run.py --only live``; ``python bench/live.py --seed`` is its own helper (seeds the
cluster and the operator in the database the environment names).
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import BENCH_DB, PYTHON, admin_sql, bench_sql, database_url, manage  # noqa: E402

DB = f"{BENCH_DB}_live"  # EXTADMIN_BENCH_DB names it, so two benches on one server never share it
NODES, PACKAGES = 100, 300
USER, PASSWORD = "bench-live", "bench-live-pw-1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SAMPLES = 20


def seed() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from tests.web.cluster import seed_cluster

    seed_cluster(NODES, PACKAGES)
    get_user_model().objects.create_superuser(USER, "live@x.invalid", PASSWORD)
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_ms(pids: list[int]) -> float:
    """User + system CPU of these processes so far, in ms (``/proc/PID/stat``: utime, stime)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / ticks


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(int(p) for p in out)]


def _serve(b: Any, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    log = (b.work / "gunicorn-live.log").open("wb")
    # As scripts/run starts the console: two workers of eight threads (gthread).
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "extadmin.wsgi:application", "-b", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "8", "--timeout", "900", "--log-level", "warning", "--no-control-socket"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.2)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM; a worker still holding a stream (it notices the closed page at its next comment)
    gets gunicorn's graceful timeout, then SIGKILL."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def _open_dashboard(pw: Any, base: str) -> Any:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(60_000)
    page.goto(base + "/accounts/login/?next=/")
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_function("document.querySelector('[data-live-status]').textContent === 'live'")
    return browser, page


def _latency(page: Any, url: str) -> list[float]:
    """Flip one shown cell's row between failed and syncing, as a node's report would, and time
    from the write to the cell's new word in the page."""
    chip = page.locator("#grid .open-cells a.chip[data-state=failed]").first  # a node with a row
    package, node = chip.get_attribute("data-package"), chip.get_attribute("data-node")
    node_id = bench_sql("SELECT id FROM nodes_node WHERE name = %s", (node,), url=url)[0][0]
    cell_id = f"cell-{package}-{node_id}"
    samples = []
    for i in range(SAMPLES):
        word = "syncing" if i % 2 == 0 else "failed"  # the chosen cell is failed to begin with
        page.evaluate("""([id, word]) => {
            window.__seen = null;
            const look = () => {
                const el = document.getElementById(id);
                if (el && el.dataset.state === word) { window.__seen = Date.now(); return; }
                requestAnimationFrame(look);
            };
            look();
        }""", [cell_id, word])
        t0 = time.time() * 1000
        bench_sql("UPDATE nodes_syncstate SET state = %s, error = %s, changed_at = now() "
                  "WHERE package_name = %s AND node_id = %s", (word, f"bench {i}", package, node_id), url=url)
        page.wait_for_function("window.__seen !== null", timeout=30_000)
        samples.append(page.evaluate("window.__seen") - t0)
        time.sleep(0.3)
    return samples


def fig_live(b: Any) -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", f"CREATE DATABASE {DB}")
    url = database_url(DB)
    # Nothing changes by itself during the quiet minute: seeded heartbeats stay fresh for a day, and
    # no package turns overdue half-way (no node turns degraded during it).
    env = b.env(DATABASE_URL=url, EXTADMIN_HEARTBEAT_INTERVAL="86400", EXTADMIN_DEGRADED_AFTER="31536000",
                DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost")
    manage("migrate", "-v0", env=env)
    subprocess.run([PYTHON, str(BENCH / "live.py"), "--seed"], cwd=ROOT, env=env, check=True, timeout=900)
    from playwright.sync_api import sync_playwright

    server, port = _serve(b, env)
    window = 15.0 if b.quick else 60.0
    try:
        with sync_playwright() as pw:
            browser, page = _open_dashboard(pw, f"http://127.0.0.1:{port}")
            time.sleep(3)  # the first render and the stream's hello are not the quiet minute
            pids = _children(server.pid)
            before, t0 = _cpu_ms(pids), time.monotonic()
            time.sleep(window)
            spent, elapsed = _cpu_ms(pids) - before, time.monotonic() - t0
            samples = _latency(page, url)
            browser.close()
    finally:
        _stop(server)
        admin_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    per_min = spent * 60 / elapsed
    latency = statistics.median(samples)
    b.add("live_latency_ms", round(latency, 1), "< 500", latency < 500,
          f"median of {len(samples)} in Chromium, {NODES} × {PACKAGES} default view; "
          f"min {min(samples):.0f}, max {max(samples):.0f} ms")
    b.add("idle_dashboard_cpu_ms_per_min", round(per_min, 1), "< 100", per_min < 100,
          f"{spent:.0f} ms CPU of gunicorn (master + {len(pids) - 1} workers) over a quiet "
          f"{elapsed:.0f} s with one {NODES} × {PACKAGES} dashboard open, scaled to a minute")


if __name__ == "__main__":
    if "--seed" in sys.argv:
        sys.exit(seed())
    print(__doc__)
