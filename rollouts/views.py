"""The console's rollout pages: the progress partial (live), its buttons, and the settings page.

Each button is a plain form post that redirects back, so everything works without JavaScript;
htmx only refreshes the progress partial every 2 seconds.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from extadmin.packaging import Refusal
from extadmin.web.http import HtmxHttpRequest, browser_actor, redirect_to
from rollouts.forms import RolloutFields, rollout_fields
from rollouts.services import TRANSITIONS, cluster_policy, cluster_policy_set, rollout_control, rollouts_progress

DONE = {"pause": "paused", "resume": "resumed", "abort": "aborted: every node goes back to the previous version"}


@login_required
@require_GET
def progress(request: HtmxHttpRequest) -> HttpResponse:
    name = request.GET.get("package") or None
    # ``live``: the page has a live part, whose updates refresh this partial (rollouts/templatetags)
    context = {"progress": rollouts_progress(name), "package": name or "", "live": request.GET.get("live") == "1"}
    return render(request, "rollouts/_progress.html", context)


@login_required
@permission_required("rollouts.change_rollout", raise_exception=True)
@require_POST
def control(request: HtmxHttpRequest, name: str, action: str) -> HttpResponse:
    if action not in TRANSITIONS:
        raise Http404(f"no rollout action {action!r}")
    try:
        done = rollout_control(name=name, action=action, actor=browser_actor(request))
    except Refusal as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"The rollout of {name} {done['version']} was {DONE[action]}.")
    back = request.headers.get("referer", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("package", args=[name])
    return redirect_to(request, back)


@login_required
@require_http_methods(["GET", "POST"])
def policy(request: HtmxHttpRequest) -> HttpResponse:
    refusal: Refusal | None = None
    if request.method == "POST":
        if not request.user.has_perm("rollouts.change_rolloutpolicy"):
            return render(request, "403.html", status=403)
        try:
            saved = cluster_policy_set(fields=rollout_fields(request.POST), actor=browser_actor(request))
        except Refusal as exc:
            refusal = exc
        else:
            messages.success(request, f"The cluster's rollout policy is now: {saved.text()}.")
            return redirect_to(request, reverse("rollout-policy"))
    current = cluster_policy()
    initial = {"canary": ", ".join(current.canary), "batch": current.batch or "",
               "max_failures": current.max_failures or "", "activation": current.activation}
    form = RolloutFields(request.POST if refusal else None, initial=initial)
    context = {"policy": current, "form": form, "refusal": refusal}
    return render(request, "rollouts/policy.html", context, status=refusal.status if refusal else 200)
