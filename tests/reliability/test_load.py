"""Load: 20 concurrent uploads (distinct and same-name) through gunicorn while agents sync.

Promise: no package lost or duplicated, no 500, a clear conflict for the losers of a same-name
race, every node converged. The default run: 20 uploads, 8 agents; ``--soak``: 40 uploads.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from extadmin.importing import file_sha256
from extadmin.models import ExtensionPackage, Operation
from tests.packages import build_package
from tests.processes import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _uploads(pkgdir: Path, distinct: int) -> list[tuple[str, Path]]:
    """``distinct`` packages of their own, plus two same-name groups of three (same version, and three versions)."""
    items = [(f"Load{i:02d}", build_package(pkgdir, f"Load{i:02d}", "1.0.0")) for i in range(distinct)]
    for i in range(3):
        folder = pkgdir / f"same{i}"
        folder.mkdir()
        items.append(("Same", build_package(folder, "Same", "1.0.0")))  # same version, different bytes
        items.append(("Twin", build_package(folder, "Twin", f"1.{i}.0")))
    return items


def _run(cluster, token, pkgdir: Path, *, agents: int, distinct: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    names = cluster.start_agents(agents)
    cluster.start_web(workers=2, threads=4)
    items = _uploads(pkgdir, distinct)
    results: list[tuple[str, Path, int, object]] = []
    gate = threading.Barrier(len(items))

    def upload(name: str, path: Path) -> None:
        gate.wait()
        status, body = cluster.upload(path, token, timeout=300)
        results.append((name, path, status, body))

    threads = [threading.Thread(target=upload, args=item) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)

    statuses = Counter(status for *_, status, _ in results)
    assert len(results) == len(items)
    assert all(s in (201, 409) for s in statuses), [(n, s, b) for n, _, s, b in results if s not in (201, 409)]
    for name, _, status, body in results:
        if status == 409:
            assert name in ("Same", "Twin") and body["error"]["reason"], body  # a clear conflict, same-name only
    # Nothing lost: every distinct package is in; each same-name group holds one winner's exact bytes.
    packages = {p.name: p for p in ExtensionPackage.objects.select_related("archive")}
    assert sorted(packages) == sorted({name for name, _ in items})
    for name in ("Same", "Twin"):
        won = {file_sha256(path) for n, path, status, _ in results if n == name and status == 201}
        assert won and packages[name].sha256 in won
    for p in packages.values():  # nothing half-written
        assert p.archive.sha256 == p.sha256 and p.chunks.count() == p.archive.chunk_count
    assert not Operation.objects.filter(outcome=Operation.Outcome.RUNNING).exists()

    wait_for(lambda: not Operation.objects.filter(outcome=Operation.Outcome.RUNNING).exists(), timeout=30)
    cluster.wait_converged([*names, cluster.web_name], timeout=180)
    assert list((cluster.tmp / "upload-tmp").iterdir()) == []
    return dict(statuses)


def test_it_loses_nothing_under_20_concurrent_uploads_with_8_agents(cluster, token, pkgdir):
    statuses = _run(cluster, token, pkgdir, agents=8, distinct=14)
    print(f"load (8 agents, 20 uploads): {statuses}")


@pytest.mark.soak
def test_it_loses_nothing_under_40_concurrent_uploads_with_8_agents(cluster, token, pkgdir):
    statuses = _run(cluster, token, pkgdir, agents=8, distinct=int(os.environ.get("EXTADMIN_LOAD_DISTINCT", "34")))
    print(f"load (8 agents, 40 uploads): {statuses}")
