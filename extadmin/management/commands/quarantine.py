from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from extadmin.quarantine import package_quarantine


class Command(OperatorCommand):
    help = "Quarantine a package version: no node installs its checksum again, and its upload is refused."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the package's name")
        parser.add_argument("version", help="its current or a retained version")
        parser.add_argument("--reason", required=True, help="why no node may install it again")
        parser.add_argument(
            "--rollback", action="store_true", help="then roll back to the last good (not quarantined) retained version"
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return package_quarantine(
            name=options["name"], version=options["version"], reason=options["reason"],
            rollback=options["rollback"], actor=Actor(via="cli"),
        )

    def render(self, result: Any) -> str:
        line = f"quarantined {result['name']} {result['version']}: {result['reason']}"
        if result["rolled_back_to"]:
            line += f"\nrolled back {result['name']} to {result['rolled_back_to']}"
        return line
