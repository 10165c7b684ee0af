"""One package file through each door: the CLI, the JSON API and the browser's upload form.

Each door answers ``(outcome, text)``: 0 when the package was imported (or validated), else the
CLI's exit status or the HTTP status. On a refusal ``text`` is the refusal as the operator reads
it — the CLI's ``error:`` line, the API's ``file: step: reason``, the form's reason paragraph — so
a test can ask that the three say the same; otherwise it is everything the door printed.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client

from tests.disk import tree
from tests.extadmin.conftest import row_counts
from tests.processes import run_command
from tests.semantics.support import token_client, upload

Door = Callable[..., tuple[int, str]]


def cli(path: Path, operator: User, *, validate: bool = False) -> tuple[int, str]:
    code, out, err = run_command("import_extension", str(path), *(["--validate-only"] if validate else []))
    if code == 0:
        return 0, out
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    return code, line.removeprefix("error: ")


def api(path: Path, operator: User, *, validate: bool = False) -> tuple[int, str]:
    response = upload(token_client(operator), path, validate=validate)
    if response.status_code in (200, 201):
        return 0, response.content.decode()
    error = response.json()["error"]
    return response.status_code, ": ".join(p for p in (error.get("file"), error["step"], error["reason"]) if p)


def form(path: Path, operator: User, *, validate: bool = False) -> tuple[int, str]:
    client = Client()
    client.force_login(operator)
    with path.open("rb") as f:
        response = client.post("/extensions/upload/", {"file": f, "action": "validate" if validate else "import"})
    page = response.content.decode()
    if response.status_code == (200 if validate else 302):
        return 0, html.unescape(page)
    reasons = re.findall(r'<p class="reason">(.*?)</p>', page, re.S)
    assert len(reasons) == 1, page[-2000:]
    return response.status_code, html.unescape(re.sub(r"<[^>]+>", "", reasons[0]))


DOORS: dict[str, Door] = {"cli": cli, "api": api, "form": form}
# What a door writes for its own sake (a token, a login, its session), never for the import's.
LOGIN_TABLES = frozenset({"auth_user", "authtoken_token", "django_session"})
REFUSED = {"cli": 1, "api": 400, "form": 400}


class NothingWritten:
    """Taken before a refused door call: no row in extadmin's or nodes' tables, the node's storage
    unchanged byte for byte, no temporary file or folder left (the test's private temp folder)."""

    def __init__(self, storage_root: Path, tempdir: Path) -> None:
        self.storage_root, self.tempdir = storage_root, tempdir
        self.rows, self.tree = row_counts(), tree(storage_root)

    def check(self) -> None:
        assert row_counts() == self.rows, "a refused package wrote rows"
        assert tree(self.storage_root) == self.tree, "a refused package changed the node's storage"
        assert list(self.tempdir.iterdir()) == [], "a refused package left temporary files"
