from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from extadmin.logs import stray_output_to_log
from extadmin.packaging import Refusal
from nodes.agent import Agent


class Command(BaseCommand):
    help = "Run a node agent: startup sync, then nudged and periodic syncs of DIR, one at a time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="the node's name")
        parser.add_argument("--storage", required=True, type=Path, help="the node's own storage folder")
        parser.add_argument(
            "--interval", type=float, default=None,
            help=f"seconds between periodic syncs (default {settings.EXTADMIN_SYNC_INTERVAL:g})",
        )

    def handle(self, *args: Any, name: str, storage: Path, interval: float | None, **options: Any) -> None:
        if stray_output_to_log():  # EXTADMIN_LOG_FORMAT=json: the refusal below is a JSON line too
            self.stdout, self.stderr = OutputWrapper(sys.stdout), OutputWrapper(sys.stderr)
        agent = Agent(
            name=name, storage=storage, sync_interval=interval or settings.EXTADMIN_SYNC_INTERVAL,
            heartbeat_interval=settings.EXTADMIN_HEARTBEAT_INTERVAL,
        )
        try:
            status = agent.run()
        except Refusal as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        sys.exit(status)
