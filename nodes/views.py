"""The node page: is it alive, what does it hold, and why is it not up to date."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from extadmin.web.http import HtmxHttpRequest
from nodes.selectors import node_detail


@login_required
@require_GET
def node_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    detail = node_detail(name=name)
    if detail is None:
        raise Http404(f"no node named {name!r}")
    template = "nodes/_node_live.html" if request.htmx else "nodes/node.html"
    return render(request, template, {"detail": detail})
