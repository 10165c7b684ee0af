"""The three doors of a removal — CLI (a real child process), API and browser form — answering alike.

``remove`` returns ``(status, said)``: the exit code or HTTP status, and the refusal as
``step: reason`` (what the CLI prints after ``error:``), so one test asserts the same words through
every door. The operator, its token and its session are made up front: a door that writes to the
database before it removes (a new user, a session) would queue behind SQLite's write lock and
start its removal late, hiding the race under test.
"""
from __future__ import annotations

import html
import re

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

    def remove(self, door: str, name: str) -> tuple[int, str]:
        if door == "cli":
            r = manage("delete_extension", name, env=self.env)
            return r.returncode, r.stderr.strip().removeprefix("error: ")
        if door == "api":
            response = self.api.delete(f"/api/extensions/{name}/")
            error = response.json().get("error") if response.status_code != 200 else None
            return response.status_code, f"{error['step']}: {error['reason']}" if error else ""
        response = self.browser.post(reverse("package-delete", args=[name]))
        return response.status_code, " ".join(html.unescape(re.sub(r"<[^>]+>", "", response.content.decode())).split())
