"""The pipeline again, against a real server process over HTTP, as a CI job would drive it.

Nothing in-process: the server is ``manage.py runserver`` on the test database, the requests are
plain HTTP with a token, and the second node syncs in its own ``sync_node`` process.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from nodes.models import Node
from tests.packages import build_bundle, build_package
from tests.processes import ManagedProcess, child_env, manage, wait_for
from tests.semantics.support import OPERATOR_PERMS, make_user


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=body, method=method)  # noqa: S310 (http://127.0.0.1)
        request.add_header("Authorization", f"Token {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (our own loopback server)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def upload(self, *paths: Path, validate: bool = False) -> tuple[int, Any]:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{p.name}"\r\n'
            f"Content-Type: application/zip\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
            for p in paths
        ]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        query = "?validate=true" if validate else ""
        return self.call("POST", "/api/extensions/" + query, body, f"multipart/form-data; boundary={boundary}")


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(tmp_path / "web"))
    proc = ManagedProcess("runserver", f"127.0.0.1:{port}", "--noreload", env=env, log=tmp_path / "server.log")
    proc.start()
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            urllib.request.urlopen(base + "/api/extensions/", timeout=2)  # noqa: S310
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False
        return False

    try:
        wait_for(answering, timeout=60, what="the API server")
        yield base
    finally:
        proc.stop()


def test_it_runs_the_pipeline_against_a_real_server(server: str, tmp_path: Path) -> None:
    user: User = make_user("ci", *OPERATOR_PERMS, "nodes.change_clustersettings")
    api = Api(server, Token.objects.create(user=user).key)
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    base, app = build_package(pkgs, "Base", "1.0.0"), build_package(pkgs, "App", "2.2", depends_on="Base:1.0.0")

    assert api.upload(base, validate=True)[0] == 200
    assert api.call("GET", "/api/extensions/") == (200, [])
    assert api.upload(base)[0] == 201
    assert api.upload(app)[0] == 201
    status, body = api.upload(build_package(pkgs, "Base", "0.9.0"))
    assert (status, body["error"]["step"]) == (409, "validate")
    status, body = api.upload(build_package(pkgs, "Orphan", depends_on="Missing:1.0.0"))
    assert (status, body["error"]["reason"]) == (400, "Orphan depends on Missing:1.0.0, which is not installed")
    status, body = api.call("DELETE", "/api/extensions/Base/")
    assert (status, body["error"]["dependents"]) == (409, ["App:2.2"])
    bundle = build_bundle(pkgs, "suite", [
        build_package(pkgs, "Report", depends_on="Chart:1.0.0"), build_package(pkgs, "Chart", depends_on="Base:1.0.0"),
    ])
    status, body = api.upload(bundle)
    assert (status, [p["name"] for p in body["packages"]]) == (201, ["Chart", "Report"])
    status, body = api.upload(build_package(pkgs, "Base", "1.1.0"))
    assert (status, body["kind"]) == (201, "upgrade")

    synced = manage("sync_node", "--name", "node-2", "--storage", str(tmp_path / "node-2"))
    assert synced.returncode == 0, synced.stderr
    Node.objects.update(last_heartbeat=timezone.now())  # both agents alive
    status, cluster = api.call("GET", "/api/cluster/")
    assert status == 200
    assert {e["name"]: e["converged"] for e in cluster["extensions"]} == {
        "App": True, "Base": True, "Chart": True, "Report": True
    }
    status, ops = api.call("GET", "/api/operations/?package=Base")
    assert [(o["kind"], o["via"], o["user"], o["remote_addr"]) for o in ops] == [
        ("upgrade", "api", "ci", "127.0.0.1"), ("import", "api", "ci", "127.0.0.1")
    ]
