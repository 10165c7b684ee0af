"""Error reports without credentials: every password, token and secret value is masked.

Django's own filter hides settings whose *name* looks secret (``SECRET_KEY``, ``DATABASES``'
``PASSWORD``) but shows ``CELERY_BROKER_URL = redis://:password@host``, the query string
(``?token=…``), and the local variables of the frames as they are — among them the connection
parameters (``{"password": …}``) of a database that could not be reached. This filter and reporter
mask all of it with ``extadmin.logs.redact`` (the same rule as the log lines), so even the debug
page never shows a credential; the page as a whole is masked once more before it is sent.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from extadmin.logs import MIN_SECRET_LENGTH, mask_url_passwords, redact, secret_values

__all__ = ["CredentialMaskingFilter", "CredentialMaskingReporter", "DebugPageMasking", "mask_url_passwords"]


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return redact(cleansed, substitute=self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        # Named like a secret (``password``), or a dict holding one (``conn_params``): as a setting would be.
        return [
            (name, self.cleanse_setting(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class CredentialMaskingReporter(ExceptionReporter):
    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (k, self.filter.cleanse_setting(k, v)) for k, v in data["request_GET_items"]
            ]
        if "request_insecure_uri" in data:
            data["request_insecure_uri"] = redact(str(data["request_insecure_uri"]))
        return data

    def get_traceback_html(self) -> SafeString:
        page = mask_page(str(super().get_traceback_html()), self.request)
        return mark_safe(page)  # noqa: S308 (Django's own page, masked)

    def get_traceback_text(self) -> SafeString:
        return mark_safe(mask_page(str(super().get_traceback_text()), self.request))  # noqa: S308 (as above)


_CREDENTIAL_FIELD = re.compile(r"pass|token|secret|key|auth", re.IGNORECASE)


def request_secrets(request: HttpRequest | None) -> list[str]:
    """What the client sent that is a credential: its Authorization header (an API token reaches the
    frames of the query that looks it up), its cookies, and fields named like a password or token."""
    if request is None:
        return []
    found = [request.META.get("HTTP_AUTHORIZATION", "")]
    found += request.META.get("HTTP_AUTHORIZATION", "").split()[1:]
    found += list(request.COOKIES.values())
    try:  # Django's page reads the form too; a body it cannot read has no fields to mask
        forms = [request.GET, request.POST if request.method == "POST" else {}]
    except Exception:
        forms = [request.GET]
    for params in forms:
        found += [v for k, v in params.items() if _CREDENTIAL_FIELD.search(k)]
    return [v for v in found if len(v) >= MIN_SECRET_LENGTH]


def mask_page(page: str, request: HttpRequest | None) -> str:
    # The page shows values HTML-escaped and in reprs: mask them as written there too.
    known = [*secret_values(), *request_secrets(request)]
    return redact(page, secrets=sorted({*known, *(html.escape(s) for s in known)}, key=len, reverse=True))


class DebugPageMasking:
    """With DEBUG on, Django's 404 page (``technical_404_response``) shows the request's address as it
    came, query string included, and no reporter class is asked first: every error page with DEBUG on
    is masked here, outermost, after Django made it. Without DEBUG the pages are the console's own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not settings.DEBUG or response.status_code < 400 or not isinstance(response, HttpResponse):
            return response
        if not response.get("Content-Type", "").startswith(("text/html", "text/plain")):
            return response
        page = response.content.decode(response.charset, errors="replace")
        response.content = mask_page(page, request).encode(response.charset)
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
