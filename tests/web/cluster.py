"""Seed a cluster's rows directly (no files): nodes × packages with a realistic mix of states."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.models import Node, SyncState


def seed_cluster(nodes: int, packages: int, *, now: datetime | None = None, offline: int = 0) -> None:
    """``nodes`` nodes (the last ``offline`` of them offline) × ``packages`` packages: mostly
    installed, some pending (no row), failed, syncing or holding an older version."""
    now = now or timezone.now()
    created = Node.objects.bulk_create(
        [
            Node(
                name=f"n{i:03d}",
                storage_path=f"/srv/extadmin/n{i:03d}",
                host=f"host-{i:03d}",
                last_heartbeat=now - timedelta(hours=1) if i >= nodes - offline else now,
            )
            for i in range(nodes)
        ]
    )
    pkgs = ExtensionPackage.objects.bulk_create(
        [
            ExtensionPackage(
                name=f"Pkg{j:03d}",
                version=f"1.{j % 7}.0",
                sha256=f"{j + 1:064x}",
                size=1000 + j,
                imported_at=now - timedelta(minutes=5 + j % 30),
                imported_on_node="n000",
            )
            for j in range(packages)
        ]
    )
    states = []
    for j, p in enumerate(pkgs):
        for i, n in enumerate(created):
            mix = (i + 3 * j) % 23
            if mix == 0:
                continue  # no row yet: pending
            state, sha, version, error = SyncState.State.INSTALLED, p.sha256, p.version, ""
            if mix == 1:
                state, sha, version, error = SyncState.State.FAILED, "", "", "checksum mismatch after download"
            elif mix == 2:
                state = SyncState.State.SYNCING
                sha = version = ""
            elif mix == 3:
                sha, version = "f" * 64, "1.0.0"  # an older version still on disk
            started = p.imported_at + timedelta(seconds=1 + (i % 9))
            states.append(
                SyncState(
                    node=n,
                    package_name=p.name,
                    desired_version=p.version,
                    desired_sha256=p.sha256,
                    installed_version=version,
                    installed_sha256=sha,
                    state=state,
                    error=error,
                    changed_at=now,
                    started_at=started,
                    finished_at=None if state == SyncState.State.SYNCING else started + timedelta(seconds=2 + i % 5),
                    duration_ms=None if state == SyncState.State.SYNCING else (2 + i % 5) * 1000.0,
                )
            )
    SyncState.objects.bulk_create(states, batch_size=2000)


def converge_packages(names: list[str]) -> None:
    """Every node proved these packages: each of their rows installed with the package's checksum,
    and a row for every node that had none."""
    now = timezone.now()
    for p in ExtensionPackage.objects.filter(name__in=names):
        SyncState.objects.filter(package_name=p.name).update(
            state=SyncState.State.INSTALLED, installed_sha256=p.sha256, installed_version=p.version,
            error="", changed_at=now,
        )
        missing = Node.objects.exclude(states__package_name=p.name)
        SyncState.objects.bulk_create([
            SyncState(node=n, package_name=p.name, desired_version=p.version, desired_sha256=p.sha256,
                      installed_version=p.version, installed_sha256=p.sha256, state=SyncState.State.INSTALLED,
                      changed_at=now)
            for n in missing
        ])
