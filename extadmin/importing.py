"""The ordered import: a package reaches the database only after it is deployed on this node.

Order (mission, "Import"):
  0. validate — zip safety, metadata.xml, version, dependency and HA rules, the import
                policy, entity collisions; no side effect
 0b. signature — the detached OpenSSH signature against EXTADMIN_ALLOWED_SIGNERS, as
               EXTADMIN_SIGNATURES says (``extadmin.signatures``); no side effect
  1. checksum — streamed SHA-256 of the zip, written to ``<name>.chk``
  2. unzip    — into a staging folder, then renamed into ``extensions/<name>/``
  3. persist  — the ``ExtensionPackage`` and every entity its metadata.xml declares
  4. archive  — the zip (as chunks) and its checksum, **last**
On PostgreSQL a lone package's chunks are sent ahead, while steps 0–2 read the disk, in the very
transaction that commits steps 3–4 (``extadmin.archive_ahead``): step 4 only re-points them, and
nothing of it is visible before that commit, so the order the cluster sees is the same.
Then commit, and after commit every other node is nudged. A failure anywhere in 1–4 backs out
all of it: the transaction rolls back, the new folder and ``.chk`` go, the previous version (if
any) is put back, and no staging files are left.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from extadmin import faults
from extadmin.archive import Staged
from extadmin.archive_ahead import ArchiveAhead
from extadmin.claim import storage_claim
from extadmin.collisions import entity_collisions_check, entity_collisions_together, entity_declarations_lock
from extadmin.logs import logged_as
from extadmin.models import Entity, ExtensionPackage, Operation, OperationStep
from extadmin.operations import Actor, OperationRecorder, operations_mark_interrupted
from extadmin.packaging import (
    Conflict,
    Limits,
    PackageMetadata,
    Refusal,
    ValidatedPackage,
    check_ratio,
    extract_zip,
    order_by_dependencies,
    parse_depends_on,
    parse_version,
    validate_package,
)
from extadmin.packaging.errors import shown
from extadmin.packaging.policy import check_import_policy, check_imports_enabled, effective_policy
from extadmin.progress import phase_reached
from extadmin.selectors import package_dependents
from extadmin.signatures import MAX_SIGNATURE_BYTES, Checked, Signer, read_signature, signature_check
from extadmin.storage import LockBusy, NodeStorage, Swap, write_chk
from extadmin.versions import archive_replace, quarantine_reason
from nodes.models import Node
from nodes.services import (
    node_get_or_register,
    node_name_check,
    node_seen,
    nodes_nudge_on_commit,
)
from nodes.sync_states import (
    sync_state_mark_replacing,
    sync_state_record_local_install,
    sync_state_restore_installed,
)
from rollouts.engine import rollout_create
from rollouts.policy import Policy
from rollouts.services import import_policy
from webhooks import events as webhook_events

HASH_BLOCK = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass
class ImportPlan:
    """What validation decided: the package, what it replaces, and what the operator should know."""

    package: ValidatedPackage
    kind: str
    previous: ExtensionPackage | None
    warnings: list[str] = field(default_factory=list)
    signature: str = ""  # stored with the package when EXTADMIN_SIGNATURES is not off
    signer: Signer | None = None
    staged: Path | None = None  # a staging folder that already holds the checked files (validation's)

    @property
    def metadata(self) -> PackageMetadata:
        return self.package.metadata


@dataclass
class ImportResult:
    package: ExtensionPackage | None
    operation: Operation | None
    plan: ImportPlan
    sha256: str
    label: str | None = None  # the file (or bundle/member) it came from, when it was one of several


def limits_from_settings() -> Limits:
    return Limits(
        max_unpacked_bytes=settings.EXTADMIN_MAX_UNPACKED_BYTES,
        max_entries=settings.EXTADMIN_MAX_ENTRIES,
        max_ratio=settings.EXTADMIN_MAX_RATIO,
        max_entities=settings.EXTADMIN_MAX_ENTITIES,
    )


def import_policy_from_settings() -> dict[str, bool]:
    return effective_policy(settings.EXTADMIN_IMPORT_POLICY)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def import_plan(
    *, path: Path, also_importing: dict[str, str] | None = None, validate_only: bool = False,
    rollback: bool = False, unpack_into: Path | None = None,
) -> ImportPlan:
    """Every check of an import, with no side effect (validate-only stops here).

    ``also_importing`` maps name → version of packages imported together in the same bundle, which
    satisfy dependencies as if already present. ``validate_only`` words the warnings for a check
    that imports nothing ("would be imported"). ``rollback``: a retained version goes back in
    (``extadmin.rollback``), the one way to an older version; an uploaded downgrade is refused.
    ``unpack_into``: a private folder that validation also unpacks the zip into (``validate_package``).
    """
    validated = validate_package(path, limits=limits_from_settings(), unpack_into=unpack_into)
    meta = validated.metadata
    _check_lengths(meta)
    entries = [m.name for m in validated.plan.members if not m.is_dir]
    check_import_policy(import_policy_from_settings(), metadata=meta, entries=entries)
    version = parse_version(meta.version)
    previous = ExtensionPackage.objects.filter(name=meta.name).first()
    kind = Operation.Kind.IMPORT
    if previous is not None:
        if previous.state == ExtensionPackage.State.REMOVING:
            raise Conflict("validate", f"{meta.name} is being removed; wait for the removal to finish")
        installed = parse_version(previous.version)
        if rollback:
            _check_dependents(meta)
            kind = Operation.Kind.ROLLBACK
        elif version < installed:
            raise Conflict(
                "validate",
                f"{meta.name}:{previous.version} is installed; remove it before importing {meta.name}:{meta.version}",
            )
        else:
            kind = Operation.Kind.UPGRADE if version > installed else Operation.Kind.REIMPORT
    _check_dependencies(meta, also_importing or {})
    entity_collisions_check(meta=meta, together=also_importing or {})
    warnings = _check_ha_policy(meta, outcome="would be imported" if validate_only else "was imported")
    return ImportPlan(package=validated, kind=kind, previous=previous, warnings=warnings)


def _check_lengths(meta: PackageMetadata) -> None:
    """Refuse what the database's columns cannot hold, before any step runs.

    PostgreSQL would refuse the row in the middle of the import and SQLite would keep it whole.
    """
    def limit(model: type[Model], field: str) -> int:
        return getattr(model._meta.get_field(field), "max_length", None) or 0

    for label, value, most in (
        ("packageVersion", meta.version, limit(ExtensionPackage, "version")),
        ("vendor", meta.vendor, limit(ExtensionPackage, "vendor")),
        ("minimumThingWorxVersion", meta.minimum_platform_version, limit(ExtensionPackage, "minimum_platform_version")),
    ):
        if len(value) > most:
            raise Refusal("validate", f"metadata.xml: {label} is longer than {most} characters")
    for entity in meta.entities:
        for label, value, most in (
            ("type", entity.type, limit(Entity, "type")), ("name", entity.name, limit(Entity, "name")),
        ):
            if len(value) > most:
                reason = f"metadata.xml: an entity's {label} '{shown(value, 40)}' is longer than {most} characters"
                raise Refusal("validate", reason)


def _check_dependencies(meta: PackageMetadata, also_importing: dict[str, str], *, at_commit: bool = False) -> None:
    """Every dependency is installed (or imported together), active, and new enough.

    ``at_commit``: again inside the import's committing transaction, the dependencies' rows locked
    (on SQLite the transaction itself holds the write lock), so a removal of a dependency that
    committed meanwhile is seen here, and one that commits later sees this package as a dependent.
    """
    rows = ExtensionPackage.objects.filter(name__in=[d.name for d in meta.depends_on if d.name not in also_importing])
    if at_commit:
        rows = rows.select_for_update().order_by("name")  # one order: two imports never deadlock
    present = {name: (version, state) for name, version, state in rows.values_list("name", "version", "state")}
    present.update({name: (version, ExtensionPackage.State.ACTIVE) for name, version in also_importing.items()})
    refusal, step, meanwhile = (Refusal, "validate", "")
    if at_commit:
        refusal, step, meanwhile = (Conflict, "persist", " (it changed while this import ran); nothing was imported")
    for dep in meta.depends_on:
        have, state = present.get(dep.name, (None, None))
        wanted = f"{meta.name} depends on {dep.name}:{dep.version}"
        if have is None:
            raise refusal(step, f"{wanted}, which is not installed{meanwhile}")
        if state != ExtensionPackage.State.ACTIVE:
            raise refusal(step, f"{wanted}, which is being removed{meanwhile}")
        if parse_version(have) < parse_version(dep.version):
            raise refusal(step, f"{wanted}, but {dep.name}:{have} is installed{meanwhile}")


def _check_dependents(meta: PackageMetadata, *, at_commit: bool = False) -> None:
    """A rollback to ``meta.version`` leaves every installed dependent's dependsOn satisfied.

    ``at_commit``: again with the package's row locked, so a dependent's import committing meanwhile
    (it locks this row to check its dependencies) is seen, or sees the older version.
    """
    if at_commit:
        list(ExtensionPackage.objects.select_for_update().filter(name=meta.name).values_list("pk"))
    version = parse_version(meta.version)
    for dependent in package_dependents(name=meta.name):
        for dep in parse_depends_on(dependent.depends_on):
            if dep.name == meta.name and parse_version(dep.version) > version:
                raise Conflict(
                    "persist" if at_commit else "validate",
                    f"{dependent.name}:{dependent.version} depends on {meta.name}:{dep.version}; "
                    f"rolling {meta.name} back to {meta.version} would break it",
                )


def _check_ha_policy(meta: PackageMetadata, *, outcome: str) -> list[str]:
    if meta.ha_compatible:
        return []
    said = "does not say it is" if meta.ha_compatible is None else "is marked as not"
    # Read as the operator may write it in the environment ("DENY", "deny "): a near miss must not warn only.
    if settings.EXTADMIN_HA_COMPATIBILITY.strip().lower() == "deny":
        raise Refusal("validate", f"{meta.name} {said} safe for clusters (haCompatible) and the HA policy is deny")
    return [f"{meta.name} {said} safe for clusters (haCompatible); it {outcome} because the HA policy is warn"]


@dataclass
class ImportItem:
    """One package file to import; ``sha256`` when the caller already hashed it while receiving it.

    ``label`` names it in a refusal when it is one of several (a bundle's member, one of several
    files); None for a lone file, whose refusal needs no name.
    """

    path: Path
    sha256: str | None = None
    label: str | None = None
    signed: SignedFile | None = None  # None: a file given with no signature
    # The bundle this member came in, with the bundle's own signature: checked when there is one,
    # never stored (nodes receive the member's own archive, which only ``signed`` covers).
    bundle: SignedFile | None = None
    rollback: bool = False  # a retained version going back in (``extadmin.rollback``)


@dataclass(frozen=True)
class SignedFile:
    """The file a signature covers (a package, a bundle's member, or a bundle) and that signature's file."""

    path: Path
    signature: Path | None
    label: str | None = None  # names it in a refusal, as ``ImportItem.label``


@contextmanager
def refusing_as(label: str | None) -> Iterator[None]:
    """A refusal raised inside names ``label`` (see ``Refusal.naming``)."""
    try:
        yield
    except Refusal as refusal:
        refusal.naming(label)
        raise


def import_plans(
    *, items: list[ImportItem], validate_only: bool = False, unpack_into: Path | None = None,
) -> list[tuple[ImportItem, ImportPlan]]:
    """Validate packages imported together (a bundle, or several files) and order them by dependency.

    Each may depend on the others, as if they were already installed. No side effect (but for a
    lone package's files in ``unpack_into``, a private folder, when it is given).
    """
    check_imports_enabled(import_policy_from_settings())  # before a byte of any package is read
    if len(items) == 1:
        with refusing_as(items[0].label):
            return [(items[0], import_plan(
                path=items[0].path, validate_only=validate_only, rollback=items[0].rollback,
                unpack_into=unpack_into,
            ))]
    validated = []
    for item in items:
        with refusing_as(item.label):
            validated.append((item, validate_package(item.path, limits=limits_from_settings())))
    _check_ratio_together(items, [v for _, v in validated])
    together: dict[str, str] = {}
    for item, v in validated:
        if v.metadata.name in together:
            reason = f"{v.metadata.name} appears twice among the packages imported together"
            raise Refusal("validate", reason, file=item.label)
        together[v.metadata.name] = v.metadata.version
    entity_collisions_together([(item.label, v.metadata) for item, v in validated])
    by_name = {v.metadata.name: item for item, v in validated}
    order = order_by_dependencies(
        {v.metadata.name: [d.name for d in v.metadata.depends_on] for _, v in validated}
    )
    plans = []
    for name in order:
        with refusing_as(by_name[name].label):
            plan = import_plan(path=by_name[name].path, also_importing=together, validate_only=validate_only)
        plans.append((by_name[name], plan))
    return plans


def signatures_check(plans: list[tuple[ImportItem, ImportPlan]], *, validate_only: bool = False) -> None:
    """0b. Each package's own signature (a bundle's member: the ``.sig`` beside it in the bundle),
    and a bundle's own signature when one came with it, each file once.

    Under ``require`` a refusal names the file (the member); under ``warn`` each problem becomes
    the plan's warning; the package's own signature and its signer go into the plan, for step 3 to
    store, so that every node checks them over the very archive it receives.
    """
    mode = settings.EXTADMIN_SIGNATURES
    outcome = "would be imported" if validate_only else "was imported"
    plural = "would be imported" if validate_only else "were imported"
    seen: dict[Path, tuple[str, Checked]] = {}
    for item, plan in plans:
        bundle = item.bundle
        if bundle is not None and bundle.signature is not None and bundle.path not in seen:
            seen[bundle.path] = _signature_checked(mode, bundle)
            if seen[bundle.path][1].warning:
                plan.warnings.append(
                    f"the bundle {bundle.label}: {seen[bundle.path][1].warning}; its packages {plural} "
                    "because EXTADMIN_SIGNATURES is warn"
                )
        signed = item.signed or SignedFile(path=item.path, signature=None)
        if signed.path not in seen:
            seen[signed.path] = _signature_checked(mode, SignedFile(signed.path, signed.signature, item.label))
            if seen[signed.path][1].warning:
                plan.warnings.append(
                    f"{plan.metadata.name}: {seen[signed.path][1].warning}; it {outcome} because "
                    "EXTADMIN_SIGNATURES is warn"
                )
        plan.signature, plan.signer = seen[signed.path][0], seen[signed.path][1].signer


def _signature_checked(mode: str, signed: SignedFile) -> tuple[str, Checked]:
    """One file's signature as ``EXTADMIN_SIGNATURES`` says; a refusal names ``signed.label``."""
    signature = read_signature(signed.signature) if signed.signature and mode != "off" else None
    with refusing_as(signed.label):
        checked = signature_check(
            mode=mode, zip_path=signed.path, signature=signature, allowed_signers=settings.EXTADMIN_ALLOWED_SIGNERS,
        )
    return _stored(signature), checked


def _stored(signature: bytes | None) -> str:
    """What the package row keeps: an armored signature is ASCII; anything else is not kept."""
    if not signature or len(signature) > MAX_SIGNATURE_BYTES:
        return ""
    text = signature.decode("latin-1")
    # No NUL nor other control character: PostgreSQL refuses NUL in text.
    return text if text.isascii() and all(c.isprintable() or c in "\r\n\t" for c in text) else ""


def _check_ratio_together(items: list[ImportItem], validated: list[ValidatedPackage]) -> None:
    """A bundle of many packages each under the ratio check's floor can still be a zip bomb."""
    unpacked = sum(v.plan.total_size for v in validated)
    packed = sum(item.path.stat().st_size for item in items)
    what = f"the packages imported together would unpack to {unpacked} bytes from {packed} bytes of zips"
    check_ratio(unpacked, packed, limits=limits_from_settings(), what=what)


@logged_as(node="node_name")  # its lines name the node; the operation adds its package and id
def package_import(
    *,
    items: list[ImportItem],
    actor: Actor | None = None,
    node_name: str | None = None,
    storage_root: Path | None = None,
    rollout: dict[str, Any] | None = None,
) -> list[ImportResult]:
    """Import packages on this node (see the module docstring for the steps), all or nothing.

    Several packages (a bundle) go through steps 1–2 one by one in dependency order, then steps
    3–4 for all of them in one transaction: either every one reaches the database or none does.
    Raises ``Refusal`` (or ``Conflict``) naming the step and the reason; then nothing is kept.
    ``rollout``: the import's own rollout fields (``rollouts.policy``) over the cluster's default.
    """
    actor = actor or Actor()
    policy = import_policy(rollout)  # refused before a byte is read
    node_name = node_name or settings.EXTADMIN_NODE
    node_name_check(name=node_name, setting="EXTADMIN_NODE")  # before a byte is written anywhere
    storage = NodeStorage(storage_root or settings.EXTADMIN_STORAGE)
    with ExitStack() as locks:
        ahead = _archive_ahead(items, locks)
        plans = _checked_and_locked(locks, items, storage, node_name)  # 0. validate, 0b. signature
        operations_mark_interrupted(node=node_name)
        recorders = [
            OperationRecorder.start(
                kind=plan.kind, package_name=plan.metadata.name, actor=actor, node=node_name,
                version=plan.metadata.version, previous_version=plan.previous.version if plan.previous else "",
                warnings="\n".join(plan.warnings),
            )
            for _, plan in plans
        ]
        try:
            done = _run_steps(plans, recorders, storage, node_name, actor, policy, ahead)
        except BaseException as exc:
            raise _failure(exc, plans, recorders) from None
        results = []
        for (package, digest), rec, (item, plan) in zip(done, recorders, plans, strict=True):
            rec.operation.sha256 = digest  # the audit names exactly which zip was imported
            results.append(
                ImportResult(package=package, operation=rec.finish(), plan=plan, sha256=digest, label=item.label)
            )
        return results


def _archive_ahead(items: list[ImportItem], exits: ExitStack) -> ArchiveAhead | None:
    """A lone package's zip starts on its way into the database now (``extadmin.archive_ahead``).

    Not a bundle's (each member would need its own transaction), and not a rollback's, whose bytes
    are a retained version's already; and only once imports are enabled at all.
    """
    if len(items) != 1 or items[0].rollback:
        return None
    check_imports_enabled(import_policy_from_settings())
    return ArchiveAhead.start(items[0].path, exits)  # abandoned when ``exits`` closes


def _checked_and_locked(
    locks: ExitStack, items: list[ImportItem], storage: NodeStorage, node_name: str,
) -> list[tuple[ImportItem, ImportPlan]]:
    """Steps 0 and 0b, then this node's storage claimed and every package's folder locked.

    A lone package is unpacked by validation itself, beside the storage (nothing in it changes
    before every check passed); that folder goes on any refusal, or into staging/ under the lock.
    """
    unpacked = storage.new_private_unpack() if len(items) == 1 else None
    if unpacked is not None:
        locks.callback(storage.discard, unpacked)
    plans = import_plans(items=items, unpack_into=unpacked)  # 0. validate
    signatures_check(plans)  # 0b. signature
    _claim_storage(storage, node_name)
    for _, plan in plans:
        _lock_folder(locks, storage, plan.metadata.name)
        storage.clean_leftovers_of(plan.metadata.name)
    if unpacked is not None and plans[0][1].package.unpacked_sha256 is not None:
        # Under the lock, into staging/ where leftover cleanup finds it if this process dies.
        plans[0][1].staged = storage.adopt_staging(unpacked, plans[0][1].metadata.name)
    return plans


def _failure(
    exc: BaseException, plans: list[tuple[ImportItem, ImportPlan]], recorders: list[OperationRecorder]
) -> BaseException:
    """Record the failure on every unfinished operation; return what to raise.

    That is the refusal of the member whose own step failed, naming it: in a bundle, the members
    before it passed every step and are only backed out, so their last step is not the cause.
    """
    labels = {id(rec): item.label for rec, (item, _) in zip(recorders, plans, strict=True)}
    pending = [r for r in recorders if r.operation.finished_at is None]
    pending.sort(key=lambda r: not (r.steps and r.steps[-1].outcome == OperationStep.Outcome.FAILED))
    failed = [r.fail(exc, backed_out=True) for r in pending]
    if not failed:
        return exc
    if isinstance(failed[0], Refusal):
        failed[0].naming(labels[id(pending[0])])
    return failed[0]


def _lock_folder(locks: ExitStack, storage: NodeStorage, name: str) -> None:
    """This node's folder lock of ``name``, or a refusal at once: of two imports of one package on
    one node, one wins and the other hears so at once, never waiting behind the first."""
    try:
        locks.enter_context(storage.lock(name, wait=False))
    except LockBusy as busy:
        raise Conflict("lock", f"{busy.reason}; nothing was imported, try again") from None


def _claim_storage(storage: NodeStorage, node_name: str) -> None:
    """Refuse to write into a storage folder that belongs to another node: every node has its own."""
    try:
        storage_claim(storage=storage, node_name=node_name, exclusive=False).release()
    except Refusal as exc:
        raise Refusal("storage", exc.reason) from None


def _run_steps(
    plans: list[tuple[ImportItem, ImportPlan]], recorders: list[OperationRecorder],
    storage: NodeStorage, node_name: str, actor: Actor, policy: Policy, ahead: ArchiveAhead | None,
) -> list[tuple[ExtensionPackage, str]]:
    run = _StepsRun(
        plans=plans, recorders=recorders, storage=storage, node_name=node_name, actor=actor, policy=policy,
        ahead=ahead,
    )
    try:
        run.unpack()  # 1. checksum, 2. unzip: each member into its folder, the old one kept aside
        run.persist()  # 3. persist, 4. archive: every member in one transaction
        faults.checkpoint("import.after_commit")
    except BaseException as exc:
        if not run.committed:
            run.back_out()
            raise
        run.keep()
        if not isinstance(exc, Exception):
            raise
        log.exception(
            "the import of %s was committed; what failed after the commit is ignored",
            ", ".join(plan.metadata.name for _, plan in plans),
        )
        return run.done()
    run.keep()
    return run.done()


@dataclass
class _StepsRun:
    """Steps 1–4 of one import (one package, or every member of a bundle), and what to back out."""

    plans: list[tuple[ImportItem, ImportPlan]]
    recorders: list[OperationRecorder]
    storage: NodeStorage
    node_name: str
    actor: Actor
    policy: Policy = field(default_factory=Policy)
    t0: float = field(default_factory=time.perf_counter)
    started: datetime = field(default_factory=timezone.now)
    swaps: list[Swap] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    packages: list[ExtensionPackage] = field(default_factory=list)
    staging: Path | None = None  # the folder being built, until it is swapped in
    committed: bool = False
    ahead: ArchiveAhead | None = None  # the zip already on its way into the database

    def unpack(self) -> None:
        for i, ((item, plan), rec) in enumerate(zip(self.plans, self.recorders, strict=True), start=1):
            name = plan.metadata.name
            phase_reached("unpacking", f"{name} ({i} of {len(self.plans)})" if len(self.plans) > 1 else name)
            # Validation may have unpacked and hashed it already, in the same read: then the
            # checksum is that read's and the unzip step only swaps the folder in.
            unpacked, plan.staged = plan.staged, None
            self.staging = unpacked or self.storage.new_staging(name)
            with rec.step(1, "checksum"):
                digest = (plan.package.unpacked_sha256 if unpacked else None) or item.sha256 or file_sha256(item.path)
                _refuse_quarantined(digest)
                write_chk(self.staging, name, digest)
                self.digests.append(digest)
                faults.checkpoint("import.after_checksum")
            with rec.step(2, "unzip"):
                if unpacked is None:
                    extract_zip(
                        item.path, self.staging, plan=plan.package.plan, limits=limits_from_settings(),
                        keep=frozenset({f"{name}.chk"}),
                    )
                sync_state_mark_replacing(node_name=self.node_name, name=name)
                self.swaps.append(self.storage.swap_in(self.staging, name))
                self.staging = None
                faults.checkpoint("import.after_unzip")

    def persist(self) -> None:
        phase_reached("saving", ", ".join(p.metadata.name for _, p in self.plans))  # before the transaction
        # In the transaction that holds the chunks sent ahead, or (none, or sending failed) in one of its own.
        if self.ahead is not None and self.ahead.finish(self._persist_in_transaction):
            return
        with transaction.atomic():
            self._persist_in_transaction(None)

    def _persist_in_transaction(self, staged: Staged | None) -> None:
        """Steps 3–4 of every member, inside the transaction that commits them.

        ``staged``: the lone package's chunks, sent ahead in this transaction.
        """
        together = {p.metadata.name: p.metadata.version for _, p in self.plans} if len(self.plans) > 1 else {}
        # The first hook, so it runs first once the commit is done: from then on every other node
        # installs these packages, so this node keeps its new folders whatever fails next.
        transaction.on_commit(self._mark_committed)
        entity_declarations_lock()  # first, before any row lock (see there)
        node: Node | None = None
        for (item, plan), rec, digest in zip(self.plans, self.recorders, self.digests, strict=True):
            size = item.path.stat().st_size
            with rec.step(3, "persist"):
                # Dependencies must hold at commit, not only at validation: a removal may have
                # committed while this import unzipped.
                _check_dependencies(plan.metadata, together, at_commit=True)
                if plan.kind == Operation.Kind.ROLLBACK:
                    _check_dependents(plan.metadata, at_commit=True)
                entity_collisions_check(meta=plan.metadata, together=together, at_commit=True)
                # Inside the step, so a lost connection here is reported as "persist", not "unzip".
                node = node or node_get_or_register(name=self.node_name, storage=self.storage.root)
                package = _persist_package(plan, digest, size, self.node_name, self.actor)
                sync_state_record_local_install(
                    node=node, package=package, started_at=self.started,
                    duration_ms=(time.perf_counter() - self.t0) * 1000,
                )
                node_seen(name=self.node_name)  # an import on a node is its proof of life
                # Before step 4 replaces the previous archive, whose manifest waiting nodes still prove.
                rollout_create(package=package, previous=plan.previous, policy=self.policy,
                               importing_node=self.node_name, by=self.actor.username)
                faults.checkpoint("import.after_persist")
            with rec.step(4, "archive"):
                manifest = plan.package.plan.manifest()
                _refuse_quarantined(digest, step="archive")  # quarantined while this import ran
                archive_replace(
                    package=package, previous=plan.previous, path=item.path, sha256=digest, size=size,
                    manifest=manifest, staged=staged,
                )
                faults.checkpoint("import.after_archive")
            self.packages.append(package)
        nodes_nudge_on_commit(exclude=self.node_name)
        webhook_events.packages_imported(packages=self.packages, node=self.node_name, by=self.actor.username)

    def _mark_committed(self) -> None:
        self.committed = True

    def back_out(self) -> None:
        """Nothing reached the database: every folder goes back to what it was."""
        for swap in reversed(self.swaps):
            restored = swap.retired is not None
            swap.rollback()
            if restored:
                _show_installed_again(self.node_name, swap.target.name)
        if self.staging is not None:
            self.storage.discard(self.staging)

    def keep(self) -> None:
        for swap in self.swaps:
            swap.commit()

    def done(self) -> list[tuple[ExtensionPackage, str]]:
        return list(zip(self.packages, self.digests, strict=True))


def _refuse_quarantined(digest: str, *, step: str = "checksum") -> None:
    """These bytes were quarantined (``extadmin.quarantine``): no import brings them back."""
    reason = quarantine_reason(digest)
    if reason is not None:
        raise Conflict(step, f"quarantined: {reason}")


def _show_installed_again(node_name: str, name: str) -> None:
    try:
        sync_state_restore_installed(node_name=node_name, name=name)
    except DatabaseError:  # the database is what failed: "syncing" stays, and the next sync proves it
        log.warning("could not restore the state of %s on %s after the backout", name, node_name)


def _persist_package(
    plan: ImportPlan, digest: str, size: int, node_name: str, actor: Actor
) -> ExtensionPackage:
    meta = plan.metadata
    fields = {
        "version": meta.version,
        "vendor": meta.vendor,
        "description": meta.description,
        "minimum_platform_version": meta.minimum_platform_version,
        "depends_on": meta.depends_on_raw,
        "build_number": meta.build_number,
        "ha_compatible": meta.ha_compatible,
        "sha256": digest,
        "size": size,
        "state": ExtensionPackage.State.ACTIVE,
        "imported_by": actor.user if getattr(actor.user, "pk", None) else None,
        # The same bytes again change nothing the cluster must converge to: keep the import's time.
        "imported_at": plan.previous.imported_at if plan.previous and plan.previous.sha256 == digest
        else timezone.now(),
        "imported_on_node": node_name,
        "signature": plan.signature,
        "signer": plan.signer.principal if plan.signer else "",
        "signer_key": plan.signer.fingerprint if plan.signer else "",
    }
    if plan.previous is None:
        try:
            with transaction.atomic():
                package = ExtensionPackage.objects.create(name=meta.name, **fields)
        except IntegrityError:
            raise Conflict(
                "persist", f"another import of {meta.name} finished first; reload and try again"
            ) from None
    else:
        # Claim the row only if nobody changed it since validation ("another process got there first").
        claimed = ExtensionPackage.objects.filter(
            pk=plan.previous.pk, sha256=plan.previous.sha256, version=plan.previous.version,
            state=ExtensionPackage.State.ACTIVE,
        ).update(**fields)
        if claimed != 1:
            raise Conflict("persist", f"another import or removal of {meta.name} finished first; reload and try again")
        package = ExtensionPackage.objects.get(pk=plan.previous.pk)
        package.entities.all().delete()
    seen: set[tuple[str, str]] = set()
    entities = []
    for e in meta.entities:
        if (e.type, e.name) not in seen:
            seen.add((e.type, e.name))
            entities.append(Entity(package=package, type=e.type, name=e.name))
    Entity.objects.bulk_create(entities)
    return package
