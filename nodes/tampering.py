"""Tampering: a node refused a package because its archive in the database is not what was imported.

The one rule, read by the package page and ``/api/extensions/<name>/``. A node records its refusal
as a ``failed`` state (``nodes.sync_states``) whose error is the node's own words
(``nodes.reconcile.describe_sync_error``): ``signature: …`` when the fetched zip does not hold up
against the node's trusted keys, ``checksum mismatch: …`` when it does not match the checksum
stored beside it. Either means the archive changed outside an audited import.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nodes.convergence import FAILED
from nodes.selectors import NodeRow, StateRow

SIGNATURE_PREFIX = "signature: "
CHECKSUM_MISMATCH = "checksum mismatch"  # extadmin.archive.archive_copy_to's words
_MISMATCH = "the signature does not match the zip"  # extadmin.signatures' words


@dataclass(frozen=True)
class Tampering:
    node: str
    reason: str
    at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "reason": self.reason, "at": self.at.isoformat() if self.at else None}


def tampering_reason(state: str, error: str) -> str:
    """What the node's refusal says about the archive in the database; "" when it is no tampering."""
    if state != FAILED:
        return ""
    if error.startswith(SIGNATURE_PREFIX + _MISMATCH):
        return "the archive in the database does not match its signature"
    if error.startswith(SIGNATURE_PREFIX):
        return f"the archive in the database was refused by its signature check: {error.removeprefix(SIGNATURE_PREFIX)}"
    if error.startswith(CHECKSUM_MISMATCH):
        return "the archive in the database does not match its checksum"
    return ""


def package_tampering(*, nodes: list[NodeRow], states: dict[int, StateRow]) -> list[Tampering]:
    """Every node whose last word on the package is a refusal of its archive, by node name."""
    found = []
    for node_id, name, *_ in nodes:
        s = states.get(node_id)
        reason = tampering_reason(s.state, s.error) if s else ""
        if reason:
            found.append(Tampering(node=name, reason=reason, at=s.changed_at if s else None))
    return found
