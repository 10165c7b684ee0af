"""The one writer of ``SyncState``: every transition of what a node holds of a package, by name.

A state row says what the node itself proved and reported. Only these functions change one, so
a reader looking for "who can mark a node installed" finds every answer in this file:

- the node's sync pass (``nodes.reconcile``): ``sync_state_mark`` for pending, syncing and installed,
  ``sync_state_fail`` for a failed try (counted toward its retries); ``sync_state_mark_removing`` /
  ``sync_state_fail_removal`` / ``sync_state_forget``
  for a package that left the database; ``sync_states_prune`` at the end of a pass;
- the import on this node (``extadmin.importing``): ``sync_state_record_local_install`` inside
  its transaction, ``sync_state_mark_replacing`` before its swap and ``sync_state_restore_installed``
  after a backout;
- the removal on this node (``extadmin.removal``): ``sync_state_record_local_removal``;
- the lease (``nodes.lease``): ``sync_states_interrupt`` when it takes over from a dead or late sync;
- an operator's "retry now" (``nodes.actions.node_retry``; a manual pass, ``sync_node``): ``sync_states_retry_now``.
"""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.models import Node, SyncState
from nodes.retries import next_retry_at


def sync_state_mark(*, node: Node, name: str, version: str, sha256: str, state: str, **fields: Any) -> None:
    """What a sync pass found or did for one package it wants (``version``/``sha256``: the desired ones).

    Installed clears the retry count; a new desired checksum starts it over (``nodes.retries``).
    """
    fields.setdefault("error", "")
    if state == SyncState.State.INSTALLED:
        fields.setdefault("failures", 0)
        fields.setdefault("next_retry_at", None)
    else:
        SyncState.objects.filter(node=node, package_name=name).exclude(desired_sha256=sha256).exclude(
            failures=0, next_retry_at=None
        ).update(failures=0, next_retry_at=None)
    SyncState.objects.update_or_create(
        node=node, package_name=name,
        defaults={"desired_version": version, "desired_sha256": sha256, "state": state,
                  "changed_at": timezone.now(), **fields},
    )


def sync_state_fail(
    *, node: Node, name: str, version: str, sha256: str, error: str, started_at: datetime, duration_ms: float,
    counted: bool = True,
) -> SyncState:
    """A try of ``sha256`` failed: counted toward its retries, with the next one scheduled (``nodes.retries``).

    ``counted=False`` (it waited for a dependency that failed, or the sync was interrupted): the
    package's own count and next retry stay as they were.
    """
    now = timezone.now()
    defaults: dict[str, Any] = {
        "desired_version": version, "desired_sha256": sha256, "state": SyncState.State.FAILED, "error": error,
        "changed_at": now, "started_at": started_at, "finished_at": now, "duration_ms": duration_ms,
    }
    with transaction.atomic():
        row = SyncState.objects.select_for_update().filter(node=node, package_name=name).first()
        if counted:
            failures = (row.failures if row is not None and row.desired_sha256 == sha256 else 0) + 1
            defaults.update(failures=failures, next_retry_at=next_retry_at(failures=failures, now=now))
        elif row is not None and row.desired_sha256 != sha256:
            defaults.update(failures=0, next_retry_at=None)
        state, _ = SyncState.objects.update_or_create(node=node, package_name=name, defaults=defaults)
    return state


def sync_states_retry_now(*, node: Node, package_name: str | None = None) -> list[str]:
    """An operator's "retry now": the node's failed packages (or only ``package_name``) are due at once,
    their count started over. Returns their names. The failure itself stays shown until the retry."""
    rows = SyncState.objects.filter(node=node, state=SyncState.State.FAILED).exclude(desired_sha256="")
    if package_name is not None:
        rows = rows.filter(package_name=package_name)
    names = sorted(rows.values_list("package_name", flat=True))
    rows.update(failures=0, next_retry_at=None)
    return names


def sync_state_mark_removing(*, node: Node, name: str, started_at: datetime) -> None:
    SyncState.objects.update_or_create(
        node=node, package_name=name,
        defaults={"state": SyncState.State.REMOVING, "desired_version": "", "desired_sha256": "",
                  "error": "", "changed_at": started_at, "started_at": started_at, "finished_at": None,
                  "duration_ms": None, "failures": 0, "next_retry_at": None},
    )


def sync_state_fail_removal(*, node: Node, name: str, reason: str, duration_ms: float) -> None:
    now = timezone.now()
    SyncState.objects.filter(node=node, package_name=name).update(
        state=SyncState.State.FAILED, error=f"removal failed: {reason}", changed_at=now,
        finished_at=now, duration_ms=duration_ms,
    )


def sync_state_forget(*, node: Node, name: str) -> None:
    """The node holds nothing of ``name`` any more, and the database wants nothing of it."""
    SyncState.objects.filter(node=node, package_name=name).delete()


def sync_states_prune(*, node: Node, known: Collection[str], on_disk: Collection[str]) -> None:
    """Rows of packages neither the database nor the node's disk knows: nothing is left to report."""
    SyncState.objects.filter(node=node).exclude(package_name__in=known).exclude(package_name__in=on_disk).delete()


def sync_states_interrupt(*, node_id: int, error: str, now: datetime) -> None:
    """The packages a dead or late sync left half-done say so until the next pass proves the disk."""
    SyncState.objects.filter(node_id=node_id, state=SyncState.State.SYNCING).update(
        state=SyncState.State.FAILED, error=f"interrupted: {error}", changed_at=now, finished_at=now
    )


def sync_state_record_local_install(
    *, node: Node, package: ExtensionPackage, started_at: datetime, duration_ms: float
) -> None:
    """The importing node already holds the package it just unpacked and checksummed: it is installed there.

    Runs inside the import's transaction, so the state appears together with the package or not at all.
    When this node had already proved these very bytes, it keeps when it did: re-importing them
    is not a new convergence.
    """
    now = timezone.now()
    proved = (
        SyncState.objects.filter(node=node, package_name=package.name, installed_sha256=package.sha256)
        .exclude(finished_at=None)
        .values("started_at", "finished_at", "duration_ms")
        .first()
    )
    timing = proved or {"started_at": started_at, "finished_at": now, "duration_ms": duration_ms}
    SyncState.objects.update_or_create(
        node=node,
        package_name=package.name,
        defaults={
            "desired_version": package.version, "desired_sha256": package.sha256,
            "installed_version": package.version, "installed_sha256": package.sha256,
            "state": SyncState.State.INSTALLED, "error": "", "changed_at": now, "failures": 0, "next_retry_at": None,
            **timing,
        },
    )


def sync_state_record_local_removal(*, node: Node, package_name: str) -> None:
    SyncState.objects.filter(node=node, package_name=package_name).delete()


def sync_state_mark_replacing(*, node_name: str, name: str) -> None:
    """Before this node's folder of ``name`` is replaced by files the database does not have yet.

    Committed on its own, so a process killed before the import commits leaves "syncing", never
    "installed" over files that are not the installed version; the node's next sync proves or repairs it.
    """
    SyncState.objects.filter(node__name=node_name, package_name=name, state=SyncState.State.INSTALLED).update(
        state=SyncState.State.SYNCING, changed_at=timezone.now()
    )


def sync_state_restore_installed(*, node_name: str, name: str) -> None:
    """The backout put the previous version back in place: it is installed again, as before."""
    SyncState.objects.filter(node__name=node_name, package_name=name, state=SyncState.State.SYNCING).update(
        state=SyncState.State.INSTALLED, changed_at=timezone.now()
    )
