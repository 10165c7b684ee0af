"""``{% sync_banner %}`` (every page: who paused syncing, when and why, and Resume) and
``{% sync_pause_form %}`` (the dashboard, node and package pages: Pause, with a reason)."""
from __future__ import annotations

from typing import Any

from django import template

from nodes.sync_switch import REASON_MAX, may_switch_syncing, sync_switch_row, sync_switch_sentence

register = template.Library()


def _switch_context(context: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    row = _row(request) if user is not None and user.is_authenticated else None
    return {
        "signed_in": bool(user is not None and user.is_authenticated),
        "paused": bool(row and row.sync_paused),
        "sentence": sync_switch_sentence(row),
        "may_switch": may_switch_syncing(user),
        "csrf_token": context.get("csrf_token"),
        "next": request.get_full_path() if request is not None else "/",
        "reason_max": REASON_MAX,
    }


def _row(request: Any) -> Any:
    """One query a page, however many of these tags it shows."""
    if not hasattr(request, "_sync_switch_row"):
        request._sync_switch_row = sync_switch_row()
    return request._sync_switch_row


@register.inclusion_tag("nodes/_sync_banner.html", takes_context=True)
def sync_banner(context: Any) -> dict[str, Any]:
    return _switch_context(context)


@register.inclusion_tag("nodes/_sync_pause_form.html", takes_context=True)
def sync_pause_form(context: Any) -> dict[str, Any]:
    return _switch_context(context)
