"""The three doors of an import and a removal — CLI (a real child process), API and browser form.

``import_`` and ``remove`` return ``(status, said)``: the exit code or HTTP status, and the refusal as
``step: reason`` (what the CLI prints after ``error:``), so one test asserts the same words through
every door. The operator, its token and its session are made up front: a door that writes to the
database before it removes (a new user, a session) would queue behind SQLite's write lock and
start its removal late, hiding the race under test.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from tests.processes import manage
from tests.semantics.support import OPERATOR_PERMS, make_user, token_client

DOORS = ["cli", "api", "form"]
REMOVED = {"cli": 0, "api": 200, "form": 302}


class Doors:
    def __init__(self, *, env: dict[str, str]) -> None:
        """``env``: the CLI child's environment (its node, storage and settings)."""
        self.env = env
        user = make_user("door-operator", *OPERATOR_PERMS)
        self.api = token_client(user)
        self.browser = Client()
        self.browser.force_login(user)

    def import_(self, door: str, path: Path) -> tuple[int, str]:
        if door == "cli":
            r = manage("import_extension", str(path), env=self.env)
            return r.returncode, r.stderr.strip().removeprefix("error: ")
        if door == "api":
            with path.open("rb") as f:
                response = self.api.post("/api/extensions/", {"file": [f]}, format="multipart")
            return response.status_code, _error_of(response)
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")
        response = self.browser.post(reverse("package-upload"), {"file": [upload], "action": "import"})
        return response.status_code, _text_of(response)

    def remove(self, door: str, name: str) -> tuple[int, str]:
        if door == "cli":
            r = manage("delete_extension", name, env=self.env)
            return r.returncode, r.stderr.strip().removeprefix("error: ")
        if door == "api":
            response = self.api.delete(f"/api/extensions/{name}/")
            return response.status_code, _error_of(response)
        response = self.browser.post(reverse("package-delete", args=[name]))
        return response.status_code, _text_of(response)


def _error_of(response: HttpResponse) -> str:
    error = response.json().get("error") if response.status_code >= 400 else None
    return f"{error['step']}: {error['reason']}" if error else ""


def _text_of(response: HttpResponse) -> str:
    """The page's text, tags dropped: a refusal reads ``step: reason`` as on the CLI."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", response.content.decode())).split())
