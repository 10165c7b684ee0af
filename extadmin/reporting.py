"""Error reports without credentials: the passwords in URL-shaped values are masked.

Django's own filter hides settings whose *name* looks secret (``SECRET_KEY``, ``DATABASES``'
``PASSWORD``) but shows ``CELERY_BROKER_URL = redis://:password@host`` and, in the request's
environment, ``DATABASE_URL`` as they are. This filter masks the password part of every URL it
sees (settings, request META, frame variables), so even the debug page never shows one.
"""
from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

# scheme://user:PASSWORD@host — the password runs to the last "@" before the next URL of a
# failover list (";") or whitespace, as urllib splits it.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s;]*:)[^\s;]*@", re.IGNORECASE)


def mask_url_passwords(text: str, substitute: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{substitute}@", text)


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_url_passwords(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        return [
            (name, mask_url_passwords(value, self.cleansed_substitute) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
