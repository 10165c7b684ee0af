"""The nodes pages: every node, and one node: is it alive, what does it hold, and why is it not up to date."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from extadmin.web.http import HtmxHttpRequest
from nodes.presenters import node_detail, node_list_items
from nodes.selectors import cluster_snapshot, node_list, node_snapshot


@login_required
@require_GET
def node_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    snapshot = node_snapshot(name=name)
    if snapshot is None:
        raise Http404(f"no node named {name!r}")
    template = "nodes/_node_live.html" if request.htmx else "nodes/node.html"
    return render(request, template, {"detail": node_detail(snapshot)})


@login_required
@require_GET
def nodes_page(request: HtmxHttpRequest) -> HttpResponse:
    items = node_list_items(nodes=node_list(), snapshot=cluster_snapshot())
    return render(request, "nodes/nodes.html", {"items": items})
