from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from extadmin.rollback import package_rollback


class Command(OperatorCommand):
    help = "Roll a package back to a retained version (default: the newest one not quarantined), in the ordered import."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the package's name")
        parser.add_argument("--to", metavar="VERSION", help="the retained version to go back to")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return package_rollback(name=options["name"], to=options["to"], actor=Actor(via="cli"))

    def render(self, result: Any) -> str:
        lines = [f"rolled back {result['name']} from {result['previous_version']} to {result['version']} "
                 f"sha256:{result['checksum']}"]
        return "\n".join(lines + [f"warning: {w}" for w in result.get("warnings", [])])
