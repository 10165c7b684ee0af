from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from webhooks.documents import endpoint_document
from webhooks.services import endpoint_delete


class Command(OperatorCommand):
    help = "Delete a webhook endpoint (by its id, as list_webhooks shows it) and its deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("id", type=int)

    def run(self, **options: Any) -> Any:
        return endpoint_document(endpoint_delete(endpoint_id=options["id"])) | {"deleted": True}

    def render(self, result: Any) -> str:
        return f"webhook {result['id']} deleted: {result['url']}"
