"""Which version of a package a node should hold while its rollout runs: the one rule.

The agent does not know about batches; its pass (``nodes.reconcile``) asks here, per package:

- ``new``   — install the package's version, as always (admitted; the rollout completed; no rollout);
- ``stage`` — together mode, admitted, not yet activating: build the new version beside the old
              one (fetched, verified, unzipped under ``.extadmin/staged/``) and report ``staged``;
- ``hold``  — keep the rollout's from-version byte for byte: a node waiting for its batch, every
              node of a halted rollout that has not installed, and every node after an abort
              (``word`` is then what its cell says: ``waiting`` or ``reverted``);
- ``keep``  — touch nothing and report nothing: a node that failed in this rollout keeps its
              failure (and the previous version its own backout put back) for the operator to read,
              and is not retried while the rollout runs, so it never adds to the nodes changing at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from extadmin.models import ExtensionPackage
from rollouts.models import Rollout, RolloutNode
from rollouts.policy import TOGETHER

NEW, STAGE, HOLD, KEEP = "new", "stage", "hold", "keep"
WAITING, REVERTED = "waiting", "reverted"
LIVE_OR_ABORTED = (
    Rollout.State.RUNNING, Rollout.State.PAUSED, Rollout.State.HALTED, Rollout.State.ACTIVATING, Rollout.State.ABORTED,
)


@dataclass(frozen=True)
class Target:
    kind: str
    rollout: Rollout
    word: str = ""  # hold: the state the node reports (waiting, reverted)
    sentence: str = ""  # hold: why, in the operator's words ("waiting for batch 2")


def node_targets(*, node_id: int, packages: dict[str, str]) -> dict[str, Target]:
    """For each package (name → its current sha256) in a rollout that is not completed, made by the
    package's current import, what this node should do with it; packages left out are plain
    ``new``. Two queries, whatever the cluster."""
    if not packages:
        return {}
    latest: dict[str, Rollout] = {}
    # Only the rollout the package's current import made: one of a version since replaced (by an
    # import, a rollback) is history, even when those bytes come back; their new import has its own.
    imported_at = ExtensionPackage.objects.filter(name=OuterRef("package_name")).values("imported_at")[:1]
    candidates = Rollout.objects.filter(
        package_name__in=packages, state__in=LIVE_OR_ABORTED, created_at__gte=Subquery(imported_at),
    )
    for r in candidates.order_by("package_name", "-created_at", "-id"):
        if r.package_name not in latest and packages[r.package_name] == r.sha256:
            latest[r.package_name] = r
    if not latest:
        return {}
    rows = {row.rollout_id: row for row in RolloutNode.objects.filter(node_id=node_id, rollout__in=latest.values())}
    return {name: target_of(r, rows.get(r.pk)) for name, r in latest.items()}


def target_of(r: Rollout, row: RolloutNode | None) -> Target:
    """The rule for one node (``row``: its place; None when it joined after the rollout began)."""
    if r.state == Rollout.State.ABORTED:
        said = f"reverted to {r.from_version or 'nothing'}: the rollout of {r.version} was aborted"
        return Target(HOLD, r, REVERTED, said)
    if row is None:
        said = f"waiting: joined after the rollout of {r.version} began; it follows when it completes"
        return Target(HOLD, r, WAITING, said)
    installed = row.state == RolloutNode.State.INSTALLED
    if row.batch > r.batch:
        return Target(HOLD, r, WAITING, f"waiting for batch {row.batch}")
    if installed:
        return Target(NEW, r)
    if row.state == RolloutNode.State.FAILED:
        # Not retried while the rollout runs (it would be one more node changing at once); it
        # installs again once the rollout completes, or when an operator resumes a halted one.
        return Target(KEEP, r)
    if r.state == Rollout.State.HALTED:
        return Target(HOLD, r, WAITING, f"waiting: the rollout of {r.version} is halted")
    if r.activation == TOGETHER and r.state != Rollout.State.ACTIVATING:
        return Target(STAGE, r)
    return Target(NEW, r)


def shown_node_state(r: Rollout, row: RolloutNode) -> str:
    """A node's place as every door says it: a waiting node whose batch is admitted is ``admitted``."""
    if row.state == RolloutNode.State.WAITING and row.batch <= r.batch and r.state != Rollout.State.ABORTED:
        return RolloutNode.State.ADMITTED
    return row.state
