"""Error pages for addresses that match no URL: the API's own JSON shape under /api/, a console page elsewhere.

An API client asking for ``/api/webhooks/abc/`` (a path no URL pattern matches) must get the same
``{"error": {"step", "reason"}}`` as any other API refusal, never the console's HTML page.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from extadmin.packaging.errors import Unknown, shown
from extadmin.web.middleware import API_PREFIX, refused


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        return refused(request, Unknown("lookup", f"no API endpoint at {shown(request.path_info)}"))
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]
