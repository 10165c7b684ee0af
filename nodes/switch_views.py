"""The console's sync switch: pause (with a reason) and resume syncing for the whole cluster.

Each is a POST with its CSRF token, needs the same permission as ``/api/cluster/pause/``
(``nodes.sync_switch.may_switch_syncing``), is audited by the service, and answers with a
redirect back to the page it was sent from, carrying a message (POST-redirect-GET): no JavaScript
needed. A refusal reads as in the API and the CLI: ``pause: the reason is … characters long``.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from extadmin.packaging import Refusal
from extadmin.web.http import HtmxHttpRequest, browser_actor, redirect_to
from nodes.cluster import cluster_pause, cluster_resume
from nodes.sync_switch import DENIED, may_switch_syncing, sync_switch_sentence


@login_required
@require_POST
def cluster_pause_view(request: HtmxHttpRequest) -> HttpResponse:
    _allowed(request)
    try:
        row, _ = cluster_pause(actor=browser_actor(request), reason=request.POST.get("reason", ""))
    except Refusal as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"{sync_switch_sentence(row)}. Resume syncing, when the batch is in, lets each "
                                  "node sync it once.")
    return redirect_to(request, _back(request))


@login_required
@require_POST
def cluster_resume_view(request: HtmxHttpRequest) -> HttpResponse:
    _allowed(request)
    cluster_resume(actor=browser_actor(request))
    messages.success(request, "Syncing resumed; every node was asked to sync now.")
    return redirect_to(request, _back(request))


def _allowed(request: HtmxHttpRequest) -> None:
    if not may_switch_syncing(request.user):
        raise PermissionDenied(f"permission: {DENIED}")


def _back(request: HtmxHttpRequest) -> str:
    """The page the form was on (never another site); the dashboard otherwise."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return reverse("dashboard")
