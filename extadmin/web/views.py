"""The console's views: adapters from HTTP to the selectors and services, nothing more.

Every view needs a login; upload and delete need the model permissions (403 otherwise). A view
returns the full page, or only its live part when htmx asks (``request.htmx``), so every page
also works without JavaScript.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.files.uploadhandler import StopUpload
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from extadmin.importing import import_policy_from_settings
from extadmin.models import ExtensionPackage
from extadmin.packaging import Refusal, TooLarge
from extadmin.removal import package_remove
from extadmin.selectors import package_dependents
from extadmin.services import package_import_files, package_validate_files, signatures_matched
from extadmin.upload_phases import upload_phase_get, upload_phases_reported
from extadmin.uploads import upload_folder_full
from extadmin.web.forms import UploadForm
from extadmin.web.http import HtmxHttpRequest, browser_actor, redirect_to
from extadmin.web.live import conditional, live_context, request_token
from extadmin.web.pages import package_page
from extadmin.web.upload_summary import upload_imported_summary, upload_refused_summary
from nodes.dashboard_query import cell_match, grid_page, parse_grid_query, searched_nodes
from nodes.presenters import dashboard as present_dashboard
from nodes.selectors import cluster_snapshot, node_rows
from rollouts.forms import FIELDS as ROLLOUT_FIELDS
from rollouts.forms import rollout_fields
from rollouts.services import cluster_policy

SUMMARY_KEY = "extadmin.upload_summary"


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, asked for by browsers and pages outside the console's (Django admin's)."""
    return redirect(static("extadmin/favicon.svg"))


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    """The grid, filtered by the URL (``nodes.dashboard_query``); its live part answers 304 while
    nothing changed (the token is read before the snapshot: a change in between shows next time)."""
    token = request_token(request)
    if request.htmx:
        return conditional(request, token, lambda: render(request, "extadmin/_grid.html", _grid(request, token)))
    return render(request, "extadmin/dashboard.html", _grid(request, token))


def _grid(request: HtmxHttpRequest, token: str) -> dict[str, Any]:
    nodes = node_rows()
    query = parse_grid_query(request.GET, nodes=len(nodes))
    node_ids = searched_nodes(query, nodes)
    match, compact = cell_match(query, node_ids), query.compact(len(nodes))
    # The compact default view counts the cells that prove their package: it need not read them.
    snapshot = cluster_snapshot(nodes=nodes, lean=compact and match is None)
    grid = present_dashboard(snapshot, match=match, compact=compact)
    return {"grid": grid, "view": grid_page(grid, query, node_ids=node_ids), "live": live_context(request, token)}


@login_required
@permission_required("extadmin.add_extensionpackage", raise_exception=True)
@require_http_methods(["GET", "POST"])
def package_upload(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        # After several files (POST-redirect-GET without JavaScript): the summary, shown once.
        return _upload_page(request, UploadForm(), summary=request.session.pop(SUMMARY_KEY, None))
    try:
        form = UploadForm(request.POST, request.FILES)  # reading FILES runs the upload handler
    except StopUpload:  # refused from its Content-Length, before a byte was read
        form = UploadForm()
    if getattr(request, "upload_too_large", False):
        limit = filesizeformat(settings.EXTADMIN_MAX_UPLOAD_BYTES)
        refusal = TooLarge("upload", f"the upload is larger than the limit of {limit}; nothing was kept")
        return _upload_page(request, UploadForm(), refusal=refusal)
    if getattr(request, "upload_folder_full", False):
        return _upload_page(request, UploadForm(), refusal=upload_folder_full())
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    # While it runs, the page may ask where the server is with it (extadmin/upload_phases.py).
    with upload_phases_reported(user=request.user, upload_id=request.POST.get("upload_id", "")):
        return _uploaded(request, form)


def _uploaded(request: HtmxHttpRequest, form: UploadForm) -> HttpResponse:
    """Validate or import the form's files; the answer for one file, for several, or for a refusal."""
    uploads = form.cleaned_data["file"]
    files = [(Path(f.temporary_file_path()), getattr(f, "sha256", None)) for f in uploads]
    names = [f.name or "upload" for f in uploads]  # the client's names: the temp paths are random
    try:
        signed = [(f.name or "", Path(f.temporary_file_path())) for f in form.cleaned_data["signature"]]
        signatures = signatures_matched(names=names, signatures=signed)
        rollout = rollout_fields(request.POST)
        if request.POST.get("action") == "validate":
            validated = package_validate_files(files=files, names=names, signatures=signatures, rollout=rollout)
            return _upload_page(request, UploadForm(), validated=validated)
        document = package_import_files(
            files=files, actor=browser_actor(request), names=names, signatures=signatures, rollout=rollout
        )
    except Refusal as refusal:
        summary = upload_refused_summary(names=names, refusal=refusal) if len(names) > 1 else None
        return _upload_page(request, form, refusal=refusal, summary=summary)
    if len(names) > 1:
        return _uploaded_several(request, upload_imported_summary(names=names, document=document))
    for warning in document["warnings"]:
        messages.warning(request, warning)
    imported = document.get("packages", [document])
    # A bundle is ordered by its dependencies: the last package is the one the others serve.
    return redirect_to(request, reverse("package", args=[imported[-1]["name"]]))


def _uploaded_several(request: HtmxHttpRequest, summary: list[dict[str, Any]]) -> HttpResponse:
    """Every file's outcome instead of the last package's page: in place for htmx, else after a redirect."""
    if request.htmx:
        return _upload_page(request, UploadForm(), summary=summary)
    request.session[SUMMARY_KEY] = summary
    return redirect_to(request, reverse("package-upload"))


@login_required
@permission_required("extadmin.add_extensionpackage", raise_exception=True)
@require_GET
def package_upload_phase(request: HtmxHttpRequest) -> JsonResponse:
    """Where the server is with the upload ``?id=`` (the page's id for it): ``{"phase", "detail"}``,
    both "" when it is not (or no longer) running."""
    row = upload_phase_get(user=request.user, upload_id=request.GET.get("id", ""))
    return JsonResponse({"phase": row.phase if row else "", "detail": row.detail if row else ""})


def upload_refused(request: HtmxHttpRequest, refusal: Refusal) -> HttpResponse:
    """The upload page with a refusal of the request itself (a body Django could not read)."""
    return _upload_page(request, UploadForm(), refusal=refusal)


def _upload_page(
    request: HtmxHttpRequest, form: UploadForm, *, refusal: Refusal | None = None,
    validated: dict[str, Any] | None = None, status: int = 200, summary: list[dict[str, Any]] | None = None,
) -> HttpResponse:
    context = {
        "summary": summary,
        "form": form,
        "refusal": refusal,
        "validated": validated,
        "validated_packages": (validated.get("packages", [validated]) if validated else []),
        "max_upload_bytes": settings.EXTADMIN_MAX_UPLOAD_BYTES,
        "import_policy": import_policy_from_settings(),
        "rollout_form": [form[k] for k in ROLLOUT_FIELDS], "rollout_default": cluster_policy().text(),
    }
    template = "extadmin/_upload_result.html" if request.htmx else "extadmin/upload.html"
    return render(request, template, context, status=refusal.status if refusal else status)


@login_required
@require_GET
def package_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    token = request_token(request)
    page = package_page(name=name, entities=request.GET.get("entities"))
    if page is None:
        raise Http404(f"no extension package named {name!r} was ever imported")
    context = {"page": page, "live": live_context(request, token)}
    if request.htmx:
        return conditional(request, token, lambda: render(request, "extadmin/_package_live.html", context))
    return render(request, "extadmin/package.html", context)


@login_required
@permission_required("extadmin.delete_extensionpackage", raise_exception=True)
@require_http_methods(["GET", "POST"])
def package_delete(request: HtmxHttpRequest, name: str) -> HttpResponse:
    package = get_object_or_404(ExtensionPackage, name=name)
    if request.method == "GET":
        return _delete_page(request, package)
    try:
        package_remove(name=name, actor=browser_actor(request))
    except Refusal as refusal:
        return _delete_page(request, package, refusal=refusal)
    messages.success(request, f"{name} {package.version} was removed; every other node removes it on its next sync.")
    return redirect_to(request, reverse("package", args=[name]))


def _delete_page(
    request: HtmxHttpRequest, package: ExtensionPackage, *, refusal: Refusal | None = None
) -> HttpResponse:
    context = {"package": package, "dependents": package_dependents(name=package.name), "refusal": refusal}
    return render(request, "extadmin/package_delete.html", context, status=refusal.status if refusal else 200)
