"""What the cluster's sync switch says: paused or not, by whom, since when and why.

One sentence for every surface (each page's banner, ``cluster_status``, ``/api/cluster/``, the
message after a pause): "Syncing paused by alice at 14:05 (UTC): bulk import". Who may flip the
switch is decided here too, for the console and the API alike.
"""
from __future__ import annotations

from typing import Any

from django.utils import timezone

from extadmin.packaging import Refusal
from nodes.models import ClusterSettings

REASON_MAX = 200
PERMISSION = "nodes.change_clustersettings"
DENIED = f"you may not pause or resume syncing: it needs the permission {PERMISSION}"


def may_switch_syncing(user: Any) -> bool:
    """Staff, or whoever may change the cluster settings."""
    return bool(user and user.is_authenticated and (user.is_staff or user.has_perm(PERMISSION)))


def pause_reason_clean(reason: object) -> str:
    """The operator's reason on one line; a refusal (step ``pause``) when it is not text or too long."""
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise Refusal("pause", "the reason must be text")
    text = " ".join(reason.split())  # newlines and tabs would break the banner and the CLI's line
    if len(text) > REASON_MAX:
        raise Refusal("pause", f"the reason is {len(text)} characters long; at most {REASON_MAX} fit")
    return text


def sync_switch_row() -> ClusterSettings | None:
    return ClusterSettings.objects.select_related("paused_by").filter(pk=1).first()


def sync_switch_sentence(row: ClusterSettings | None) -> str:
    """"Syncing paused by alice at 14:05 (UTC): bulk import", or "" while syncing runs."""
    if row is None or not row.sync_paused:
        return ""
    by = f" by {row.paused_by.get_username()}" if row.paused_by else ""
    when = ""
    if row.paused_at:
        local = timezone.localtime(row.paused_at)
        when = f" at {local:%H:%M} ({local.tzname()})"
        if local.date() != timezone.localdate():
            when = f" on {local:%Y-%m-%d} at {local:%H:%M} ({local.tzname()})"
    why = f": {row.paused_reason}" if row.paused_reason else ""
    return f"Syncing paused{by}{when}{why}"


def sync_switch_document(row: ClusterSettings | None = None) -> dict[str, Any]:
    """The switch as JSON: the ``sync`` of ``cluster_status --json`` and ``/api/cluster/``."""
    row = row if row is not None else sync_switch_row()
    paused = bool(row and row.sync_paused)
    return {
        "paused": paused,
        "paused_at": row.paused_at.isoformat() if paused and row and row.paused_at else None,
        "paused_by": row.paused_by.get_username() if paused and row and row.paused_by else None,
        "paused_reason": row.paused_reason if paused and row else "",
        "text": sync_switch_sentence(row) or "Syncing runs",
    }
