from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.versions import versions_document


class Command(OperatorCommand):
    help = "List a package's versions kept in the database: the current one, then the retained ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the package's name")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return versions_document(name=options["name"])

    def render(self, result: Any) -> str:
        lines = []
        for v in result["versions"]:
            mark = "current" if v["current"] else "retained"
            by = f" by {v['imported_by']}" if v["imported_by"] else ""
            quarantined = f"  QUARANTINED: {v['quarantine_reason']}" if v["quarantined"] else ""
            lines.append(
                f"{v['version']:<20} {mark:<9} sha256:{v['checksum'][:12]}  imported {v['imported_at']}{by}"
                f" on {v['imported_on_node']}{quarantined}"
            )
        return "\n".join(lines)
