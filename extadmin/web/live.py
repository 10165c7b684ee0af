"""Live pages: a server-sent event stream that says when something changed, and conditional GETs
that cost nearly nothing when nothing did.

A live part of a page (``data-live-url``; static/extadmin/live.js) opens ``/live/events/``. The
stream says ``hello`` at once (a proxy that buffers never lets it through: the page then polls),
then ``change`` with the new token whenever ``nodes.changes.change_token`` changes. The page then
GETs its live part with ``If-None-Match`` and morphs the answer in (idiomorph): only the cells,
rows and counters that differ are touched, so focus, selection, scroll and open menus stay.

A stream ends when its server is asked to stop (``nodes.changes.close_listeners``, called by
extadmin.gunicorn_worker), so an open page never holds the stop. It is bounded
(``EXTADMIN_LIVE_STREAM_SECONDS``; the browser reconnects with the last token as ``Last-Event-ID``,
and a change in between is sent at once) and at most ``EXTADMIN_LIVE_STREAMS`` run at once in a
process (each holds one of gunicorn's threads): past that a stream answers ``busy`` and the page
polls the ETag every 2 s instead.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from nodes.changes import ChangeListener, change_token

# A burst of notifications (one sync pass commits several times) becomes one update.
SETTLE_SECONDS = 0.03
KEEPALIVE_SECONDS = 20.0
RETRY_MS = 1000
TOKEN_RE = re.compile(r"[0-9a-f]{20}")
_lock = threading.Lock()
_open = [0]


def live_etag(request: HttpRequest, token: str) -> str:
    """The ETag of a live part: the data's token, the exact URL, and who looks (permissions show)."""
    user = request.user
    who = f"{user.pk}:{int(user.is_superuser)}" if user.is_authenticated else "-"
    raw = f"{token}|{request.get_full_path()}|{who}"
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:24] + '"'


def request_token(request: HttpRequest, *, node: str | None = None) -> str:
    """The change token a live part is rendered at: for the GET that an event caused, the token the
    event announced (``X-Live-Token``, sent by live.js: the data is at least that new, and a later
    change is announced again), else read now. A client that sends a wrong one only mislabels its
    own copy until the next change."""
    said = request.headers.get("X-Live-Token", "")
    if request.headers.get("HX-Request") and TOKEN_RE.fullmatch(said):
        return said
    return change_token(node=node)


def live_context(request: HttpRequest, token: str, *, node: str | None = None) -> dict[str, str]:
    """What a live part carries for static/extadmin/live.js: its URL (this one: the live part comes
    from the same URL asked by htmx), the token and ETag it was rendered at, and its event stream."""
    events = reverse("live-events") + (f"?{urlencode({'node': node})}" if node else "")
    return {"url": request.get_full_path(), "token": token, "etag": live_etag(request, token), "events": events}


def conditional(request: HttpRequest, token: str, render: Callable[[], HttpResponse]) -> HttpResponse:
    """A live part: 304 when the client's ``If-None-Match`` is its current ETag, else ``render()``."""
    etag = live_etag(request, token)
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = render()
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "HX-Request, Cookie"
    return response


def _take_slot() -> bool:
    with _lock:
        if _open[0] >= settings.EXTADMIN_LIVE_STREAMS:
            return False
        _open[0] += 1
        return True


def _give_slot() -> None:
    with _lock:
        _open[0] -= 1


def _event(name: str, data: str, *, token: str = "") -> str:
    head = f"id: {token}\n" if token else ""
    return f"{head}event: {name}\ndata: {data}\n\n"


def _stream(since: str, node: str | None) -> Iterator[str]:
    if not _take_slot():
        yield f"retry: {RETRY_MS * 30}\n" + _event("busy", "too many live pages are open on this console process")
        return
    try:
        yield from _changes(since, node)
    finally:
        _give_slot()


def _changes(since: str, node: str | None) -> Iterator[str]:
    with ChangeListener() as feed:
        # Read before the first word: what changes while the client reads it is news.
        last = feed.token(node=node)
        yield f"retry: {RETRY_MS}\n" + _event("hello", "push" if feed.pushed else "polled", token=last)
        if since and since != last:
            yield _event("change", last, token=last)
        deadline = time.monotonic() + settings.EXTADMIN_LIVE_STREAM_SECONDS
        spoke = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            # The feed wakes this stream for a write or a liveness change (it rechecks that itself);
            # otherwise it sleeps until its next comment. A node page also shows the node's heartbeat,
            # which announces nothing: it compares its token every recheck.
            nap = min(left, max(spoke + KEEPALIVE_SECONDS - time.monotonic(), 0.0))
            if node is not None:
                nap = min(nap, settings.EXTADMIN_LIVE_RECHECK_SECONDS)
            if feed.wait(nap):
                feed.drain(SETTLE_SECONDS)
                changed = True
            elif feed.closing:  # the server is stopping: the page reconnects, or polls, elsewhere
                return
            else:
                changed = not feed.pushed or node is not None  # SQLite (no announcements), or a node page
            token = feed.token(node=node) if changed else last
            if token != last:
                last, spoke = token, time.monotonic()
                yield _event("change", token, token=token)
            elif time.monotonic() - spoke >= KEEPALIVE_SECONDS:
                spoke = time.monotonic()
                yield ": still here\n\n"  # a comment: finds a closed connection, keeps proxies open


@login_required
@require_GET
def live_events(request: HttpRequest) -> StreamingHttpResponse:
    """``text/event-stream`` of changes; ``?since=TOKEN`` (or ``Last-Event-ID``) is what the page has,
    ``?node=NAME`` adds that node's heartbeat and sync runs (the node page)."""
    since = request.headers.get("Last-Event-ID") or request.GET.get("since", "")
    node = request.GET.get("node") or None
    response = StreamingHttpResponse(_stream(since[:64], node), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer this answer
    return response
