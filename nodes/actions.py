"""An operator's actions on one node: "sync now" and "retry now" (node page, API; each audited).

- **sync now** (``node_sync_now``): the node's agent is nudged to run a pass at once instead of at its
  periodic pass. The pass follows the retry rule (``nodes.retries``): a checksum that failed and
  waits for its retry, or that the node gave up on, is left alone.
- **retry now** (``node_retry``): the node's failed checksums (or one package's) are due at once,
  their retry count started over, and the node is nudged. The way back for a node that gave up.

One transaction and one audit row (``Operation`` kinds ``sync_now`` and ``retry``, the node named,
who asked) each; the nudge goes out after the commit, so the pass it starts sees the reset. A nudge
is a hint: when the broker is down the node does it at its periodic pass, and the answer says so.
``manage.py sync_node`` is the command line's retry now: it runs the pass itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from extadmin.models import Operation
from extadmin.operations import Actor, OperationRecorder
from extadmin.packaging import Conflict, Unknown, is_safe_name
from extadmin.packaging.errors import shown
from nodes.models import Node
from nodes.selectors import node_is_online
from nodes.services import node_nudge
from nodes.sync_states import sync_states_retry_now

SYNC_NOW = "sync_now"
RETRY = "retry"


@dataclass(frozen=True)
class NodeActed:
    """What a "sync now" or "retry now" did, in the words every door shows."""

    name: str
    action: str  # "sync_now" or "retry"
    online: bool
    nudged: bool
    packages: list[str]  # retry: the failed packages now due
    operation: Operation

    @property
    def message(self) -> str:
        """``node n3 retries Pump now``; when offline or the broker is down, when it will instead."""
        subject = f"node {self.name} retries {', '.join(self.packages)}" if self.action == RETRY else (
            f"node {self.name} syncs"
        )
        if not self.online:
            return f"{subject} when its agent starts: it is offline"
        if not self.nudged:
            return (f"{subject} at its periodic pass (within {settings.EXTADMIN_SYNC_INTERVAL:g} s): "
                    "the broker could not be reached")
        return f"{subject} now"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "action": self.action, "online": self.online, "nudged": self.nudged,
            "packages": self.packages, "operation": self.operation.pk, "message": self.message,
        }


def node_sync_now(*, name: str, actor: Actor) -> NodeActed:
    """Nudge the node to sync at once; audited as ``sync_now``. Refused for an offline node (no agent to ask)."""
    with transaction.atomic():
        node = _node(name, step="sync")
        online = node_is_online(name=node.name)
        if not online:
            raise Conflict(
                "sync", f"node {node.name} is offline: no agent runs to sync it; it syncs when its agent starts"
            )
        operation = _audit(Operation.Kind.SYNC_NOW, node=node, actor=actor)
    return NodeActed(name=node.name, action=SYNC_NOW, online=online, nudged=node_nudge(name=node.name),
                     packages=[], operation=operation)


def node_retry(*, name: str, actor: Actor, package: str | None = None) -> NodeActed:
    """Make the node's failed checksums (or ``package``'s) due at once, then nudge it; audited as ``retry``.

    Refused when nothing failed there: there is nothing to retry. An offline node keeps the reset and
    retries when its agent starts.
    """
    with transaction.atomic():
        node = _node(name, step="retry")
        names = sync_states_retry_now(node=node, package_name=package)
        if not names:
            what = f"{shown(package)} on node {node.name}" if package else f"any package on node {node.name}"
            raise Conflict("retry", f"nothing to retry: no sync of {what} failed")
        online = node_is_online(name=node.name)
        operation = _audit(Operation.Kind.RETRY, node=node, actor=actor, package=package or "")
    nudged = node_nudge(name=node.name) if online else False
    return NodeActed(name=node.name, action=RETRY, online=online, nudged=nudged, packages=names, operation=operation)


def _node(name: str, *, step: str) -> Node:
    # A name no node can have (a NUL: PostgreSQL refuses it in text) is not even looked up.
    node = Node.objects.select_for_update().filter(name=name).first() if is_safe_name(name) else None
    if node is None:
        raise Unknown(step, f"no node named '{shown(name)}'")
    return node


def _audit(kind: str, *, node: Node, actor: Actor, package: str = "") -> Operation:
    return OperationRecorder.start(kind=kind, package_name=package, actor=actor, node=node.name).finish()
