from __future__ import annotations

from typing import Any

from extadmin.management.base import OperatorCommand
from webhooks.documents import delivery_document, endpoint_document
from webhooks.selectors import endpoints_with_recent

RECENT = 5


class Command(OperatorCommand):
    help = "List the webhook endpoints with their newest deliveries (secrets are never shown: their last 4 characters)."

    def run(self, **options: Any) -> Any:
        return [
            endpoint_document(e) | {"deliveries": [delivery_document(d) for d in e.recent]}  # type: ignore[attr-defined]
            for e in endpoints_with_recent(recent=RECENT)
        ]

    def render(self, result: Any) -> str:
        if not result:
            return "no webhook endpoints"
        lines = []
        for e in result:
            state = "" if e["active"] else " (inactive)"
            lines.append(f"{e['id']:<4} {e['url']}{state}  {','.join(e['events'])}  secret {e['secret_hint']}")
            lines += [
                f"       {d['id']:<6} {d['event']:<18} {d['status']:<10} "
                f"{d['attempts']}/{d['max_attempts']} {d['last_error']}"
                for d in e["deliveries"]
            ]
        return "\n".join(lines)
