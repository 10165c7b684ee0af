"""The nodes pages: every node; one node (is it alive, what does it hold, why is it not up to date); forgetting one;
asking one to sync or to retry now (``nodes.actions``: POST, then back to the node page)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from extadmin.packaging import Refusal
from extadmin.web.http import HtmxHttpRequest, browser_actor, redirect_to
from extadmin.web.live import conditional, live_context, request_token
from nodes.actions import NodeActed, node_retry, node_sync_now
from nodes.models import Node
from nodes.presenters import node_detail, node_list_items
from nodes.selectors import cluster_snapshot, node_list, node_snapshot
from nodes.services import RE_REGISTERS, node_forget, node_online


@login_required
@require_GET
def node_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    token = request_token(request, node=name)
    snapshot = node_snapshot(name=name)
    if snapshot is None:
        raise Http404(f"no node named {name!r}")
    context = {"detail": node_detail(snapshot), "live": live_context(request, token, node=name)}
    if request.htmx:
        return conditional(request, token, lambda: render(request, "nodes/_node_live.html", context))
    return render(request, "nodes/node.html", context)


@login_required
@require_GET
def nodes_page(request: HtmxHttpRequest) -> HttpResponse:
    items = node_list_items(nodes=node_list(), snapshot=cluster_snapshot())
    return render(request, "nodes/nodes.html", {"items": items})


@login_required
@permission_required("nodes.delete_node", raise_exception=True)
@require_http_methods(["GET", "POST"])
def node_forget_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    node = get_object_or_404(Node, name=name)
    if request.method == "GET":
        return _forget_page(request, node)
    try:
        node_forget(name=name, force=request.POST.get("force") == "on", actor=browser_actor(request))
    except Refusal as refusal:
        return _forget_page(request, node, refusal=refusal)
    messages.success(request, f"Node {name} was forgotten, with its package states and sync runs; {RE_REGISTERS}.")
    return redirect_to(request, reverse("dashboard"))


def _forget_page(request: HtmxHttpRequest, node: Node, *, refusal: Refusal | None = None) -> HttpResponse:
    context = {"node": node, "online": node_online(node), "refusal": refusal, "re_registers": RE_REGISTERS}
    return render(request, "nodes/node_forget.html", context, status=refusal.status if refusal else 200)


@login_required
@permission_required("nodes.change_node", raise_exception=True)
@require_POST
def node_sync_now_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    try:
        acted = node_sync_now(name=name, actor=browser_actor(request))
    except Refusal as refusal:
        return _refused(request, refusal)
    return _acted(request, acted)


@login_required
@permission_required("nodes.change_node", raise_exception=True)
@require_POST
def node_retry_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    package = request.POST.get("package") or None
    try:
        acted = node_retry(name=name, actor=browser_actor(request), package=package)
    except Refusal as refusal:
        return _refused(request, refusal)
    return _acted(request, acted)


def _acted(request: HtmxHttpRequest, acted: NodeActed) -> HttpResponse:
    messages.success(request, acted.message[:1].upper() + acted.message[1:] + ".")
    return redirect_to(request, reverse("node", args=[acted.name]))


def _refused(request: HtmxHttpRequest, refusal: Refusal) -> HttpResponse:
    if refusal.status == 404:
        raise Http404(refusal.reason)
    return render(request, "refused.html", {"refusal": refusal}, status=refusal.status)
