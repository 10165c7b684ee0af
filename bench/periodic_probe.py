"""Time an agent's periodic pass on a node that holds many packages and has nothing to do.

    DATABASE_URL=... EXTADMIN_NODE=bench-steady EXTADMIN_STORAGE=... \\
        python bench/periodic_probe.py --packages 1000 --files 100 [--runs 5]

Imports ``--packages`` packages of ``--files`` files each through the real import service on this
node (skipped for those already there, so a second run reuses them), then runs the agent's own
periodic pass (``nodes.reconcile.reconcile``, ``verify_contents=False``, as the agent's timer
does) ``--runs`` times, and, alternately, the raw floor: ``find`` listing every file's size under
the same storage (what a pass has to look at, with nothing else). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")

from packages import metadata_xml  # noqa: E402


def build(folder: Path, name: str, files: int) -> Path:
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.xml", metadata_xml(name, "1.0.0", entities=2))
        for i in range(files - 1):
            folder_name = "lib" if i % 2 else f"ui/{name}"
            zf.writestr(f"{folder_name}/f{i:04d}.txt", f"{name} file {i}\n" * 8)
    return path


def seed(count: int, files: int) -> float:
    from extadmin.importing import ImportItem, package_import
    from extadmin.models import ExtensionPackage
    from extadmin.operations import Actor

    have = set(ExtensionPackage.objects.filter(name__startswith="Steady").values_list("name", flat=True))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            name = f"Steady{i:04d}"
            if name not in have:
                package_import(items=[ImportItem(path=build(Path(tmp), name, files))], actor=Actor(via="cli"))
    return time.perf_counter() - t0


def one_pass() -> tuple[float, str]:
    from django.conf import settings

    from nodes.reconcile import reconcile

    t0 = time.perf_counter()
    result = reconcile(
        node_name=settings.EXTADMIN_NODE, storage_root=settings.EXTADMIN_STORAGE, trigger="periodic",
        verify_contents=False,
    )
    ms = (time.perf_counter() - t0) * 1000
    if result.actions or result.outcome != "succeeded":
        raise SystemExit(f"the pass was not a quiet one: {result.outcome} {result.actions[:3]} {result.error}")
    return ms, result.outcome


def raw_pass(storage: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["find", str(storage / "extensions"), "-printf", "%s %p\n"], stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, required=True)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument text profile of one pass here")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    seeded_s = seed(args.packages, args.files)
    one_pass()  # the first pass after the imports records "installed" once; then passes are quiet
    ours, raw = [], []
    for _ in range(args.runs):
        ours.append(one_pass()[0])
        raw.append(raw_pass(Path(settings.EXTADMIN_STORAGE)))
    if args.profile:
        from pyinstrument import Profiler

        with Profiler() as profiler:
            one_pass()
        args.profile.write_text(profiler.output_text(unicode=True, color=False))
    print(json.dumps({
        "pass_ms": statistics.median(ours), "raw_ms": statistics.median(raw), "runs_ms": ours,
        "raw_runs_ms": raw, "seed_s": seeded_s, "packages": args.packages, "files": args.files,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
