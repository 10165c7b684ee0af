"""What a node does when it syncs: make its disk match the database, and say what it did.

Level-triggered: every pass compares the whole desired state with the whole disk, so a lost,
duplicated or reordered nudge changes nothing about where a node ends up. One pass:

  0. lease   — one sync at a time on this node (``nodes.lease``); a nudge already served is skipped
  1. pause   — while syncing is paused cluster-wide, note since when the node is behind; change nothing
  2. desired — read once from the database: packages whose archive is fully persisted.
               A failed read fails the pass and changes nothing — never "the database is empty"
  3. actual  — what the disk holds: each folder, its ``.chk``, its files against the archive's manifest
               (contents too at startup and for ``sync_node``; names and sizes on periodic passes)
  4. install — missing, outdated or damaged packages, dependencies first: stream the archive from the
               database → verify SHA-256 → verify its signature against this node's own allowed
               signers (EXTADMIN_SIGNATURES) → unzip into staging → ``.chk`` → atomic swap → prove →
               health probe (EXTADMIN_HEALTH_PROBE, ``nodes.probe``) → commit. A checksum that failed
               waits for its next retry (``nodes.retries``); until then the pass leaves it alone
  5. remove  — folders of packages the database no longer has, dependents before their dependencies
  6. report  — every state change is written to ``SyncState`` as it happens; the pass to ``SyncRun``

Every disk change of a package happens under that package's lock (shared with imports on this
node) and after re-reading the database for it, so a sync never races an import or a removal.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from extadmin import faults
from extadmin.archive import ArchiveIncomplete, archive_copy_to
from extadmin.importing import limits_from_settings
from extadmin.logs import logged_as
from extadmin.models import Archive, ExtensionPackage, Operation, Quarantine
from extadmin.operations import describe_error
from extadmin.packaging import (
    Refusal,
    extract_zip,
    inspect_zip,
    order_by_dependencies,
    parse_depends_on,
    parse_metadata,
)
from extadmin.signatures import signature_check
from extadmin.storage import LockBusy, NodeStorage, Swap, write_chk
from extadmin.versions import retained_copy_to, retained_version
from nodes.convergence import quarantine_words
from nodes.lease import Lease, LeaseLost, lease_claim
from nodes.models import ClusterSettings, Node, SyncRun, SyncState
from nodes.probe import HealthProbeFailed, configured_probe, health_probe_run
from nodes.retries import retry_due
from nodes.services import node_get_or_register, node_seen
from nodes.sync_states import (
    sync_state_fail,
    sync_state_fail_removal,
    sync_state_forget,
    sync_state_mark,
    sync_state_mark_removing,
    sync_states_prune,
    sync_states_retry_now,
)
from rollouts.engine import rollout_node_report
from rollouts.rules import HOLD, KEEP, STAGE, Target, node_targets

log = logging.getLogger(__name__)

SKIPPED = "skipped"  # a nudge that a sync started after it already served; no SyncRun is written


class DesiredStateUnreadable(Exception):
    """The database could not say what this node should hold; nothing may be changed."""


@dataclass(frozen=True)
class Desired:
    """One package the database wants on every node."""

    package_id: int
    name: str
    version: str
    sha256: str
    manifest: list[list]
    depends_on: tuple[str, ...]
    signature: str = ""  # the detached signature stored with the package at import
    quarantined: bool = False  # never installed nor removed (``extadmin.quarantine``)
    # Set by the package's rollout (``rollouts.rules``), else the defaults: install it as always.
    stage_only: bool = False  # together mode: build it beside the old version, swap when activating
    retained: bool = False  # the rollout's from-version: its bytes come from the retained archives
    holding: str = ""  # the state the node reports once it holds this version (waiting, reverted)
    note: str = ""  # why, in the operator's words ("waiting for batch 2")


@dataclass(frozen=True)
class Work:
    """One package to (re)install, and why."""

    package: Desired
    kind: str  # "install", "update" or "repair"
    reason: str = ""

    def action(self) -> str:
        p = self.package
        if self.kind == "repair":
            return f"repaired {p.name}: {self.reason}"
        if self.kind == "update":
            return f"updated {p.name} to {p.version}" + (f" ({self.reason})" if self.reason else "")
        return f"installed {p.name} {p.version}"


@dataclass
class Plan:
    installs: list[Work]
    proven: list[Desired]
    removals: list[str]
    held: list[Desired] = field(default_factory=list)  # quarantined: left as they are


@dataclass
class SyncRunResult:
    node: str
    trigger: str
    outcome: str
    actions: list[str] = field(default_factory=list)
    error: str = ""
    failures: dict[str, str] = field(default_factory=dict)
    run_id: int | None = None
    staged: bool = False  # a rollout's version waits staged for its activation (the agent watches)

    @property
    def ok(self) -> bool:
        return self.outcome in (SyncRun.Outcome.SUCCEEDED, SKIPPED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node, "trigger": self.trigger, "outcome": self.outcome, "actions": self.actions,
            "error": self.error, "failures": self.failures, "run": self.run_id,
        }


@dataclass
class _Pass:
    """The context of one pass: who, where, and what it has done so far."""

    node: Node
    storage: NodeStorage
    lease: Lease
    run: SyncRun
    actions: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    staged: list[Desired] = field(default_factory=list)
    kept: set[int] = field(default_factory=set)  # rollouts whose package this pass left alone (failed here)

    def act(self, line: str) -> None:
        # Written as it happens, so a console watching a long sync sees its progress.
        self.actions.append(line)
        SyncRun.objects.filter(pk=self.run.pk).update(actions=self.actions)
        log.info("%s: %s", self.node.name, line)


@logged_as(node="node_name")  # every line of a sync names its node
def reconcile(
    *,
    node_name: str,
    storage_root: Path | str,
    trigger: str,
    verify_contents: bool,
    requested_at: datetime | None = None,
    stop: threading.Event | None = None,
) -> SyncRunResult:
    """Make ``storage_root`` hold exactly what the database says, one sync at a time per node.

    ``requested_at`` (a nudge's send time): skip when a sync that started after it already ran.
    ``stop`` set: stop between steps (the agent is shutting down).
    """
    storage = NodeStorage(storage_root)
    node = node_get_or_register(name=node_name, storage=storage.root)
    lease = lease_claim(node=node, stop=stop)  # 0. one sync at a time; waits, never drops
    try:
        if requested_at is not None and _served_since(node=node, requested_at=requested_at):
            return SyncRunResult(node=node_name, trigger=trigger, outcome=SKIPPED)
        return _run(node=node, storage=storage, lease=lease, trigger=trigger, verify_contents=verify_contents)
    finally:
        lease.release()


def _served_since(*, node: Node, requested_at: datetime) -> bool:
    """A sync that started after the request saw everything the request was about."""
    return SyncRun.objects.filter(
        node=node, started_at__gte=requested_at,
        outcome__in=[SyncRun.Outcome.SUCCEEDED, SyncRun.Outcome.FAILED],
    ).exists()


def _run(*, node: Node, storage: NodeStorage, lease: Lease, trigger: str, verify_contents: bool) -> SyncRunResult:
    run = SyncRun.objects.create(node=node, trigger=trigger, started_at=timezone.now())
    p = _Pass(node=node, storage=storage, lease=lease, run=run)
    outcome, error = SyncRun.Outcome.SUCCEEDED, ""
    try:
        if _sync_paused():  # 1. pause
            outcome = SyncRun.Outcome.PAUSED
            error = _note_behind(p)
        else:
            Node.objects.filter(pk=node.pk, behind_since__isnull=False).update(behind_since=None)
            if trigger == SyncRun.Trigger.MANUAL:  # sync_node: an operator's "retry now" (nodes.retries)
                sync_states_retry_now(node=node)
            _sync(p, verify_contents=verify_contents)
            if p.failures:
                outcome = SyncRun.Outcome.FAILED
                error = "; ".join(f"{name}: {reason}" for name, reason in p.failures.items())
    except LeaseLost as exc:
        outcome = SyncRun.Outcome.TIMED_OUT if exc.timed_out else SyncRun.Outcome.FAILED
        error = str(exc)
    except Exception as exc:
        log.exception("sync of node %s failed", node.name)
        outcome, error = SyncRun.Outcome.FAILED, describe_sync_error(exc)
    _finish_run(p, outcome=outcome, error=error)
    _seen(node)
    if trigger == SyncRun.Trigger.PERIODIC and not p.actions:
        _forget_quiet_passes(p, outcome=outcome)
    return SyncRunResult(
        node=node.name, trigger=trigger, outcome=outcome, actions=p.actions, error=error,
        failures=p.failures, run_id=run.pk, staged=bool(p.staged),
    )


def _seen(node: Node) -> None:
    # A pass, whatever its trigger (``sync_node`` too) and outcome, is the node's proof of life.
    try:
        node_seen(name=node.name)
    except DatabaseError:
        log.exception("could not record that node %s was seen", node.name)


def _finish_run(p: _Pass, *, outcome: str, error: str) -> None:
    # Conditional: a run that a later sync already closed as timed out keeps that verdict.
    try:
        SyncRun.objects.filter(pk=p.run.pk, outcome=SyncRun.Outcome.RUNNING).update(
            outcome=outcome, error=error, actions=p.actions, finished_at=timezone.now()
        )
    except DatabaseError:
        log.exception("could not record the end of sync run %s", p.run.pk)


def _forget_quiet_passes(p: _Pass, *, outcome: str) -> None:
    """A periodic pass that changed nothing replaces the previous such pass in the history.

    Otherwise every node adds thousands of identical rows a day and buries the runs that matter;
    the latest one still says when the node last checked itself.
    """
    if outcome in (SyncRun.Outcome.SUCCEEDED, SyncRun.Outcome.PAUSED):
        SyncRun.objects.filter(
            node=p.node, trigger=SyncRun.Trigger.PERIODIC, outcome=outcome, actions=[], started_at__lt=p.run.started_at
        ).delete()


def _sync(p: _Pass, *, verify_contents: bool) -> None:
    desired, known = read_desired()  # 2. desired, read once; if it fails, nothing below runs
    desired, p.staged, p.kept, bare = rollout_desired(p.node, desired)  # as the rollouts say
    states = {s.package_name: s for s in SyncState.objects.filter(node=p.node)}
    _restore_unproved(p, states)  # a swap whose health probe never passed: the previous version back
    p.storage.clean_leftovers()  # staging/retired of a process that died mid-way
    plan = make_plan(storage=p.storage, desired=desired, known=known, states=states, contents=verify_contents)  # 3.
    # Waiting for the batch of a first version (the package was removed, then imported again under a
    # rollout): this node holds nothing of it until admitted; a copy from before the removal goes.
    unheld = [name for name in sorted(bare) if name in p.storage.installed_names() or name in states]
    if plan.removals and not known and not Operation.objects.exists():
        # An empty answer from a database that never saw a single import or removal is far more
        # likely a node pointed at the wrong (fresh) database than a cluster emptied on purpose.
        raise DesiredStateUnreadable(
            f"the database holds no package and no history at all, yet this node holds {len(plan.removals)}: "
            "is it pointed at the wrong database? nothing was removed"
        )
    _record_proven(p, plan.proven, states)
    _record_held(p, plan.held, states)
    waiting = _hold_back(plan, states)  # failed checksums whose retry is not due: untouched, nothing written
    for work in plan.installs:
        _mark(p, work.package, SyncState.State.PENDING, started_at=None, finished_at=None, duration_ms=None)
    _install_all(p, plan.installs, waiting=waiting)  # 4.
    _stage_all(p, p.staged)  # 4b. together mode: built now, swapped in when the rollout activates
    _remove_all(p, plan.removals)  # 5.
    for name in unheld:
        p.lease.check()
        _remove(p, name, still_imported=True)
    sync_states_prune(node=p.node, known=known, on_disk=p.storage.installed_names())
    _report_rollouts(p)  # 6b. this node's place in each rollout, which then moves on if it can


def _restore_unproved(p: _Pass, states: dict[str, SyncState]) -> None:
    """With a health probe configured, a process that died between its swap and its commit (while the
    probe ran, say) left a version nobody proved healthy in place and the previous one in retired/:
    put the previous one back, byte for byte, as the probe's failure would have. Recognised by the
    retired copy holding what this node last recorded installed while the folder holds something else.
    """
    retired = p.storage.work / "retired"
    if configured_probe() is None or not retired.is_dir():
        return
    for entry in sorted(retired.iterdir()):
        name = entry.name.rsplit("-", 1)[0]
        s = states.get(name)
        if s is None or not s.installed_sha256 or p.storage.read_chk(name) == s.installed_sha256:
            continue
        try:
            with p.storage.lock(name, wait=False):  # busy: a live import or sync of this node owns it
                # Read again under the lock: an import that committed meanwhile recorded its own version.
                recorded = SyncState.objects.filter(node=p.node, package_name=name).values_list(
                    "installed_sha256", flat=True).first()
                if recorded == s.installed_sha256 == _chk_in(entry, name) != p.storage.read_chk(name):
                    Swap(target=p.storage.package_dir(name), retired=entry).rollback()
                    p.act(f"restored {name} {s.installed_version}: the sync that replaced it stopped before "
                          "its health probe passed")
        except LockBusy:
            continue


def _chk_in(folder: Path, name: str) -> str | None:
    try:
        return (folder / f"{name}.chk").read_text().strip() or None
    except OSError:
        return None


# --- 2. desired -------------------------------------------------------------------------------
def read_desired() -> tuple[dict[str, Desired], set[str]]:
    """Packages with a complete archive (desired), and every package name the database knows.

    A package row without its archive is an import or removal in flight: it is neither installed
    nor removed. A database error raises ``DesiredStateUnreadable``: no answer is not an empty answer.
    """
    try:
        with transaction.atomic():  # one consistent snapshot; a savepoint keeps an error contained
            rows = list(
                ExtensionPackage.objects.select_related("archive").only(
                    "id", "name", "version", "sha256", "depends_on", "state", "signature", "archive__sha256",
                )
            )
            manifests = _manifests_of(rows)
            quarantined = set(Quarantine.objects.values_list("sha256", flat=True))
    except DatabaseError as exc:
        raise DesiredStateUnreadable(
            f"could not read the packages from the database ({describe_error(exc)}); nothing was changed"
        ) from exc
    desired: dict[str, Desired] = {}
    for row in rows:
        archive = _archive_of(row)
        if archive is None or row.state not in (ExtensionPackage.State.ACTIVE, ExtensionPackage.State.REMOVING):
            continue
        manifest = manifests.get((row.pk, archive.sha256))
        if manifest is None:  # its archive was replaced between the two reads: in flight, seen next pass
            continue
        desired[row.name] = Desired(
            package_id=row.pk, name=row.name, version=row.version, sha256=archive.sha256,
            manifest=manifest, depends_on=_dependency_names(row.depends_on), signature=row.signature,
            quarantined=archive.sha256 in quarantined,
        )
    return desired, {row.name for row in rows}


# An archive's manifest never changes for a given package row and checksum, so an agent keeps the
# ones it has read: a periodic pass on a node holding 1,000 packages then reads 1,000 short rows
# instead of decoding 100,000 manifest entries every 30 seconds.
_MANIFESTS: dict[tuple[int, str], list[list]] = {}


def _manifests_of(rows: list[ExtensionPackage]) -> dict[tuple[int, str], list[list]]:
    wanted = {(row.pk, a.sha256) for row in rows if (a := _archive_of(row)) is not None}
    missing = wanted - _MANIFESTS.keys()
    if missing:
        found = Archive.objects.filter(
            package_id__in={pk for pk, _ in missing}, sha256__in={sha for _, sha in missing}
        ).values_list("package_id", "sha256", "manifest")
        _MANIFESTS.update({(pk, sha): manifest for pk, sha, manifest in found})
    for key in _MANIFESTS.keys() - wanted:  # packages gone or replaced: forget them
        del _MANIFESTS[key]
    return {key: _MANIFESTS[key] for key in wanted if key in _MANIFESTS}


def _archive_of(row: ExtensionPackage) -> Archive | None:
    try:
        return row.archive
    except Archive.DoesNotExist:
        return None


def _dependency_names(raw: str) -> tuple[str, ...]:
    try:
        return tuple(d.name for d in parse_depends_on(raw))
    except Refusal:
        return ()  # validated at import; an unreadable list only loses the ordering hint


# --- 3. actual, and the plan ------------------------------------------------------------------
def make_plan(
    *, storage: NodeStorage, desired: dict[str, Desired], known: set[str],
    states: dict[str, SyncState], contents: bool,
) -> Plan:
    installs: list[Work] = []
    proven: list[Desired] = []
    held: list[Desired] = []
    order = order_by_dependencies({name: d.depends_on for name, d in desired.items()})
    for name in order:
        if desired[name].quarantined:
            held.append(desired[name])
            continue
        work = _work_for(storage, desired[name], states.get(name), contents=contents)
        if work is None:
            proven.append(desired[name])
        else:
            installs.append(work)
    removals = [name for name in storage.installed_names() if name not in known]
    return Plan(installs=installs, proven=proven, removals=removals, held=held)


def _work_for(storage: NodeStorage, pkg: Desired, state: SyncState | None, *, contents: bool) -> Work | None:
    """What ``pkg``'s folder needs, or None when it proves the desired checksum and files."""
    had_it = state is not None and state.installed_sha256 == pkg.sha256
    folder = storage.package_dir(pkg.name)
    if not folder.is_dir():
        return Work(pkg, "repair", "the folder was missing") if had_it else Work(pkg, "install")
    chk = storage.read_chk(pkg.name)
    if chk is None:
        return Work(pkg, "repair", f"{pkg.name}.chk was missing")
    if chk != pkg.sha256:
        if had_it:
            return Work(pkg, "repair", f"{pkg.name}.chk held a wrong checksum")
        was = state.installed_version if state is not None and state.installed_version else ""
        return Work(pkg, "update", f"was {was}" if was else "")
    problem = storage.verify(pkg.name, pkg.manifest, contents=contents)
    if problem is not None:
        return Work(pkg, "repair", problem.replace(" (its content does not match the archive)", ""))
    return None


def _record_proven(p: _Pass, proven: list[Desired], states: dict[str, SyncState]) -> None:
    """Packages the disk proves: installed, unless their state row already says exactly that."""
    for pkg in proven:
        s = states.get(pkg.name)
        if (
            s is not None and s.state == _proved_state(pkg) and s.error == pkg.note
            and s.installed_sha256 == s.desired_sha256 == pkg.sha256 and s.installed_version == pkg.version
        ):
            continue
        _mark(p, pkg, _proved_state(pkg), installed_version=pkg.version, installed_sha256=pkg.sha256, error=pkg.note)


def _record_held(p: _Pass, held: list[Desired], states: dict[str, SyncState]) -> None:
    """Quarantined packages: nothing installed, nothing removed; the node says whether it holds those bytes."""
    for pkg in held:
        holds = p.storage.read_chk(pkg.name) == pkg.sha256
        words = quarantine_words(pkg.version, holds=holds)
        s = states.get(pkg.name)
        if s is not None and (s.state, s.error, s.desired_sha256) == (SyncState.State.QUARANTINED, words, pkg.sha256):
            continue
        installed = {"installed_version": pkg.version, "installed_sha256": pkg.sha256} if holds else {}
        _mark(p, pkg, SyncState.State.QUARANTINED, error=words, **installed)
        p.act(f"{pkg.name}: {words}")


# --- 4. install -------------------------------------------------------------------------------
def _hold_back(plan: Plan, states: dict[str, SyncState]) -> set[str]:
    """Take out of ``plan`` the failed checksums whose next retry is not due (or that the node gave up
    on), and the dependents already failed waiting for them; returns their names."""
    now, waiting = timezone.now(), set()
    for work in plan.installs:  # dependencies first
        pkg, state = work.package, states.get(work.package.name)
        if not retry_due(state, desired_sha256=pkg.sha256, now=now) or (
            state is not None and state.state == SyncState.State.FAILED and state.desired_sha256 == pkg.sha256
            and any(d in waiting for d in pkg.depends_on)
        ):
            waiting.add(pkg.name)
    plan.installs = [w for w in plan.installs if w.package.name not in waiting]
    return waiting


def _install_all(p: _Pass, installs: list[Work], *, waiting: Collection[str] = ()) -> None:
    failed: set[str] = set(waiting)
    for work in installs:  # already in dependency order
        p.lease.check()
        blocked = [d for d in work.package.depends_on if d in failed]
        if blocked:
            reason = f"waits for {', '.join(blocked)}, which could not be installed"
            _fail(p, work.package, reason, started_at=timezone.now(), t0=time.perf_counter(), counted=False)
            failed.add(work.package.name)
            continue
        if not _install(p, work):
            failed.add(work.package.name)


def _install(p: _Pass, work: Work) -> bool:
    pkg = work.package
    started, t0 = timezone.now(), time.perf_counter()
    swap: Swap | None = None
    try:
        with _package_lock(p, pkg.name):
            if not _still_desired(pkg):
                # An import or removal committed while we waited for the lock (on this node, it
                # recorded its own state): leave it all to the next pass, which sees it.
                return True
            started, t0 = timezone.now(), time.perf_counter()
            _mark(p, pkg, SyncState.State.SYNCING, started_at=started, finished_at=None, duration_ms=None)
            p.storage.clean_leftovers_of(pkg.name)
            swap = _fetch_unzip_swap(p, pkg)
    except LeaseLost as exc:
        _fail(p, pkg, f"interrupted: {exc}", started_at=started, t0=t0, counted=False)
        raise
    except Exception as exc:
        log.warning("installing %s on %s failed: %s", pkg.name, p.node.name, exc)
        _fail(p, pkg, describe_sync_error(exc), started_at=started, t0=t0)
        return False
    try:
        # The new version is in place and proven: the node holds it from now, so it says so before
        # it spends time deleting the previous copy (thousands of files on a busy disk). A process
        # that dies in between leaves it to the next pass's leftover cleanup.
        _mark(
            p, pkg, _proved_state(pkg), installed_version=pkg.version, installed_sha256=pkg.sha256,
            started_at=started, finished_at=timezone.now(), duration_ms=_ms(t0), error=pkg.note,
        )
        p.act(work.action())
        faults.checkpoint("sync.after_report")
    finally:
        if swap is not None:
            swap.commit()  # deletes the previous copy
    return True


@contextmanager
def _package_lock(p: _Pass, name: str) -> Iterator[None]:
    """The package's folder lock, waited for at most until this sync's deadline.

    A process stuck while holding it (a hung sync or import of this node) would otherwise hang
    this sync too, forever: the kernel releases the lock only when that process dies.
    """
    with ExitStack() as held:
        while True:
            try:
                held.enter_context(p.storage.lock(name, wait=False))
                break
            except LockBusy:
                if timezone.now() >= p.lease.until:
                    raise LeaseLost(
                        f"the sync ran past its deadline of {settings.EXTADMIN_SYNC_DEADLINE:g} s waiting for "
                        f"{name}'s lock, which another process on this node (a stuck import or sync) holds",
                        timed_out=True,
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
        yield


LOCK_POLL_SECONDS = 0.2


def _still_desired(pkg: Desired) -> bool:
    if Quarantine.objects.filter(sha256=pkg.sha256).exists():  # quarantined since the pass read it
        return False
    if pkg.retained:  # the rollout's from-version: the package is still there to go back to
        return ExtensionPackage.objects.filter(pk=pkg.package_id).exists()
    return Archive.objects.filter(package_id=pkg.package_id, sha256=pkg.sha256).exists()


def _fetch_unzip_swap(p: _Pass, pkg: Desired) -> Swap:
    """Build the new version beside the old one; the old stays intact until the new one is proven.

    Returns the swap, not committed: the caller deletes the previous copy (``commit``) once the node
    has reported the new version. On a failure the previous copy is put back here.
    """
    download = p.storage.new_staging(pkg.name)  # under .extadmin/staging: found by leftover cleanup
    staging: Path | None = p.storage.take_staged(pkg.name, pkg.sha256)  # built ahead (together mode)
    swap: Swap | None = None
    try:
        if staging is None:
            staging = _fetch_unzip(p, pkg, download)
        faults.checkpoint("sync.after_unzip")
        p.lease.check()  # last point before the disk changes
        swap = p.storage.swap_in(staging, pkg.name)
        staging = None
        faults.checkpoint("sync.after_swap")
        problem = p.storage.verify(pkg.name, pkg.manifest, contents=False)
        if problem is not None or p.storage.read_chk(pkg.name) != pkg.sha256:
            raise RuntimeError(f"the unpacked copy does not match the archive: {problem or 'wrong .chk'}")
        # Until it passes, the previous version waits in retired/; a failure puts it back (below).
        health_probe_run(node=p.node.name, name=pkg.name, version=pkg.version, folder=swap.target)
    except BaseException:
        if swap is not None:
            swap.rollback()  # the old version goes back into place
        if staging is not None:
            p.storage.discard(staging)
        raise
    finally:
        p.storage.discard(download)
    return swap


def _fetch_unzip(p: _Pass, pkg: Desired, download: Path) -> Path:
    """Fetch, verify (checksum, signature) and unzip ``pkg`` into a new staging folder, with its ``.chk``."""
    zip_path = download / f"{pkg.name}.zip"
    with zip_path.open("wb") as out:
        _copy_archive(pkg, out)
    faults.checkpoint("sync.after_fetch")
    _check_signature(p, pkg, zip_path)
    p.lease.check()
    staging = p.storage.new_staging(pkg.name)
    try:
        limits = limits_from_settings()
        extract_zip(zip_path, staging, plan=inspect_zip(zip_path, limits=limits), limits=limits)
        write_chk(staging, pkg.name, pkg.sha256)
    except BaseException:
        p.storage.discard(staging)
        raise
    return staging


def _copy_archive(pkg: Desired, out: BinaryIO) -> None:
    """The current archive, or (a rollout's from-version) the retained version of those bytes."""
    if not pkg.retained:
        archive_copy_to(package_id=pkg.package_id, out=out, expected_sha256=pkg.sha256)
        return
    kept = retained_version(pkg.name, pkg.sha256)
    if kept is None:
        raise ArchiveIncomplete(
            f"{pkg.name} {pkg.version} is no longer retained in the database (EXTADMIN_KEEP_VERSIONS), "
            "so this node cannot fetch it"
        )
    retained_copy_to(version_id=kept.pk, out=out, expected_sha256=pkg.sha256)


def _check_signature(p: _Pass, pkg: Desired, zip_path: Path) -> None:
    """The fetched zip against this node's own trusted keys, before anything of it reaches the folder.

    The database's checksum only proves the bytes are the ones the database says; a signature
    proves they are the ones a trusted key signed, so archive and checksum replaced together in
    the database are refused here. Under ``require`` that raises; under ``warn`` it is said.
    """
    checked = signature_check(
        mode=settings.EXTADMIN_SIGNATURES, zip_path=zip_path, signature=pkg.signature.encode() or None,
        allowed_signers=settings.EXTADMIN_ALLOWED_SIGNERS,
    )
    if checked.warning:
        log.warning("%s: installing %s %s although %s (EXTADMIN_SIGNATURES is warn)",
                    p.node.name, pkg.name, pkg.version, checked.warning)


def _fail(p: _Pass, pkg: Desired, reason: str, *, started_at: datetime, t0: float, counted: bool = True) -> None:
    sync_state_fail(
        node=p.node, name=pkg.name, version=pkg.version, sha256=pkg.sha256, error=reason,
        started_at=started_at, duration_ms=_ms(t0), counted=counted,
    )
    p.failures[pkg.name] = reason
    p.act(f"failed {pkg.name} {pkg.version}: {reason}")


# --- 5. remove --------------------------------------------------------------------------------
def _remove_all(p: _Pass, names: list[str]) -> None:
    for name in removal_order(p.storage, names):
        p.lease.check()
        _remove(p, name)


def removal_order(storage: NodeStorage, names: list[str]) -> list[str]:
    """Dependents before their dependencies, from each folder's own metadata.xml.

    The database no longer knows these packages, so the folder is the only place left that says.
    """
    requires: dict[str, tuple[str, ...]] = {}
    for name in names:
        try:
            meta = parse_metadata((storage.package_dir(name) / "metadata.xml").read_bytes())
            requires[name] = tuple(d.name for d in meta.depends_on)
        except (OSError, Refusal):
            requires[name] = ()
    try:
        return list(reversed(order_by_dependencies(requires)))
    except Refusal:  # a cycle on disk: any order will do, the database wants none of them
        return sorted(names)


def _remove(p: _Pass, name: str, *, still_imported: bool = False) -> None:
    """Remove ``name`` from this node; ``still_imported``: the package exists, but its rollout says
    this node holds none of it yet (it waits for the batch of a first version)."""
    started, t0 = timezone.now(), time.perf_counter()
    try:
        with _package_lock(p, name):
            if not still_imported and ExtensionPackage.objects.filter(name=name).exists():
                # Imported (again) while we waited for the lock, maybe on this very node: keep it.
                return
            sync_state_mark_removing(node=p.node, name=name, started_at=started)
            faults.checkpoint("sync.before_remove")
            p.storage.remove(name)
            p.storage.clean_leftovers_of(name)
    except Exception as exc:
        reason = describe_sync_error(exc)
        sync_state_fail_removal(node=p.node, name=name, reason=reason, duration_ms=_ms(t0))
        p.failures[name] = f"removal failed: {reason}"
        p.act(f"failed to remove {name}: {reason}")
        return
    sync_state_forget(node=p.node, name=name)
    p.act(f"removed {name}")


# --- rollouts (``rollouts.rules`` decides; these hooks only apply it) ---------------------------
def rollout_desired(
    node: Node, desired: dict[str, Desired],
) -> tuple[dict[str, Desired], list[Desired], set[int], set[str]]:
    """``desired`` as this node's rollouts say (what to hold now), the versions to stage only, the
    rollouts whose package this node leaves alone (it failed there), and the packages it must not
    hold at all yet (waiting for the batch of a first version)."""
    # A quarantined checksum is never the answer: quarantine wins over any rollout (the way back from
    # a quarantined version is a rollback; its rollout's controls refuse, saying so).
    targets = node_targets(node_id=node.pk, packages={n: d.sha256 for n, d in desired.items() if not d.quarantined})
    barred = set(Quarantine.objects.filter(sha256__in={t.rollout.from_sha256 for t in targets.values()})
                 .values_list("sha256", flat=True)) if targets else set()
    out: dict[str, Desired] = {}
    staged: list[Desired] = []
    kept: set[int] = set()
    bare: set[str] = set()
    for name, pkg in desired.items():
        target = targets.get(name)
        if target is None:
            out[name] = pkg
        elif target.kind == STAGE:
            staged.append(replace(pkg, stage_only=True))
        elif target.kind == HOLD:
            held = _held(pkg, target, quarantined=target.rollout.from_sha256 in barred)
            if held is not None:
                out[name] = held
            else:
                bare.add(name)
        elif target.kind != KEEP:
            out[name] = pkg
        else:
            kept.add(target.rollout.pk)
    return out, staged, kept, bare


def _held(pkg: Desired, target: Target, *, quarantined: bool) -> Desired | None:
    """The rollout's from-version of ``pkg``; None when there is none (a first import: hold nothing)."""
    r = target.rollout
    if not r.from_sha256:
        return None
    return replace(
        pkg, version=r.from_version, sha256=r.from_sha256, manifest=r.from_manifest, signature=r.from_signature,
        retained=True, holding=target.word, note=target.sentence, quarantined=quarantined,
    )


def _proved_state(pkg: Desired) -> str:
    return pkg.holding or SyncState.State.INSTALLED


def _stage_all(p: _Pass, staged: list[Desired]) -> None:
    for pkg in staged:
        p.lease.check()
        _stage(p, pkg)
    p.storage.clean_staged(keep={p.storage.staged_path(d.name, d.sha256).name for d in staged})


def _stage(p: _Pass, pkg: Desired) -> None:
    """Build ``pkg`` under ``.extadmin/staged/`` and report ``staged``; the folder stays as it is."""
    started, t0 = timezone.now(), time.perf_counter()
    if p.storage.read_chk(pkg.name) == pkg.sha256 and p.storage.verify(pkg.name, pkg.manifest, contents=False) is None:
        _mark(p, pkg, SyncState.State.INSTALLED, installed_version=pkg.version, installed_sha256=pkg.sha256)
        return
    if p.storage.staged_path(pkg.name, pkg.sha256).is_dir():
        _mark(p, pkg, SyncState.State.STAGED)
        return
    download: Path | None = None
    try:
        with _package_lock(p, pkg.name):
            _mark(p, pkg, SyncState.State.SYNCING, started_at=started, finished_at=None, duration_ms=None)
            p.storage.clean_leftovers_of(pkg.name)
            download = p.storage.new_staging(pkg.name)
            p.storage.keep_staged(_fetch_unzip(p, pkg, download), pkg.name, pkg.sha256)
    except LeaseLost as exc:
        _fail(p, pkg, f"interrupted: {exc}", started_at=started, t0=t0)
        raise
    except Exception as exc:
        log.warning("staging %s on %s failed: %s", pkg.name, p.node.name, exc)
        _fail(p, pkg, describe_sync_error(exc), started_at=started, t0=t0)
        return
    finally:
        if download is not None:
            p.storage.discard(download)
    _mark(p, pkg, SyncState.State.STAGED, started_at=started, finished_at=timezone.now(), duration_ms=_ms(t0))
    faults.checkpoint("sync.after_stage")  # staged and said so; its rollout row not reported yet
    p.act(f"staged {pkg.name} {pkg.version}")


def _report_rollouts(p: _Pass) -> None:
    try:
        rollout_node_report(node=p.node, kept=p.kept)
    except DatabaseError:  # the next pass reports again; the rollout waits, it never loses a node
        log.exception("could not report node %s's place in its rollouts", p.node.name)


# --- 1. pause ---------------------------------------------------------------------------------
def _sync_paused() -> bool:
    # No row means nobody ever paused syncing.
    return bool(ClusterSettings.objects.filter(pk=1).values_list("sync_paused", flat=True).first())


def _note_behind(p: _Pass) -> str:
    Node.objects.filter(pk=p.node.pk, behind_since__isnull=True).update(behind_since=timezone.now())
    return "syncing is paused cluster-wide; this node changes nothing until it is resumed"


# --- reporting --------------------------------------------------------------------------------
def _mark(p: _Pass, pkg: Desired, state: str, **fields: Any) -> None:
    sync_state_mark(node=p.node, name=pkg.name, version=pkg.version, sha256=pkg.sha256, state=state, **fields)


def describe_sync_error(exc: BaseException) -> str:
    """An error in words an operator can act on."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full ({exc.filename or 'while writing the package'})"
    if isinstance(exc, Refusal):
        if exc.step == "signature":  # the words the package page reads as tampering (nodes.tampering)
            return f"signature: {exc.reason}"
        if "No space left on device" in exc.reason:
            return f"disk full ({exc.reason})"
        return exc.reason
    if isinstance(exc, ArchiveIncomplete | DesiredStateUnreadable | HealthProbeFailed):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database: {describe_error(exc)}"
    return describe_error(exc)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
