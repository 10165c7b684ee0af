from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser
from rest_framework.authtoken.models import Token

from extadmin.management.base import OperatorCommand
from extadmin.packaging import Refusal


class Command(OperatorCommand):
    help = "Print USERNAME's API token (created on first use), for the header 'Authorization: Token <key>'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="an existing user")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        username: str = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise Refusal("token", f"no user named {username!r}; create the user first")
        token, created = Token.objects.get_or_create(user=user)
        return {"username": username, "token": token.key, "created": created}

    def render(self, result: Any) -> str:
        return result["token"]
