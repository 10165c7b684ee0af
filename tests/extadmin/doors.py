"""One package file through each door: the CLI, the JSON API and the browser's upload form.

Each door answers ``(outcome, text)``: 0 when the package was imported (or validated), else the
CLI's exit status or the HTTP status; ``text`` is everything the operator was shown.
"""
from __future__ import annotations

import html
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
    return code, out + err


def api(path: Path, operator: User, *, validate: bool = False) -> tuple[int, str]:
    response = upload(token_client(operator), path, validate=validate)
    return (0 if response.status_code in (200, 201) else response.status_code), response.content.decode()


def form(path: Path, operator: User, *, validate: bool = False) -> tuple[int, str]:
    client = Client()
    client.force_login(operator)
    with path.open("rb") as f:
        response = client.post("/extensions/upload/", {"file": f, "action": "validate" if validate else "import"})
    ok = response.status_code == (200 if validate else 302)
    return (0 if ok else response.status_code), html.unescape(response.content.decode())


DOORS: dict[str, Door] = {"cli": cli, "api": api, "form": form}
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
