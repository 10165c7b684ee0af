"""Writes about nodes: registration, what a node reports of its packages, and nudges."""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from extadmin.celery import app
from extadmin.models import Operation
from extadmin.operations import Actor, OperationRecorder
from extadmin.packaging import Conflict, Refusal, Unknown, is_safe_name
from extadmin.packaging.errors import shown
from extadmin.packaging.names import node_name_check
from extadmin.processes import process_alive
from nodes.models import Node, SyncRun, SyncState
from nodes.selectors import node_is_online, online_node_names

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
    node_name_check(name=name)
    node, created = Node.objects.get_or_create(
        name=name, defaults={"storage_path": str(storage), "host": socket.gethostname()}
    )
    if not created and node.storage_path != str(storage):
        Node.objects.filter(pk=node.pk).update(storage_path=str(storage))
        node.storage_path = str(storage)
    return node


NODE_SYNC_TASK = "nodes.sync"  # nodes.tasks.node_sync


def nodes_nudge(*, exclude: str | None = None) -> int:
    """Ask every online node to sync soon; returns how many were asked. Call after commit.

    A hint only: every agent also reconciles periodically, so a broker that is down costs one
    bounded attempt (one connection for all nudges, short timeouts, no retry) and one log line,
    never a wait per node. Offline nodes are not asked: their agents sync at startup anyway, and
    messages for a node that never comes back would only pile up.
    """
    return _send_nudges(online_node_names(exclude=exclude))


def node_nudge(*, name: str) -> bool:
    """Ask the node ``name`` to sync soon (online or not: the caller judged); False when the broker failed."""
    return _send_nudges([name]) == 1


def _send_nudges(names: list[str]) -> int:
    if not names:
        return 0
    requested = timezone.now().isoformat()
    try:
        with app.connection_for_write(
            connect_timeout=NUDGE_TIMEOUT_SECONDS, transport_options=_NUDGE_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=NUDGE_TIMEOUT_SECONDS)
            producer = conn.Producer()
            for name in names:
                # By name, not through the task's module: the task runs the agent, which builds on this one.
                app.send_task(
                    NODE_SYNC_TASK, kwargs={"node_name": name, "requested_at": requested}, queue=node_queue(name),
                    producer=producer, retry=False, expires=NUDGE_EXPIRES_SECONDS,
                )
    except Exception as exc:  # the broker is down, unreachable or hung
        log.warning("could not nudge %d nodes (%s); they will converge on their periodic pass", len(names), exc)
        return 0
    return len(names)


def nodes_nudge_on_commit(*, exclude: str | None = None) -> None:
    transaction.on_commit(lambda: nodes_nudge(exclude=exclude))


def node_register_agent(*, name: str, storage: Path, pid: int, agent_version: str) -> Node:
    """An agent starting on this node: who runs it, where, and since when; it is online from now.

    Refused while another agent of the same name is alive: two agents of one node would flip its
    cells between their two storages. Checked and written with the row locked, so of two agents
    starting at once the second sees the first.
    """
    node_name_check(name=name)
    host = socket.gethostname()
    with transaction.atomic():
        Node.objects.get_or_create(name=name, defaults={"storage_path": str(storage), "host": host})
        node = Node.objects.select_for_update().get(name=name)
        if (node.host, node.pid) != (host, pid) and node_agent_alive(node):
            raise Refusal("start", _live_agent_reason(node))
        Node.objects.filter(pk=node.pk).update(
            host=host, storage_path=str(storage), pid=pid, agent_version=agent_version,
            started_at=Now(), last_heartbeat=Now(),
        )
    node.refresh_from_db()
    return node


def node_agent_alive(node: Node) -> bool:
    """Whether the agent the row names still runs: its heartbeat is fresh (the offline rule) and,
    on this host, its process exists. A row left by a killed agent never blocks its restart."""
    if node.pid is None or not node_is_online(name=node.name):
        return False
    return node.host != socket.gethostname() or process_alive(node.pid)


def _live_agent_reason(node: Node) -> str:
    beat = node.last_heartbeat
    assert beat is not None  # alive means it beat
    age = max((timezone.now() - beat).total_seconds(), 0)
    return (
        f"node {node.name} already has a live agent: host {node.host}, pid {node.pid}, storage {node.storage_path}, "
        f"last heartbeat {beat.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({age:.0f} s ago); stop that agent first, "
        "or start this one under another name"
    )


def node_heartbeat(*, name: str) -> bool:
    """The agent is alive; False when its node row is gone (deleted by an operator)."""
    return node_seen(name=name)


def node_seen(*, name: str) -> bool:
    """A proof of life of the node: a heartbeat, a sync pass or an import on it.

    Stamped with the database's clock (``Now()``), the clock liveness is judged by
    (``nodes.convergence``): a node whose own clock is wrong is still judged right.
    False when the node's row is gone.
    """
    return Node.objects.filter(name=name).update(last_heartbeat=Now()) == 1


# --- forgetting a node --------------------------------------------------------------------------
RE_REGISTERS = "if its agent still runs, it registers the node again at its next heartbeat"


@dataclass(frozen=True)
class NodeForgotten:
    name: str
    was_online: bool
    states: int
    runs: int
    operation: Operation

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "forgotten": True, "was_online": self.was_online, "states": self.states,
            "runs": self.runs, "operation": self.operation.pk, "note": RE_REGISTERS,
        }


def node_online(node: Node) -> bool:
    """Whether ``node`` is online, for forgetting it: every door asks here, and only here."""
    return node_is_online(name=node.name)


def node_forget(*, name: str, force: bool, actor: Actor) -> NodeForgotten:
    """Forget a node: its row, and with it every sync state and sync run it reported.

    One transaction, one audit row (``forget_node``). A node that is online is refused unless
    ``force``: its agent would register it again at its next heartbeat, so forgetting it would
    last seconds and lose its history for nothing.
    """
    with transaction.atomic():
        # A name no node can have (a NUL: PostgreSQL refuses it in text) is not even looked up.
        node = Node.objects.select_for_update().filter(name=name).first() if is_safe_name(name) else None
        if node is None:
            raise Unknown("forget", f"no node named '{shown(name)}'")
        online = node_online(node)
        if online and not force:
            raise Conflict(
                "forget",
                f"node {name} is online; stop its agent first ({RE_REGISTERS}), or force it",
            )
        states = SyncState.objects.filter(node=node).count()
        runs = SyncRun.objects.filter(node=node).count()
        node.delete()  # its sync states and runs go with it (cascade)
        recorder = OperationRecorder.start(
            kind=Operation.Kind.FORGET_NODE, package_name="", actor=actor, node=name,
            warnings=f"it was online: {RE_REGISTERS}" if online else "",
        )
        operation = recorder.finish()
    return NodeForgotten(name=name, was_online=online, states=states, runs=runs, operation=operation)
