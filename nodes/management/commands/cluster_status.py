from __future__ import annotations

from typing import Any

from extadmin.management.base import OperatorCommand
from nodes.status import cluster_document, render_table


class Command(OperatorCommand):
    help = "Show every node (online or not) and every extension package's state on each node."

    def run(self, **options: Any) -> Any:
        return cluster_document()

    def render(self, result: Any) -> str:
        return render_table(result)
