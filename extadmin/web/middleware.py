"""Refuse, at the door, requests that no view could answer: 400 with the step and the reason.

PostgreSQL refuses a NUL in text, so a NUL in a name looked up by any view (``/nodes/a%00b/``,
``?package=%00``, a login's username, a session cookie) ended in a 500; and no name extadmin keeps
can hold a control character or be longer than 255 characters anyway. One check before any view,
session or query sees the request covers every door: the console, the API (in its JSON error
shape) and the admin. A body Django cannot parse (too many files or fields, too big, malformed
multipart) is refused the same way, before the CSRF check reads it and answers with a bare page.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render

from extadmin.packaging import Refusal
from extadmin.packaging.errors import shown
from extadmin.uploads import UNREADABLE_BODY, body_refusal
from extadmin.web.views import upload_refused

# The API answers every error as JSON; the API's own views parse their bodies after authenticating
# (and turn a parse error into the same JSON), so the guard leaves API bodies to them.
API_PREFIX = "/api/"
# No package or node name is longer than 128; a file-system name component stops at 255.
MAX_NAME = 255
MAX_QUERY_VALUE = 2048
# Tabs and line ends are ordinary text in a form field; every other control character is not.
FIELD_WHITESPACE = frozenset("\t\n\r")


class RequestGuard:
    """Placed before the session, CSRF and authentication middleware (see ``settings.MIDDLEWARE``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = address_refusal(request)
        if refusal is not None:
            return refused(request, refusal)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        if request.method != "POST" or request.path_info.startswith(API_PREFIX):
            return None
        try:
            fields = request.POST  # a multipart body runs the upload handlers here, as the CSRF check would next
        except UNREADABLE_BODY as exc:
            return refused(request, body_refusal(exc))
        refusal = _fields_refusal("the field", fields, allowed=FIELD_WHITESPACE)
        return refused(request, refusal) if refusal is not None else None


def address_refusal(request: HttpRequest) -> Refusal | None:
    """What is wrong with the request's path, query, cookies or credentials; None when nothing is."""
    path = request.path_info
    if bad := _control_character(path):
        return Refusal("request", f"the address contains a control character ({bad}); nothing was read")
    if any(len(segment) > MAX_NAME for segment in path.split("/")):
        return Refusal("request", f"a name in the address is longer than {MAX_NAME} characters; nothing was read")
    try:
        query = request.GET
    except TooManyFieldsSent:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Refusal("request", f"more than {limit} fields in the query; nothing was read")
    refusal = _fields_refusal("the query field", query)
    if refusal is not None:
        return refusal
    if any(len(value) > MAX_QUERY_VALUE for value in _values(query)):
        return Refusal("request", f"a query value is longer than {MAX_QUERY_VALUE} characters; nothing was read")
    # The session cookie is looked up in the database; other cookies are checked by their readers
    # (the CSRF token's format) or not read at all (cookies of other sites on the same host).
    if bad := _control_character(request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")):
        return Refusal("request", f"the session cookie contains a control character ({bad}); nothing was read")
    if bad := _control_character(request.META.get("HTTP_AUTHORIZATION", "")):
        return Refusal("request", f"the Authorization header contains a control character ({bad})")
    return None


def _fields_refusal(what: str, fields: QueryDict, *, allowed: frozenset[str] = frozenset()) -> Refusal | None:
    for name, values in fields.lists():
        for text in (name, *values):
            if bad := _control_character(text, allowed=allowed):
                reason = f"{what} '{shown(name)}' contains a control character ({bad}); nothing was read"
                return Refusal("request", reason)
    return None


def _values(fields: QueryDict) -> Iterable[str]:
    for _, values in fields.lists():
        yield from values


def _control_character(text: str, *, allowed: frozenset[str] = frozenset()) -> str:
    """The first control character in ``text``, escaped for the reason; "" when there is none."""
    for ch in text:
        if ch not in allowed and unicodedata.category(ch) == "Cc":
            return ch.encode("unicode_escape").decode("ascii")
    return ""


def refused(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    """The refusal in the door's own shape: JSON for the API, a console page for everything else.

    The upload page shows it in its own form, so an operator sees why the files were not taken.
    """
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"error": refusal.as_dict()}, status=refusal.status)
    match = getattr(request, "resolver_match", None)
    user = getattr(request, "user", None)  # none yet when the address itself was refused
    if match and match.url_name == "package-upload" and user and user.has_perm("extadmin.add_extensionpackage"):
        return upload_refused(request, refusal)  # type: ignore[arg-type]  # HtmxMiddleware ran before
    return render(request, "refused.html", {"refusal": refusal}, status=refusal.status)
