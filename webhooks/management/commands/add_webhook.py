from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from webhooks.documents import endpoint_document
from webhooks.events import EVENTS
from webhooks.services import endpoint_create


class Command(OperatorCommand):
    help = "Register a webhook endpoint: every delivery is signed with its secret (X-Extadmin-Signature)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("url", help="where to POST the events (http:// or https://)")
        parser.add_argument("--events", required=True, help=f"comma-separated: {','.join(EVENTS)}")
        parser.add_argument("--secret", help="16 to 256 characters; generated (and printed this once) when left out")
        parser.add_argument("--description", default="")

    def run(self, **options: Any) -> Any:
        endpoint, generated = endpoint_create(
            url=options["url"], events=options["events"].split(","), secret=options["secret"],
            description=options["description"], by="cli",
        )
        return endpoint_document(endpoint) | ({"secret": generated} if generated else {})

    def render(self, result: Any) -> str:
        line = f"webhook {result['id']} added: {result['url']} for {', '.join(result['events'])}"
        if "secret" in result:
            line += f"\nits secret (shown this once): {result['secret']}"
        return line
