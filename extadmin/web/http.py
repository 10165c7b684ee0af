"""Request typing and small response helpers shared by the console's views."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from extadmin.operations import Actor


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def browser_actor(request: HttpRequest) -> Actor:
    """Who acts, from where: recorded in the operation log (the audit trail)."""
    return Actor(user=request.user, remote_addr=client_address(request), via="browser")


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; X-Forwarded-For only when a setting says a proxy in front appends it."""
    addr = request.META.get("REMOTE_ADDR") or None
    if getattr(settings, "EXTADMIN_TRUST_X_FORWARDED_FOR", False):
        addr = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip() or addr
    try:
        return str(ipaddress.ip_address(addr)) if addr else None
    except ValueError:
        return None  # a unix socket or a garbled header: record no address rather than junk


def redirect_to(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """A redirect that works for a plain form post and for an htmx request (which would otherwise
    follow it and swap the whole next page into the form's target)."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)
