"""The console's Webhooks page: endpoints with their recent deliveries; add, edit, delete, resend.

Every view needs a login; the actions need the endpoint's model permissions (403 otherwise) and
a CSRF token. Plain forms and redirects: the page works without JavaScript.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from extadmin.packaging import Refusal
from extadmin.web.http import HtmxHttpRequest, redirect_to
from webhooks.forms import EndpointForm
from webhooks.models import WebhookEndpoint
from webhooks.selectors import endpoints_with_recent
from webhooks.services import delivery_resend, endpoint_create, endpoint_delete, endpoint_update


@login_required
@require_GET
def webhooks_page(request: HtmxHttpRequest) -> HttpResponse:
    return _list_page(request, EndpointForm())


def _list_page(
    request: HtmxHttpRequest, form: EndpointForm, *, refusal: Refusal | None = None,
    created: WebhookEndpoint | None = None, secret: str | None = None,
) -> HttpResponse:
    context = {"endpoints": endpoints_with_recent(), "form": form, "refusal": refusal, "created": created,
               "generated_secret": secret}
    return render(request, "webhooks/webhooks.html", context, status=refusal.status if refusal else 200)


@login_required
@permission_required("webhooks.add_webhookendpoint", raise_exception=True)
@require_POST
def webhook_add(request: HtmxHttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    try:
        endpoint, generated = endpoint_create(
            url=data.get("url", ""), events=data.get("events", []), secret=data.get("secret") or None,
            description=data.get("description", ""), by=request.user.get_username(),
        )
    except Refusal as refusal:
        return _list_page(request, form, refusal=refusal)
    if generated:  # shown once, in this answer only: never in a message (a cookie) or a later page
        return _list_page(request, EndpointForm(), created=endpoint, secret=generated)
    messages.success(request, f"Webhook {endpoint.url} added.")
    return redirect_to(request, reverse("webhooks"))


@login_required
@permission_required("webhooks.change_webhookendpoint", raise_exception=True)
@require_http_methods(["GET", "POST"])
def webhook_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    if request.method == "GET":
        initial = {"url": endpoint.url, "events": endpoint.events, "description": endpoint.description,
                   "active": endpoint.active}
        return _edit_page(request, endpoint, EndpointForm(initial=initial))
    form = EndpointForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    try:
        endpoint_update(
            endpoint_id=pk, url=data.get("url", ""), events=data.get("events", []),
            description=data.get("description", ""), active=bool(data.get("active")), secret=data.get("secret") or None,
        )
    except Refusal as refusal:
        return _edit_page(request, endpoint, form, refusal=refusal)
    messages.success(request, f"Webhook {data.get('url', '')} saved.")
    return redirect_to(request, reverse("webhooks"))


def _edit_page(
    request: HtmxHttpRequest, endpoint: WebhookEndpoint, form: EndpointForm, *, refusal: Refusal | None = None
) -> HttpResponse:
    context = {"endpoint": endpoint, "form": form, "refusal": refusal}
    return render(request, "webhooks/webhook_edit.html", context, status=refusal.status if refusal else 200)


@login_required
@permission_required("webhooks.delete_webhookendpoint", raise_exception=True)
@require_http_methods(["GET", "POST"])
def webhook_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    if request.method == "GET":
        return render(request, "webhooks/webhook_delete.html", {"endpoint": endpoint})
    endpoint_delete(endpoint_id=pk)
    messages.success(request, f"Webhook {endpoint.url} deleted, with its deliveries.")
    return redirect_to(request, reverse("webhooks"))


@login_required
@permission_required("webhooks.change_webhookendpoint", raise_exception=True)
@require_POST
def delivery_resend_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    try:
        delivery = delivery_resend(delivery_id=pk)
    except Refusal as refusal:
        return _list_page(request, EndpointForm(), refusal=refusal)
    messages.success(request, f"{delivery.event} {delivery.event_id} is sent again (delivery {delivery.pk}).")
    return redirect_to(request, reverse("webhooks") + f"#endpoint-{delivery.endpoint_id}")
