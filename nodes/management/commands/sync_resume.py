from __future__ import annotations

from typing import Any

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from nodes.cluster import cluster_resume


class Command(OperatorCommand):
    help = "Resume syncing on every node and nudge each one to sync now."

    def run(self, **options: Any) -> Any:
        row, operation = cluster_resume(actor=Actor(via="cli"))
        return {"sync_paused": row.sync_paused, "operation": operation.pk}

    def render(self, result: Any) -> str:
        return "syncing resumed; every node was asked to sync now"
