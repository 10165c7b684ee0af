"""How a rollout moves on. Every transition is a conditional UPDATE: "only if it is still in the
state (and batch) I read", so the console, an agent or a worker can each try to advance it, any of
them can die at any moment, and each transition happens exactly once.

    running (batch k admitted) ── every admitted node installed (or failed, under the threshold)
        ├─ k is the last batch ──→ completed
        └─ else ──→ running (batch k+1 admitted)
    running ── failed nodes reach max-failures ──→ halted (the reason names them and their errors)
    together mode: running ── every online admitted node staged ──→ activating ── all installed ──→ running
                   running ── an admitted node failed to stage ──→ halted (none swapped)
    running | activating ⇄ paused (an operator);  halted → running (resume: the failed nodes try again)
    any but completed ──→ aborted (an operator): every node goes back to the previous version

A node's own row (``RolloutNode``) is written only by that node's agent, after its pass, from what
its sync states prove (``rollout_node_report``); admission is the rollout's ``batch`` alone, so no
process ever writes another node's row to admit it.
"""
from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from extadmin import faults
from extadmin.models import Archive, ExtensionPackage
from extadmin.packaging import Conflict
from nodes.models import Node, SyncState
from nodes.selectors import online_node_names
from nodes.services import nodes_nudge
from rollouts.models import Rollout, RolloutNode
from rollouts.policy import STEP, TOGETHER, Policy
from rollouts.rules import HOLD, node_targets

log = logging.getLogger(__name__)

LIVE = (Rollout.State.RUNNING, Rollout.State.PAUSED, Rollout.State.HALTED, Rollout.State.ACTIVATING)
CHANGING = (Rollout.State.RUNNING, Rollout.State.ACTIVATING)
MAX_STEPS = 8  # transitions one advance may make (batch after batch when they are all done already)


# --- creating -------------------------------------------------------------------------------
def rollout_create(
    *, package: ExtensionPackage, previous: ExtensionPackage | None, policy: Policy, importing_node: str,
    by: str = "",
) -> Rollout | None:
    """The rollout of ``package``'s new version, inside the import's transaction, before its archive
    replaces the previous one (whose manifest the nodes not admitted keep proving). None for the
    default policy and for the same bytes again: then every node installs at once, as always."""
    if previous is not None and previous.sha256 == package.sha256:
        _refuse_held_back(package, importing_node)
        return None
    if policy.is_default:
        return None
    old = None
    if previous is not None:
        old = Archive.objects.filter(package_id=previous.pk).values_list("manifest", flat=True).first()
    # Never before the import's own time: the rule binds a rollout to the import that made it.
    now = max(timezone.now(), package.imported_at)
    batches = _batches(policy, importing_node)
    first = min(batches.values())
    rollout = Rollout.objects.create(
        package_name=package.name, version=package.version, sha256=package.sha256,
        from_version=previous.version if previous else "", from_sha256=previous.sha256 if previous else "",
        from_manifest=old or [], from_signature=previous.signature if previous else "",
        canary=list(policy.canary), batch_size=policy.batch, max_failures=policy.max_failures,
        activation=policy.activation, batch=first, last_batch=max(batches.values()), created_at=now,
        changed_at=now, created_by=by,
    )
    nodes = dict(Node.objects.filter(name__in=batches).values_list("name", "id"))
    RolloutNode.objects.bulk_create([
        RolloutNode(
            rollout=rollout, node_id=nodes[name], batch=batch, changed_at=now, swapped_at=now if name == importing_node
            else None, state=RolloutNode.State.INSTALLED if name == importing_node else RolloutNode.State.WAITING,
        )
        for name, batch in batches.items() if name in nodes
    ])
    faults.checkpoint("rollout.after_create")  # written, not committed: the import's transaction
    return rollout


def _refuse_held_back(package: ExtensionPackage, importing_node: str) -> None:
    """The same bytes again, imported on a node their rollout holds back (waiting for its batch,
    halted, aborted): its own unzip would put them there outside the rollout. Refused, so the
    import backs out and the node keeps the previous version."""
    node_id = Node.objects.filter(name=importing_node).values_list("id", flat=True).first()
    targets = node_targets(node_id=node_id, packages={package.name: package.sha256}) if node_id else {}
    target = targets.get(package.name)
    if target is not None and target.kind == HOLD:
        raise Conflict(STEP, f"{package.name} {package.version} is being rolled out and node {importing_node} "
                       f"holds the previous version ({target.sentence}): import it on an admitted node, "
                       "or resume or abort the rollout")


def _batches(policy: Policy, importing_node: str) -> dict[str, int]:
    """Each node's batch: the canary is batch 0, then batches of ``policy.batch`` by name. The node
    the import ran on holds the new version from the import's own unzip: it is in the first batch."""
    first = 0 if policy.canary else 1
    out = {name: 0 for name in policy.canary}
    out.setdefault(importing_node, first)
    rest = [n for n in online_node_names() if n not in out]
    size = policy.batch or max(len(rest), 1)
    for i, name in enumerate(rest):
        out[name] = 1 + i // size
    return out


# --- advancing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str  # admit, halt, complete, activate (running → activating), activated (activating → running)
    fields: dict[str, Any]
    nudge: bool = False  # admitted nodes should act now (a batch admitted, activation)


def rollout_advance(rollout_id: int) -> Rollout | None:
    """Move the rollout on as far as it goes now; safe from any process, any number of times."""
    for _ in range(MAX_STEPS):
        rollout = Rollout.objects.filter(pk=rollout_id).first()
        if rollout is None or rollout.state not in CHANGING:
            return rollout
        rows = list(rollout.nodes.select_related("node"))
        step = next_step(rollout, rows, online=set(online_node_names()))
        if step is None:
            return rollout
        faults.checkpoint(f"rollout.before_{step.name}")
        moved = Rollout.objects.filter(pk=rollout.pk, state=rollout.state, batch=rollout.batch).update(
            **step.fields, changed_at=timezone.now()
        )
        if moved:
            faults.checkpoint(f"rollout.after_{step.name}")  # done, nobody nudged yet
        if moved and step.nudge:
            nodes_nudge()  # a hint only: staged agents also watch, and every agent passes periodically
    return Rollout.objects.filter(pk=rollout_id).first()


def next_step(rollout: Rollout, rows: list[RolloutNode], *, online: set[str]) -> Step | None:
    """The one transition the rollout's rows call for now, or None (the rule, no writes)."""
    admitted = [r for r in rows if r.batch <= rollout.batch]
    failed = [r for r in admitted if r.state == RolloutNode.State.FAILED]
    together = rollout.activation == TOGETHER
    if failed and ((together and rollout.state == Rollout.State.RUNNING)
                   or (rollout.max_failures and len(failed) >= rollout.max_failures)):
        # Nudged: the nodes holding a staged version drop it now, not at their next periodic pass.
        reason = halt_reason(rollout, failed, together=together)
        return Step("halt", {"state": Rollout.State.HALTED, "reason": reason}, nudge=together)
    pending = [r for r in admitted if r.state not in RolloutNode.SETTLED]
    if rollout.state == Rollout.State.ACTIVATING:
        return Step("activated", {"state": Rollout.State.RUNNING}) if not pending else None
    if together and pending:
        present = [r for r in pending if r.node.name in online]
        if present and all(r.state == RolloutNode.State.STAGED for r in present):
            return Step("activate", {"state": Rollout.State.ACTIVATING}, nudge=True)
        return None
    if pending:
        return None
    if rollout.batch >= rollout.last_batch:
        return Step("complete", {"state": Rollout.State.COMPLETED})
    return Step("admit", {"batch": rollout.batch + 1}, nudge=True)


def halt_reason(rollout: Rollout, failed: list[RolloutNode], *, together: bool) -> str:
    """One sentence naming the failed nodes and their errors."""
    named = "; ".join(f"{r.node.name}: {r.error or 'failed'}" for r in sorted(failed, key=lambda r: r.node.name))
    if together and all(r.staged_at is None for r in failed):  # none of them got as far as staged
        return f"halted before any node switched to {rollout.version}: {len(failed)} failed to stage ({named})"
    if together:
        return f"halted at batch {rollout.batch} while switching to {rollout.version}: {len(failed)} failed ({named})"
    plural = "s" if len(failed) != 1 else ""
    most = rollout.max_failures
    return f"halted at batch {rollout.batch}: {len(failed)} node{plural} failed (max-failures {most}): {named}"


def rollouts_advance_all() -> None:
    """Every rollout still moving, once (the console reading status, a periodic pass)."""
    for pk in Rollout.objects.filter(state__in=CHANGING).values_list("pk", flat=True):
        rollout_advance(pk)


# --- what a node reports ----------------------------------------------------------------------
def rollout_node_report(*, node: Node, kept: Collection[int] = ()) -> None:
    """After a pass: this node's place in each live rollout, from what its sync states prove; then
    each of those rollouts is moved on. Writes only this node's own rows (and the shared rollout row,
    by conditional transitions).

    ``kept``: the rollouts whose package the pass left alone (the node had failed there). Their rows
    are not written: the pass proved nothing new, and its old failure must not undo a resume that
    committed while it ran (the next pass tries again and reports)."""
    rows = list(
        RolloutNode.objects.filter(node=node)
        .filter(Q(rollout__state__in=LIVE) | Q(rollout__state=Rollout.State.ABORTED))
        .select_related("rollout")
    )
    if not rows:
        return
    names = {r.rollout.package_name for r in rows}
    states = {s.package_name: s for s in SyncState.objects.filter(node=node, package_name__in=names)}
    for row in rows:
        new = None if row.rollout_id in kept else reported_state(row, states.get(row.rollout.package_name))
        if new is not None and (new[0], new[1]) != (row.state, row.error):
            fields: dict[str, Any] = {"state": new[0], "error": new[1], "changed_at": timezone.now()}
            if new[0] == RolloutNode.State.INSTALLED:
                fields["swapped_at"] = new[2]
            elif new[0] == RolloutNode.State.STAGED:
                fields["staged_at"] = fields["changed_at"]
            if RolloutNode.objects.filter(pk=row.pk, state=row.state).update(**fields):
                faults.checkpoint("rollout.after_report")  # its own row written, the rollout not yet moved
        if row.rollout.state in CHANGING:
            faults.checkpoint("rollout.before_advance")
            rollout_advance(row.rollout_id)


def reported_state(row: RolloutNode, s: SyncState | None) -> tuple[str, str, Any] | None:
    """What the node's sync state proves about its place in the rollout (state, error, swapped at)."""
    r = row.rollout
    if s is None:
        return None
    if r.state == Rollout.State.ABORTED:
        changed = row.state in (RolloutNode.State.INSTALLED, RolloutNode.State.FAILED, RolloutNode.State.STAGED)
        if changed and s.installed_sha256 == r.from_sha256 and s.state != SyncState.State.SYNCING:
            return (RolloutNode.State.REVERTED, "", None)
        return None
    if row.batch > r.batch:
        return None
    if s.state == SyncState.State.INSTALLED and s.installed_sha256 == r.sha256:
        return (RolloutNode.State.INSTALLED, "", s.finished_at)
    if s.state == SyncState.State.FAILED and s.desired_sha256 == r.sha256:
        return (RolloutNode.State.FAILED, s.error, None)
    if s.state == SyncState.State.STAGED and s.desired_sha256 == r.sha256:
        return (RolloutNode.State.STAGED, "", None)
    return None


def rollout_activating(*, node_name: str) -> bool:
    """Whether a rollout that activates together wants this node's staged version swapped in now."""
    return RolloutNode.objects.filter(
        node__name=node_name, state=RolloutNode.State.STAGED, rollout__state=Rollout.State.ACTIVATING
    ).exists()


# --- quarantine -------------------------------------------------------------------------------
def rollouts_halt_quarantined(*, package_name: str, version: str, checksums: list[str], reason: str) -> int:
    """Inside the quarantine's transaction: every live rollout taking out one of ``checksums`` halts
    (no node installs them any more, so it could never finish), saying why; resuming it is refused,
    aborting it still puts the nodes back. Returns how many rollouts halted."""
    why = f"halted: {package_name} {version} was quarantined: {reason}"
    return Rollout.objects.filter(package_name=package_name, sha256__in=checksums, state__in=LIVE).update(
        state=Rollout.State.HALTED, reason=why, changed_at=timezone.now()
    )
