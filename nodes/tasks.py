"""Celery tasks of the node agent. Thin: they take names and call the reconcile service."""
from __future__ import annotations

from celery import shared_task

from nodes.agent import agent_handle_nudge


@shared_task(name="nodes.sync")
def node_sync(*, node_name: str, requested_at: str | None = None) -> None:
    agent_handle_nudge(node_name=node_name, requested_at=requested_at)
