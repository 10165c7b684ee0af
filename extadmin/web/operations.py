"""The operations page: the audit trail (every import, removal, pause, resume, forgotten node), filtered.

The filters are GET parameters (``?package=&node=&user=&kind=&outcome=&page=``), so a view of the
trail is a URL to share. Any signed-in user may read it, as ``GET /api/operations/``.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from extadmin.models import Operation
from extadmin.selectors import (
    OPERATION_FILTERS,
    OperationFilters,
    operation_choices,
    operation_filters_refusal,
    operation_search,
)
from extadmin.web.http import HtmxHttpRequest

PAGE_SIZE = 50


@login_required
@require_GET
def operations_page(request: HtmxHttpRequest) -> HttpResponse:
    filters = OperationFilters(**{f: request.GET.get(f, "").strip() for f in OPERATION_FILTERS})
    refusal = operation_filters_refusal(filters)
    ops = operation_search(filters) if refusal is None else Operation.objects.none()
    page = Paginator(ops, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page, "filters": filters, "refusal": refusal, "choices": operation_choices(),
        "kinds": Operation.Kind.choices, "outcomes": Operation.Outcome.choices,
        "filtered": any(vars(filters).values()),
    }
    return render(request, "extadmin/operations.html", context, status=refusal.status if refusal else 200)
