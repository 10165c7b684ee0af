"""The operator's controls of rollouts (pause, resume, abort, the cluster's default policy), their
status as every door shows it, and the policy an import runs under. Each control is audited.

Every door (``rollout_*`` commands, ``/api/rollouts/``, the console's buttons) calls these and says
the same words; a refusal names the step ``rollout`` and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from extadmin import faults
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor, OperationRecorder
from extadmin.packaging import Conflict, Refusal, Unknown, is_safe_name
from extadmin.packaging.errors import shown
from extadmin.versions import quarantine_reason
from nodes.models import Node
from nodes.services import nodes_nudge_on_commit
from nodes.sync_states import sync_states_retry_now
from rollouts.engine import CHANGING, LIVE, rollout_advance
from rollouts.models import Rollout, RolloutNode, RolloutPolicy
from rollouts.policy import STEP, Policy, parse_canary, policy_from_fields
from rollouts.rules import shown_node_state

PHASES: dict[str, str] = {
    Rollout.State.RUNNING: "batch {batch} of {last}",
    Rollout.State.ACTIVATING: "activating batch {batch} together",
}


# --- the policy -------------------------------------------------------------------------------
def cluster_policy() -> Policy:
    """The cluster's default: the row an operator saved, else ``EXTADMIN_ROLLOUT``."""
    row = RolloutPolicy.objects.filter(pk=1).first()
    if row is None:
        policy: Policy = settings.EXTADMIN_ROLLOUT
        return policy
    return Policy(canary=parse_canary(row.canary), batch=row.batch, max_failures=row.max_failures,
                  activation=row.activation)


def import_policy(fields: dict[str, Any] | None) -> Policy:
    """The policy one import runs under: its own fields over the cluster's default. Refused (step
    ``rollout``) for a bad field or an unknown canary node, before anything is written."""
    own, given = policy_from_fields(fields or {})
    policy = own.over(cluster_policy(), given)
    check_nodes(policy.canary)
    return policy


def check_nodes(names: tuple[str, ...]) -> None:
    known = set(Node.objects.filter(name__in=[n for n in names if is_safe_name(n)]).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Refusal(STEP, f"canary: no node named '{shown(unknown[0])}'")


def cluster_policy_set(*, fields: dict[str, Any], actor: Actor) -> Policy:
    """Save the cluster's default policy (every field: one left empty is the default's)."""
    policy, _ = policy_from_fields(fields)
    check_nodes(policy.canary)
    with transaction.atomic():
        RolloutPolicy.objects.update_or_create(pk=1, defaults={
            "canary": ",".join(policy.canary), "batch": policy.batch, "max_failures": policy.max_failures,
            "activation": policy.activation, "changed_at": timezone.now(),
            "changed_by": actor.user if getattr(actor.user, "pk", None) else None,
        })
        OperationRecorder.start(
            kind=Operation.Kind.ROLLOUT_POLICY, package_name="", actor=actor, node=settings.EXTADMIN_NODE,
            warnings=f"the cluster's rollout policy is now: {policy.text()}",
        ).finish()
    return policy


# --- status -----------------------------------------------------------------------------------
def latest_rollouts(name: str | None = None, *, exclude: tuple[str, ...] = ()) -> list[Rollout]:
    """The latest rollout of each package (or of ``name``), moved on first as far as it goes;
    ``exclude``: leave out those in these states (the dashboard shows no completed one)."""
    rows = Rollout.objects.all() if name is None else Rollout.objects.filter(package_name=name)
    newest = rows.values("package_name").annotate(newest=Max("id")).values("newest")  # ids grow with time
    out = []
    for r in Rollout.objects.filter(pk__in=newest).exclude(state__in=exclude).order_by("package_name"):
        if r.state in CHANGING:
            r = rollout_advance(r.pk) or r
        out.append(r)
    return out


def rollout_dict(r: Rollout) -> dict[str, Any]:
    """The shape of ``rollout_status --json`` and ``/api/rollouts/``, one rollout."""
    nodes = list(r.nodes.select_related("node").order_by("node__name"))
    return {
        "package": r.package_name, "version": r.version, "from_version": r.from_version, "state": r.state,
        "batch": r.batch, "reason": r.reason,
        "nodes": {n.node.name: shown_node_state(r, n) for n in nodes},
    }


def rollouts_status(name: str | None = None) -> dict[str, Any]:
    if name is not None:
        _package_rollout(name)  # refuses an unknown name, in the same words as the controls
    return {"rollouts": [rollout_dict(r) for r in latest_rollouts(name)]}


@dataclass(frozen=True)
class Progress:
    """A rollout as the console shows it: phase, batch, nodes done of all, the halt reason."""

    rollout: Rollout
    done: int
    total: int
    nodes: list[tuple[str, str, int, str]]  # (node, its place, its batch, its error)

    @property
    def phase(self) -> str:
        r = self.rollout
        return PHASES.get(r.state, r.state).format(batch=r.batch, last=r.last_batch)

    @property
    def can_pause(self) -> bool:
        return self.rollout.state in CHANGING

    @property
    def can_resume(self) -> bool:
        return self.rollout.state in (Rollout.State.PAUSED, Rollout.State.HALTED)

    @property
    def can_abort(self) -> bool:
        return self.rollout.state in LIVE and bool(self.rollout.from_sha256)


def progress_of(r: Rollout) -> Progress:
    rows = list(r.nodes.select_related("node").order_by("batch", "node__name"))
    done = sum(1 for n in rows if n.state in (RolloutNode.State.INSTALLED, RolloutNode.State.REVERTED))
    return Progress(
        rollout=r, done=done, total=len(rows),
        nodes=[(n.node.name, shown_node_state(r, n), n.batch, n.error) for n in rows],
    )


def rollouts_progress(name: str | None = None) -> list[Progress]:
    """The rollouts the console shows: every one not completed (or only ``name``'s latest)."""
    rollouts = latest_rollouts(name, exclude=(Rollout.State.COMPLETED,) if name is None else ())
    return [progress_of(r) for r in rollouts]


# --- controls ---------------------------------------------------------------------------------
def _package_rollout(name: str) -> Rollout:
    if not is_safe_name(name):
        raise Unknown(STEP, f"no package named '{shown(name)}'")
    r = Rollout.objects.filter(package_name=name).order_by("-created_at", "-id").first()
    if r is None:
        if not ExtensionPackage.objects.filter(name=name).exists():
            raise Unknown(STEP, f"no package named '{shown(name)}'")
        raise Unknown(STEP, f"{name} has no rollout: it was imported with the default policy (every node at once)")
    return r


TRANSITIONS = {
    "pause": (CHANGING, Rollout.State.PAUSED, Operation.Kind.ROLLOUT_PAUSE),
    "resume": ((Rollout.State.PAUSED, Rollout.State.HALTED), Rollout.State.RUNNING, Operation.Kind.ROLLOUT_RESUME),
    "abort": (LIVE, Rollout.State.ABORTED, Operation.Kind.ROLLOUT_ABORT),
}


def rollout_control(*, name: str, action: str, actor: Actor) -> dict[str, Any]:
    """Pause, resume or abort ``name``'s latest rollout: one conditional transition, audited.

    Resuming a halted rollout lets its failed nodes try again (their failures no longer count);
    aborting sends every node back to the previous version.
    """
    allowed, target, kind = TRANSITIONS[action]
    with transaction.atomic():
        r = _package_rollout(name)
        if r.state not in allowed:
            raise Conflict(STEP, f"the rollout of {name} {r.version} is {r.state}; it cannot be {_done(action)}")
        if action != "pause" and (why := quarantine_reason(r.sha256)) is not None:
            # No node installs nor removes quarantined bytes: neither resuming nor aborting could move one.
            raise Conflict(STEP, f"{name} {r.version} is quarantined: {why}; it cannot be {_done(action)}: roll "
                           f"{name} back to put every node on a good version")
        if action == "abort" and not r.from_sha256:
            raise Conflict(STEP, f"{name} {r.version} was its first version: there is nothing to go back to; "
                           "remove the package instead")
        moved = Rollout.objects.filter(pk=r.pk, state=r.state).update(
            state=target, changed_at=timezone.now(), reason="" if action == "resume" else r.reason,
        )
        if not moved:
            raise Conflict(STEP, f"the rollout of {name} changed meanwhile; look again and retry")
        if action == "resume":
            _failed_try_again(r)
        OperationRecorder.start(
            kind=kind, package_name=name, actor=actor, node=settings.EXTADMIN_NODE, version=r.version,
            previous_version=r.from_version, sha256=r.sha256,
        ).finish()
        # Registered first, so it runs first once committed: the transition done, no node told yet.
        transaction.on_commit(lambda: faults.checkpoint(f"rollout.after_{action}"))
        nodes_nudge_on_commit()
    r.refresh_from_db()
    return rollout_dict(rollout_advance(r.pk) or r)


def _failed_try_again(r: Rollout) -> None:
    """Resuming a halted rollout: its failed nodes try again, their failures due at once (an
    operator's "retry now"), not after the backoff; else a node's next pass would leave the package
    alone and report its old failure again, halting the rollout anew.

    No more of them change at once than a batch holds: as many as the batch has room for (its
    nodes still changing count; the canary batch holds every canary) are admitted again, lowest
    batch first; the others wait, each in a batch of its own after the current one (the later
    batches move one on), so they keep the previous version until then and no longer count as
    failed."""
    rows = list(RolloutNode.objects.filter(rollout=r).select_related("node"))
    failed = sorted((x for x in rows if x.state == RolloutNode.State.FAILED), key=lambda x: (x.batch, x.node.name))
    for row in failed:
        sync_states_retry_now(node=row.node, package_name=r.package_name)
    width = r.batch_size or len(rows)
    if r.batch == 0:
        width = max(width, len(r.canary))
    busy = sum(1 for x in rows if x.batch <= r.batch and x.state not in RolloutNode.SETTLED)
    room = max(width - busy, 0)
    now, later = failed[:room], failed[room:]
    changed = timezone.now()
    RolloutNode.objects.filter(pk__in=[x.pk for x in now]).update(
        state=RolloutNode.State.ADMITTED, error="", changed_at=changed
    )
    if not later:
        return
    size = r.batch_size or len(later)
    added = -(-len(later) // size)
    RolloutNode.objects.filter(rollout=r, batch__gt=r.batch).update(batch=F("batch") + added)
    for i, row in enumerate(later):
        RolloutNode.objects.filter(pk=row.pk).update(
            state=RolloutNode.State.WAITING, error="", batch=r.batch + 1 + i // size, changed_at=changed
        )
    Rollout.objects.filter(pk=r.pk).update(last_batch=F("last_batch") + added)


def _done(action: str) -> str:
    return {"pause": "paused", "resume": "resumed", "abort": "aborted"}[action]
