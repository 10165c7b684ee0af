from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from rollouts.management.commands.rollout_status import render_rollout
from rollouts.services import rollout_control


class Command(OperatorCommand):
    help = "Abort the latest rollout of package NAME: every node goes back to the previous version (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the package")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return rollout_control(name=options["name"], action="abort", actor=Actor(via="cli"))

    def render(self, result: Any) -> str:
        return render_rollout(result)
