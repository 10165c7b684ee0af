"""Writes about nodes: registration, what a node reports of its packages, and nudges."""
from __future__ import annotations

import logging
import socket
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.liveness import is_online
from nodes.models import Node, SyncState
from nodes.tasks import node_sync

log = logging.getLogger(__name__)

# A nudge only hurries the periodic pass: after this long that pass has done its work anyway, and
# the message is dropped unread (RabbitMQ by itself, from its TTL; Redis and the filesystem broker
# keep it in the queue until the node's agent reads and discards it).
NUDGE_EXPIRES_SECONDS = 120.0
# One attempt at the broker per batch of nudges: connecting, and every read or write on the socket.
NUDGE_TIMEOUT_SECONDS = 2.0
_NUDGE_TRANSPORT_OPTIONS = {
    "max_retries": 0,
    "socket_timeout": NUDGE_TIMEOUT_SECONDS,  # Redis
    "socket_connect_timeout": NUDGE_TIMEOUT_SECONDS,
    "read_timeout": NUDGE_TIMEOUT_SECONDS,  # AMQP
    "write_timeout": NUDGE_TIMEOUT_SECONDS,
}


def node_queue(name: str) -> str:
    """Every node consumes its own queue: a nudge reaches exactly one node."""
    return f"node.{name}"


def node_get_or_register(*, name: str, storage: Path) -> Node:
    node, created = Node.objects.get_or_create(
        name=name, defaults={"storage_path": str(storage), "host": socket.gethostname()}
    )
    if not created and node.storage_path != str(storage):
        Node.objects.filter(pk=node.pk).update(storage_path=str(storage))
        node.storage_path = str(storage)
    return node


def sync_state_record_local_install(
    *, node: Node, package: ExtensionPackage, started_at: datetime, duration_ms: float
) -> None:
    """The importing node already holds the package it just unpacked and checksummed: it is installed there.

    Runs inside the import's transaction, so the state appears together with the package or not at all.
    """
    now = timezone.now()
    SyncState.objects.update_or_create(
        node=node,
        package_name=package.name,
        defaults={
            "desired_version": package.version,
            "desired_sha256": package.sha256,
            "installed_version": package.version,
            "installed_sha256": package.sha256,
            "state": SyncState.State.INSTALLED,
            "error": "",
            "changed_at": now,
            "started_at": started_at,
            "finished_at": now,
            "duration_ms": duration_ms,
        },
    )


def sync_state_record_local_removal(*, node: Node, package_name: str) -> None:
    SyncState.objects.filter(node=node, package_name=package_name).delete()


def nodes_nudge(*, exclude: str | None = None) -> int:
    """Ask every online node to sync soon; returns how many were asked. Call after commit.

    A hint only: every agent also reconciles periodically, so a broker that is down costs one
    bounded attempt (one connection for all nudges, short timeouts, no retry) and one log line,
    never a wait per node. Offline nodes are not asked: their agents sync at startup anyway, and
    messages for a node that never comes back would only pile up.
    """
    names = [
        name for name, seen in Node.objects.exclude(name=exclude or "").values_list("name", "last_heartbeat")
        if is_online(seen)
    ]
    if not names:
        return 0
    requested = timezone.now().isoformat()
    try:
        with node_sync.app.connection_for_write(
            connect_timeout=NUDGE_TIMEOUT_SECONDS, transport_options=_NUDGE_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=NUDGE_TIMEOUT_SECONDS)
            producer = conn.Producer()
            for name in names:
                node_sync.apply_async(
                    kwargs={"node_name": name, "requested_at": requested}, queue=node_queue(name),
                    producer=producer, retry=False, expires=NUDGE_EXPIRES_SECONDS,
                )
    except Exception as exc:  # the broker is down, unreachable or hung
        log.warning("could not nudge %d nodes (%s); they will converge on their periodic pass", len(names), exc)
        return 0
    return len(names)


def nodes_nudge_on_commit(*, exclude: str | None = None) -> None:
    transaction.on_commit(lambda: nodes_nudge(exclude=exclude))


def node_register_agent(*, name: str, storage: Path, pid: int, agent_version: str) -> Node:
    """An agent starting on this node: who runs it, where, and since when; it is online from now."""
    node = node_get_or_register(name=name, storage=storage)
    now = timezone.now()
    Node.objects.filter(pk=node.pk).update(
        host=socket.gethostname(), storage_path=str(storage), pid=pid, agent_version=agent_version,
        started_at=now, last_heartbeat=now,
    )
    node.refresh_from_db()
    return node


def node_heartbeat(*, name: str) -> bool:
    """The agent is alive; False when its node row is gone (deleted by an operator)."""
    return Node.objects.filter(name=name).update(last_heartbeat=timezone.now()) == 1
