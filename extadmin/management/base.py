"""What every extadmin command shares: refusals become one ``error:`` line and exit status 1."""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from extadmin.operations import describe_error
from extadmin.packaging import Refusal


class OperatorCommand(BaseCommand):
    """Subclasses implement ``run`` and return a JSON-able result; ``--json`` prints it as JSON."""

    json_help = "print the result as JSON"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help=self.json_help)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = self.run(**options)
        except Refusal as exc:
            self.fail(str(exc))
        except DatabaseError as exc:
            self.fail(f"database: {describe_error(exc)}")
        except OSError as exc:
            # The numbered steps turn their own errors into refusals; what reaches here failed while
            # preparing the node's storage (its folder, lock or marker): a line, never a traceback.
            self.fail(f"storage: {describe_error(exc)}")
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, default=str))
        else:
            self.stdout.write(self.render(result))

    def fail(self, message: str) -> None:
        self.stderr.write(f"error: {message}")
        sys.exit(1)

    def run(self, **options: Any) -> Any:
        raise NotImplementedError

    def render(self, result: Any) -> str:
        return str(result)
