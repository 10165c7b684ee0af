"""Cluster-wide switches: pausing and resuming every node's syncing for a bulk import.

Instead of shrinking the cluster to one node for many or large imports (the vendor's advice), the
operator pauses syncing, imports the batch, and resumes: each node then syncs the whole batch once.
The agents read ``ClusterSettings.sync_paused`` before every sync; these services only flip it,
record who did it (the audit trail), and on resume nudge every node so none waits for its
periodic pass.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from extadmin.models import Operation
from extadmin.operations import Actor, OperationRecorder
from nodes.models import ClusterSettings
from nodes.services import nodes_nudge_on_commit
from nodes.sync_switch import pause_reason_clean
from webhooks import events as webhook_events

SETTINGS_ID = 1


def cluster_pause(*, actor: Actor, reason: str = "") -> tuple[ClusterSettings, Operation]:
    """Pause syncing on every node; one transaction, one audit row (with the operator's reason).

    Pausing a paused cluster keeps who paused it first, when (the time the nodes fell behind) and
    why, but is still recorded with its own reason: the operator did ask. A reason that is not
    text or too long is refused (step ``pause``) before anything is written.
    """
    reason = pause_reason_clean(reason)
    with transaction.atomic():
        row = _locked_row()
        if not row.sync_paused:
            row.sync_paused = True
            row.paused_at = timezone.now()
            row.paused_by = actor.user if getattr(actor.user, "pk", None) else None
            row.paused_reason = reason
            row.save()
        operation = _record(Operation.Kind.PAUSE, actor, reason=reason)
        webhook_events.sync_switched(paused=True, by=actor.username, reason=reason)
    return row, operation


def cluster_resume(*, actor: Actor) -> tuple[ClusterSettings, Operation]:
    """Resume syncing; after commit every node is nudged so each syncs the batch once, now."""
    with transaction.atomic():
        row = _locked_row()
        row.sync_paused = False
        row.paused_at = None
        row.paused_by = None
        row.paused_reason = ""
        row.save()
        operation = _record(Operation.Kind.RESUME, actor)
        webhook_events.sync_switched(paused=False, by=actor.username)
        # No node is excluded: while paused, even the importing node's peers skipped their syncs.
        nodes_nudge_on_commit()
    return row, operation


def _locked_row() -> ClusterSettings:
    # get_or_create then lock: two operators flipping the switch at once serialise on the row.
    ClusterSettings.objects.get_or_create(pk=SETTINGS_ID)
    return ClusterSettings.objects.select_for_update().get(pk=SETTINGS_ID)


def _record(kind: str, actor: Actor, *, reason: str = "") -> Operation:
    return OperationRecorder.start(
        kind=kind, package_name="", actor=actor, node=settings.EXTADMIN_NODE, reason=reason
    ).finish()
