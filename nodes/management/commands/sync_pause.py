from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from nodes.cluster import cluster_pause
from nodes.sync_switch import REASON_MAX, sync_switch_sentence


class Command(OperatorCommand):
    help = "Pause syncing on every node (before a bulk import); sync_resume lets each node sync the batch once."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--reason", default="", help=f"why, shown on every page (at most {REASON_MAX} characters)")

    def run(self, **options: Any) -> Any:
        row, operation = cluster_pause(actor=Actor(via="cli"), reason=options["reason"])
        return {
            "sync_paused": row.sync_paused, "paused_at": row.paused_at,
            "paused_by": row.paused_by.get_username() if row.paused_by else None,
            "paused_reason": row.paused_reason, "text": sync_switch_sentence(row), "operation": operation.pk,
        }

    def render(self, result: Any) -> str:
        return f"syncing paused on every node since {result['paused_at']:%Y-%m-%d %H:%M:%S %Z}\n{result['text']}"
