from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from rollouts.services import rollouts_status


class Command(OperatorCommand):
    help = "The latest rollout of each package (or of NAME): state, batch, halt reason, every node's place."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="one package")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return rollouts_status(options["name"])

    def render(self, result: Any) -> str:
        if not result["rollouts"]:
            return "no rollouts"
        return "\n".join(render_rollout(r) for r in result["rollouts"])


def render_rollout(r: dict[str, Any]) -> str:
    frm = f" (from {r['from_version']})" if r["from_version"] else ""
    lines = [f"{r['package']} {r['version']}{frm}: {r['state']}, batch {r['batch']}"]
    if r["reason"]:
        lines.append(f"  {r['reason']}")
    lines += [f"  {node}: {state}" for node, state in r["nodes"].items()]
    return "\n".join(lines)
