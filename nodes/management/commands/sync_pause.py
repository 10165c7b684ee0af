from __future__ import annotations

from typing import Any

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from nodes.cluster import cluster_pause


class Command(OperatorCommand):
    help = "Pause syncing on every node (before a bulk import); sync_resume lets each node sync the batch once."

    def run(self, **options: Any) -> Any:
        row, operation = cluster_pause(actor=Actor(via="cli"))
        return {"sync_paused": row.sync_paused, "paused_at": row.paused_at, "operation": operation.pk}

    def render(self, result: Any) -> str:
        return f"syncing paused on every node since {result['paused_at']:%Y-%m-%d %H:%M:%S %Z}"
