"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 (a free port) in a thread.

It records every request (headers, exact body, when it arrived), and answers as the test says:
200 by default, a status for the next few requests (``fail``), or not at all until released (``hang``).
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.processes import wait_for


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event(self) -> str:
        return str(self.document["event"])


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []  # answered, in order, before 200s
        self.released = threading.Event()
        self.released.set()
        self.hanging = 0  # requests being held right now
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def fail(self, *statuses: int) -> None:
        self.statuses = list(statuses)

    def hang(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def of(self, event: str) -> list[Received]:
        return [r for r in list(self.requests) if r.event == event]

    def wait(self, event: str, *, count: int = 1, timeout: float = 30) -> list[Received]:
        wait_for(lambda: len(self.of(event)) >= count, timeout=timeout, what=f"{count} × {event} at the receiver")
        return self.of(event)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, time.time()))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    held = not receiver.released.is_set()
                    receiver.hanging += held
                released = receiver.released.wait(timeout=120)
                with receiver.lock:
                    receiver.hanging -= held
                if not released:
                    return
                with contextlib.suppress(OSError):  # the sender gave up on it meanwhile
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
