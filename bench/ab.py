"""Before/after of a performance fix: the same import run from two source trees, interleaved.

    python bench/ab.py --before DIR --after DIR [--size-mb 200] [--repeats 3] [--what import|sync]

Each tree is a full checkout (``git archive <rev> | tar -x -C DIR``); both use this venv and the
bench database. Runs alternate A B B A A B ... so that load from other processes hits both alike;
prints the median of each and after/before.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PYTHON,
    bench_sql,
    checkpoint,
    child_env,
    create_database,
    drop_database,
    fresh_dir,
    median,
    run_timed,
)
from packages import MB, build_mixed

STEPS_SQL = """
    SELECT s.name, s.duration_ms FROM extadmin_operationstep s
    WHERE s.operation_id = (SELECT max(id) FROM extadmin_operation WHERE package_name = %s AND kind = 'import')
    ORDER BY s.number
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--what", choices=["import", "sync"], default="import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="extadmin-ab-") as tmp:
        work = Path(tmp)
        var = work / "var"
        create_database(var)
        try:
            package = build_mixed(work, "BenchAB", args.size_mb * MB)
            name = "BenchAB"
            times: dict[str, list[float]] = {"before": [], "after": []}
            steps: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            order = ["before", "after", "after", "before"]
            if args.what == "sync":
                return _sync_ab(args, work, var, package, name, order)
            for i in range(args.repeats * 2):
                label = order[i % 4]
                tree = args.before if label == "before" else args.after
                storage = fresh_dir(work / "storage")
                env = child_env(var=var, storage=storage)
                subprocess.run(
                    [PYTHON, str(tree / "manage.py"), "delete_extension", name], cwd=tree, env=env,
                    capture_output=True,
                )
                fresh_dir(storage)
                checkpoint()
                t = run_timed([PYTHON, str(tree / "manage.py"), "import_extension", str(package)], env=env, cwd=tree)
                if t.returncode != 0:
                    print(t.output)
                    return 1
                times[label].append(t.seconds)
                took = dict(bench_sql(STEPS_SQL, (name,)))
                for step, ms in took.items():
                    steps[label].setdefault(step, []).append(ms / 1000)
                shown = " ".join(f"{k} {v / 1000:.2f}" for k, v in took.items())
                print(f"{label}: {t.seconds:.2f} s, cpu {t.cpu_seconds:.2f} s, peak RSS {t.maxrss_mb:.0f} MB; {shown}",
                      flush=True)
            b, a = median(times["before"]), median(times["after"])
            print(f"before median {b:.2f} s, after median {a:.2f} s, after/before {a / b:.2f}")
            for step in steps["before"]:
                sb, sa = median(steps["before"][step]), median(steps["after"].get(step, [0.0]))
                print(f"  step {step}: before {sb:.2f} s, after {sa:.2f} s, after/before {sa / sb if sb else 0:.2f}")
        finally:
            if not args.keep_db:
                drop_database()
    return 0


def _sync_ab(args: argparse.Namespace, work: Path, var: Path, package: Path, name: str, order: list[str]) -> int:
    """Import once, then time ``sync_node`` on a fresh storage from each tree, alternating."""
    env = child_env(var=var, storage=fresh_dir(work / "storage"))
    subprocess.run([PYTHON, str(args.after / "manage.py"), "import_extension", str(package)], cwd=args.after,
                   env=env, check=True, capture_output=True)
    times: dict[str, list[float]] = {"before": [], "after": []}
    rss: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.repeats * 2):
        label = order[i % 4]
        tree = args.before if label == "before" else args.after
        storage = fresh_dir(work / "node-storage")
        node = f"ab-node-{i}"
        checkpoint()
        t = run_timed([PYTHON, str(tree / "manage.py"), "sync_node", "--name", node, "--storage", str(storage)],
                      env=child_env(var=var, node=node, storage=storage), cwd=tree)
        if t.returncode != 0:
            print(t.output)
            return 1
        times[label].append(t.seconds)
        rss[label].append(t.maxrss_mb)
        print(f"{label}: sync_node {t.seconds:.2f} s, cpu {t.cpu_seconds:.2f} s, peak RSS {t.maxrss_mb:.0f} MB",
              flush=True)
    b, a = median(times["before"]), median(times["after"])
    print(f"before median {b:.2f} s, after median {a:.2f} s, after/before {a / b:.2f}; "
          f"peak RSS {median(rss['before']):.0f} -> {median(rss['after']):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
