from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from webhooks.worker import WebhookWorker


class Command(BaseCommand):
    help = (
        "Run the webhooks worker: watches the cluster for webhook events and sends every delivery "
        "(queue 'webhooks'), with its retries. Run one per installation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=4, help="deliveries sent at once (threads)")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = settings.EXTADMIN_WEBHOOK_SCAN_INTERVAL
        worker = WebhookWorker(scan_interval=interval, concurrency=options["concurrency"])
        raise SystemExit(worker.run())
