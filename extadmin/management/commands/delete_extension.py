from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from extadmin.removal import package_remove


class Command(OperatorCommand):
    help = "Remove an extension package from the cluster, in the ordered steps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the package's name")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        op = package_remove(name=options["name"], actor=Actor(via="cli"))
        return {"name": op.package_name, "version": op.version, "checksum": op.sha256, "removed": True}

    def render(self, result: Any) -> str:
        return f"removed {result['name']} {result['version']}"
