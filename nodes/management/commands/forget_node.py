from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from nodes.services import node_forget


class Command(OperatorCommand):
    help = (
        "Forget a node: remove it, its sync states and its sync runs (audited). Refused while the node is "
        "online unless --force; a forgotten node whose agent still runs registers again at its next heartbeat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the node's name")
        parser.add_argument("--force", action="store_true", help="forget it even though it is online")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        return node_forget(name=options["name"], force=options["force"], actor=Actor(via="cli")).as_dict()

    def render(self, result: Any) -> str:
        return (
            f"forgot node {result['name']} ({result['states']} package states, {result['runs']} sync runs); "
            f"{result['note']}"
        )
