"""Reads for the API that no other door needs in this shape."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from extadmin.models import ExtensionPackage, Operation
from extadmin.selectors import package_list
from nodes.liveness import is_online
from nodes.models import Node, SyncState

MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class NodePackageState:
    """One node's state of one package: a node that has not reported on it yet is pending."""

    node: Node
    state: SyncState | None
    online: bool
    up_to_date: bool


def package_get(*, name: str) -> ExtensionPackage | None:
    return package_list().prefetch_related("entities").filter(name=name).first()


def package_node_states(*, package: ExtensionPackage, now: datetime | None = None) -> list[NodePackageState]:
    states = {s.node_id: s for s in SyncState.objects.filter(package_name=package.name)}
    result = []
    for node in Node.objects.order_by("name"):
        state = states.get(node.pk)
        up_to_date = (
            state is not None
            and state.state == SyncState.State.INSTALLED
            and state.installed_sha256 == package.sha256
        )
        result.append(
            NodePackageState(node=node, state=state, online=is_online(node.last_heartbeat, now), up_to_date=up_to_date)
        )
    return result


def operation_list(*, package: str | None = None, limit: int = 100) -> QuerySet[Operation]:
    """The audit trail, newest first; ``package`` narrows it to one package's operations."""
    ops = Operation.objects.select_related("user").prefetch_related("steps")
    if package:
        ops = ops.filter(package_name=package)
    return ops.order_by("-started_at", "-id")[: max(1, min(limit, MAX_OPERATIONS))]


def node_get(*, name: str) -> Node | None:
    return Node.objects.filter(name=name).first()
