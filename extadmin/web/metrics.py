"""``/metrics``: the cluster in the Prometheus text format, for a scraper rather than a person.

No login session: a scraper has none. With ``EXTADMIN_METRICS_TOKEN`` set, only a request carrying
``Authorization: Bearer <token>`` is answered (compared in constant time; the token never appears
in a log line or an answer). Without a token, only clients on this machine's loopback are: the
figures name nodes and packages, which are nobody else's business.
"""
from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from extadmin.web.http import client_address
from nodes.metrics import cluster_registry

REGISTRY = cluster_registry()


def _plain(status: int, text: str, **headers: str) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    return response


def _is_loopback(address: str | None) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """Who may read the metrics: the token's holder, or without a token a loopback client. None: answer."""
    token = settings.EXTADMIN_METRICS_TOKEN
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _plain(401, "metrics: a bearer token is required", **{"WWW-Authenticate": 'Bearer realm="metrics"'})
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _plain(401, "metrics: the bearer token is not the one configured",
                          **{"WWW-Authenticate": 'Bearer realm="metrics", error="invalid_token"'})
        return None
    if not _is_loopback(client_address(request)):
        return _plain(403, "metrics: answered to loopback clients only; set EXTADMIN_METRICS_TOKEN to scrape "
                           "from another machine")
    return None


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    refused = metrics_refusal(request)
    if refused is not None:
        return refused
    # The classic text format: what every Prometheus server since 2.0 reads.
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
