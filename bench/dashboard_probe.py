"""Time the dashboard (GET /) as a logged-in operator, in its own process, on a seeded database.

    DATABASE_URL=... python bench/dashboard_probe.py --nodes 100 --packages 300 [--runs 7]

Rows are bulk-created directly (nodes × packages, online, mostly installed; some pending, failed,
syncing or outdated). Prints one JSON line: median milliseconds of the GETs after a warm-up one,
and the number of queries one GET runs (``CaptureQueriesContext``), of the default view and of
each view by name.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")
# The test client says "testserver"; the console answers only local names by default.
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--packages", type=int, required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", type=Path, help="write a cProfile text profile of one GET here (by CPU time)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.web.cluster import seed_cluster

    seed_cluster(args.nodes, args.packages)
    user = get_user_model().objects.create_superuser("bench-operator", "op@x.invalid", "pw")
    client = Client()
    client.force_login(user)
    first = client.get("/")  # warm: templates compiled, connection open
    if first.status_code != 200:
        print(f"GET / answered {first.status_code}", file=sys.stderr)
        return 1
    with CaptureQueriesContext(connection) as captured:
        client.get("/")
    queries = len(captured)  # now: the captured list is a view on the connection's log, reset later
    # Each view by name, whatever the default at this size (compact above 40 nodes): a view's
    # count must not grow with the cluster; the two views read differently (the compact one
    # counts the cells that prove a package without reading their rows).
    by_view = {}
    for view in ("grid", "compact"):
        client.get(f"/?view={view}")
        with CaptureQueriesContext(connection) as captured:
            client.get(f"/?view={view}")
        by_view[view] = len(captured)
    times, cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        response = client.get("/")
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)  # this process only: not PostgreSQL's share
        assert response.status_code == 200
    if args.profile:
        # CPU time, not wall time: on a shared machine the wall clock mostly measures the others.
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(client.get, "/")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        args.profile.write_text(out.getvalue())
    print(json.dumps({
        "nodes": args.nodes, "packages": args.packages, "ms": statistics.median(times), "runs": args.runs,
        "min_ms": min(times), "cpu_ms": statistics.median(cpu), "queries": queries,
        "queries_by_view": by_view, "bytes": len(response.content),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
