"""The package page's version actions: rollback and quarantine, as plain form posts (no JavaScript needed).

Success redirects to the package page with a message; a refusal shows the package page again with
the refusal (step and reason, the same words as the CLI and the API) above its version list, with
the refusal's status.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from extadmin.packaging import Refusal
from extadmin.quarantine import package_quarantine
from extadmin.rollback import package_rollback
from extadmin.web.http import HtmxHttpRequest, browser_actor, redirect_to
from extadmin.web.pages import package_page


@login_required
@permission_required("extadmin.add_extensionpackage", raise_exception=True)
@require_POST
def package_rollback_view(request: HtmxHttpRequest, name: str) -> HttpResponse:
    try:
        doc = package_rollback(name=name, to=request.POST.get("to") or None, actor=browser_actor(request))
    except Refusal as refusal:
        return _refused(request, name, refusal)
    messages.success(
        request, f"{name} was rolled back from {doc['previous_version']} to {doc['version']}; "
        "every other node installs it on its next sync.",
    )
    return redirect_to(request, reverse("package", args=[name]))


@login_required
@permission_required("extadmin.add_extensionpackage", raise_exception=True)
@require_POST
def package_quarantine_view(request: HtmxHttpRequest, name: str, version: str) -> HttpResponse:
    try:
        doc = package_quarantine(
            name=name, version=version, reason=request.POST.get("reason", ""),
            rollback=bool(request.POST.get("rollback")), actor=browser_actor(request),
        )
    except Refusal as refusal:
        return _refused(request, name, refusal)
    said = f"{name} {version} is quarantined: no node installs it again."
    if doc["rolled_back_to"]:
        said += f" {name} was rolled back to {doc['rolled_back_to']}."
    messages.success(request, said)
    return redirect_to(request, reverse("package", args=[name]))


def _refused(request: HtmxHttpRequest, name: str, refusal: Refusal) -> HttpResponse:
    page = package_page(name=name)
    if page is None:
        return render(request, "refused.html", {"refusal": refusal}, status=refusal.status)
    context = {"page": page, "version_refusal": refusal}
    return render(request, "extadmin/package.html", context, status=refusal.status)
