"""``{% rollout_progress %}`` (every rollout not completed) and ``{% rollout_progress name %}`` (one
package's latest): the progress partial with its controls, included with one line anywhere.

``live=True`` on a page with a live part (static/extadmin/live.js): while no rollout runs, the
partial refreshes when that part updates (an import that starts a rollout changes it), not every
minute besides; elsewhere it also looks every 60 s."""
from __future__ import annotations

from typing import Any

from django import template

from rollouts.services import rollouts_progress

register = template.Library()


@register.inclusion_tag("rollouts/_progress.html", takes_context=True)
def rollout_progress(context: template.Context, name: str | None = None, *, live: bool = False) -> dict[str, Any]:
    return {"progress": rollouts_progress(name), "package": name or "", "live": live, "perms": context.get("perms"),
            "csrf_token": context.get("csrf_token"), "request": context.get("request")}
