from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from extadmin.claim import storage_claim
from extadmin.management.base import OperatorCommand
from extadmin.storage import NodeStorage
from nodes.models import SyncRun
from nodes.reconcile import SyncRunResult, reconcile


class Command(OperatorCommand):
    help = (
        "Run one sync pass of a node (file contents verified); exit 0 when it matches the database, else 1. "
        "Failed packages are retried at once, their retry count started over (retry now)."
    )

    result: SyncRunResult | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="the node's name")
        parser.add_argument("--storage", required=True, type=Path, help="the node's own storage folder")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        name, storage = options["name"], options["storage"]
        # Not exclusive: the node's own agent may be running beside us; the node's lease orders us.
        storage_claim(storage=NodeStorage(storage), node_name=name, exclusive=False).release()
        self.result = reconcile(
            node_name=name, storage_root=storage, trigger=SyncRun.Trigger.MANUAL, verify_contents=True
        )
        return self.result.as_dict()

    def handle(self, *args: Any, **options: Any) -> None:
        super().handle(*args, **options)
        if self.result is not None and not self.result.ok:
            self.fail(f"sync of {self.result.node} {self.result.outcome}: {self.result.error}")

    def render(self, result: Any) -> str:
        lines = list(result["actions"]) or ["nothing to change"]
        return "\n".join([*lines, f"{result['node']}: {result['outcome']}"])
