from __future__ import annotations

from typing import Any

from extadmin.documents import package_summary
from extadmin.management.base import OperatorCommand
from extadmin.selectors import package_list


class Command(OperatorCommand):
    help = "List the extension packages in the database."

    def run(self, **options: Any) -> Any:
        return [package_summary(p) for p in package_list()]

    def render(self, result: Any) -> str:
        if not result:
            return "no extension packages"
        return "\n".join(f"{p['name']:<40} {p['version']:<20} {p['checksum'][:12]}" for p in result)
