from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from nodes.credentials import NodeCredentials, node_credentials_issue


class Command(OperatorCommand):
    help = (
        "Create (or rotate) NODE's own PostgreSQL role and print the settings its agent connects with: "
        "it may read packages and write only its own node row, sync states and sync runs; on RabbitMQ and Redis, "
        "a broker user of its own that may consume only the node's queue."
    )
    issued: NodeCredentials

    json_help = 'print {"DATABASE_URL": ..., "CELERY_BROKER_URL": ...} as JSON'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("node", help="the node's name (its row is created if missing)")
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        credentials = node_credentials_issue(name=options["node"])
        for warning in credentials.warnings:
            self.stderr.write(f"warning: {warning}")
        self.issued = credentials
        return credentials.as_env()

    def render(self, result: Any) -> str:
        # An environment file: the comment says what it is; the agent's host keeps it private.
        c = self.issued
        broker = f"broker user {c.broker_user}" if c.broker_user else "the console's own broker credentials"
        lines = [
            f"# node {c.node}, database role {c.role}, {broker}: a new password; the previous one no longer connects"
        ]
        lines += [f"{key}={value}" for key, value in result.items()]
        return "\n".join(lines)
