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
from typing import Any

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from extadmin.logs import mask_url_passwords, redact, secret_values

__all__ = ["CredentialMaskingFilter", "CredentialMaskingReporter", "mask_url_passwords"]


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
        page = str(super().get_traceback_html())
        # The page shows values HTML-escaped: mask them as written there too.
        known = secret_values()
        return mark_safe(redact(page, secrets=[*known, *(html.escape(s) for s in known)]))  # noqa: S308 (Django's page, masked)

    def get_traceback_text(self) -> SafeString:
        return mark_safe(redact(str(super().get_traceback_text())))  # noqa: S308 (Django's text, masked)
