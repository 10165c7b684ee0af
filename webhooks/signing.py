"""How a delivery is signed and sent: HMAC-SHA256 of the exact body bytes, one bounded HTTP POST.

Pure: no database, no Django. ``docs/webhooks.md`` shows a receiver verifying the signature.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Extadmin-Signature"
USER_AGENT = "extadmin-webhooks/1"
# A receiver's answer is only its status: a few KiB of its body are read (and dropped) so that the
# connection closes cleanly, never a body it streams for ever.
MAX_ANSWER_BYTES = 64 * 1024


def signature(*, secret: str, body: bytes) -> str:
    """``sha256=<hex>``: what ``X-Extadmin-Signature`` carries."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(*, secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret=secret, body=body), header)


@dataclass(frozen=True)
class Answer:
    status: int | None  # the HTTP status, None when there was none
    error: str  # "" when delivered

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url``; the whole attempt (connect, send, answer) ends within ``timeout``.

    A socket timeout bounds each read or write only, so a receiver dribbling a byte a second could
    hold an attempt for ever: a watchdog shuts the socket down once the attempt's time is up.
    Redirects are not followed (a moved endpoint answers 3xx: the operator updates its address).
    """
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    cut = threading.Event()
    watchdog = threading.Timer(timeout, _cut, args=(conn, cut))
    watchdog.daemon = True
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        watchdog.start()
        conn.request("POST", path, body=body, headers={"User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
        ok = 200 <= response.status < 300
        return Answer(response.status, "" if ok else f"HTTP {response.status} {response.reason}".strip())
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set() or isinstance(exc, TimeoutError):
            return Answer(None, f"no answer within {timeout:g} s")
        return Answer(None, _describe(exc))
    finally:
        watchdog.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection, cut: threading.Event) -> None:
    cut.set()  # before the shutdown: the attempt's thread, woken by it, must see why
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
