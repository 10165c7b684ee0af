"""A property-based state machine over a three-node cluster, in one process (fast).

Random imports, upgrades, re-imports, removals, rollbacks, quarantines (with and without rollback),
imports under a rollout policy (a random canary, batches of 1 or 2, max-failures 0..2, activation
each or together), rollout pause/resume/abort, a node's health probe failing or passing for its next
installs (a real probe script reading a per-node file), an operator's "retry now" on a node, the
console moving rollouts on, tampering with a node's folder (alter a file, flip a byte, delete the
folder, delete or falsify the ``.chk``), crashes (a fault raised at a random import, removal,
rollback or sync step) and syncs — calling the services and ``nodes.reconcile`` directly (a node's
pass is what its agent runs, its rollout report included).

A failed checksum waits for its retry (``nodes.retries``): the backoff is set longer than any run,
so a node's own passes never retry it and only "retry now" (``nodes.actions.node_retry``) or a
manual pass does; a pass with no fault injected fails only where the model says it may (the
node's probe fails; a dependency waits for its retry; a from-version no longer retained).

Invariants:
* at every step, no node shows "installed" for a checksum or files its disk does not have
  (except for what was tampered with by hand since that node last synced: it cannot know yet);
* a refused or failed import or removal changes nothing in the database;
* after every node synced (contents verified), every node's disk equals the database: the same
  packages, each folder exactly the archive's files, each ``.chk`` the archive's SHA-256 — except a
  package whose checksum is quarantined, which no node installs nor removes, each saying so;
* at every step, no node holds a quarantined checksum unless it held it when it was quarantined
  (so no pass ever installs one), and after a pass a node that still holds the quarantined current
  version is flagged as holding it;
* at every step, for the rollout in force of each package (the one its current import made): no
  more than its batch size N nodes are changing at once (admitted — batch at most the rollout's —
  and not yet installed nor failed, or holding on disk neither the old nor the new version); a
  node not admitted never holds the new version (unless it already held it) and, after its own
  pass, holds the rollout's from-version, its ``.chk`` and files exactly; a node the rollout shows
  ``installed`` holds the new version's checksum; every rollout's state is one of its words;
* at the end, every live rollout is resumed and driven to completion (or was aborted: then every
  node holds the from-version exactly), and every disk equals the database again.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from extadmin.importing import ImportItem, file_sha256, package_import
from extadmin.models import ExtensionPackage, Operation, Quarantine, RetainedVersion
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal
from extadmin.quarantine import package_quarantine
from extadmin.removal import package_remove
from extadmin.rollback import package_rollback
from extadmin.storage import NodeStorage
from nodes.actions import node_retry
from nodes.convergence import quarantine_words
from nodes.models import Node, SyncRun, SyncState
from nodes.reconcile import reconcile
from nodes.retries import retry_due
from nodes.services import node_seen
from rollouts.engine import rollouts_advance_all
from rollouts.models import Rollout, RolloutNode
from rollouts.rules import LIVE_OR_ABORTED
from rollouts.services import latest_rollouts, rollout_control
from tests.packages import build_package

NODES = ["a", "b", "c"]
NAMES = ["Alpha", "Beta"]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]
IMPORT_FAULTS = [None, None, "import.after_checksum", "import.after_unzip", "import.after_persist",
                 "import.after_archive"]
REMOVE_FAULTS = [None, None, "remove.after_undeploy", "remove.after_archive", "remove.after_package"]
SYNC_FAULTS = [None, None, None, "sync.after_fetch", "sync.after_unzip", "sync.after_swap", "sync.before_remove"]
CONTROLS = ["pause", "resume", "abort"]
DONE = (RolloutNode.State.INSTALLED, RolloutNode.State.FAILED, RolloutNode.State.REVERTED)
ROLLOUT_WORDS = set(Rollout.State.values)
_probe_dir = Path(tempfile.mkdtemp(prefix="extadmin-sm-probe-"))
PROBE = _probe_dir / "probe.sh"
PROBE.write_text(
    "#!/bin/sh\n"
    f'if [ -e "{_probe_dir}/fail-$EXTADMIN_NODE" ]; then\n'
    '  echo "$EXTADMIN_PACKAGE $EXTADMIN_VERSION is unwell" >&2; exit 1\n'
    "fi\n"
)
PROBE.chmod(0o755)
TAMPER = ["alter", "flip", "delete_folder", "delete_chk", "wrong_chk"]
EXAMPLES = int(os.environ.get("EXTADMIN_STATE_MACHINE_EXAMPLES", "25"))
TOTALS: dict[str, int] = {}

_zips: dict[tuple[str, str], Path] = {}
_manifests: dict[str, list[list]] = {}
_zip_dir = Path(tempfile.mkdtemp(prefix="extadmin-sm-"))


def package_zip(name: str, version: str) -> Path:
    """One zip per (name, version) for the whole run: a re-import is byte-identical."""
    if (name, version) not in _zips:
        depends = "Alpha:1.0.0" if name == "Beta" else ""
        files = {
            f"lib/{name.lower()}.jar": f"{name} {version} ".encode() * (200 + 50 * VERSIONS.index(version)),
            f"ui/{name}/{name.lower()}.js": f"/* {name} {version} */".encode(),
        }
        if version != "1.0.0":
            files[f"lib/extra-{version}.jar"] = version.encode() * 300
        folder = _zip_dir / version
        folder.mkdir(exist_ok=True)
        path = build_package(folder, name, version, depends_on=depends, files=files)
        with zipfile.ZipFile(path) as zf:
            _manifests[file_sha256(path)] = [
                [i.filename, i.file_size, i.CRC] for i in zf.infolist() if not i.is_dir()
            ]
        _zips[(name, version)] = path
    return _zips[(name, version)]


class Faults:
    def __init__(self, point: str | None) -> None:
        self.point = point

    def __enter__(self) -> None:
        if self.point:
            os.environ["EXTADMIN_FAULTS"] = f"{self.point}=raise"

    def __exit__(self, *exc: object) -> None:
        os.environ.pop("EXTADMIN_FAULTS", None)


def database() -> dict[str, tuple[str, str, str]]:
    return {p.name: (p.version, p.sha256, p.state) for p in ExtensionPackage.objects.all()}


def retained() -> set[tuple[str, str, str]]:
    return set(RetainedVersion.objects.values_list("package__name", "version", "sha256"))


def quarantined() -> set[str]:
    return set(Quarantine.objects.values_list("sha256", flat=True))


class Cluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        for model in (RolloutNode, Rollout, SyncState, SyncRun, Node, ExtensionPackage, Operation, Quarantine):
            model.objects.all().delete()
        self.root = Path(tempfile.mkdtemp(prefix="extadmin-sm-nodes-"))
        self.storages = {n: NodeStorage(self.root / n) for n in NODES}
        self.tampered: dict[str, dict[str, str]] = {n: {} for n in NODES}
        self.counts = {"steps": 0, "faults": 0, "tampered": 0, "syncs": 0, "rollbacks": 0, "quarantines": 0,
                       "rollouts": 0, "probe_failures": 0, "controls": 0, "completed": 0, "halted": 0,
                       "retries": 0, "advances": 0}
        for flag in _probe_dir.glob("fail-*"):
            flag.unlink()
        # rollout id -> each node's .chk when it was created: a node not admitted keeps it (or the from-version).
        self.chk_at_rollout: dict[int, dict[str, str | None]] = {}
        # (node, package, checksum) each node held when that checksum was quarantined: only these may stay.
        self.held_at_quarantine: set[tuple[str, str, str]] = set()

    def teardown(self) -> None:
        try:
            os.environ.pop("EXTADMIN_FAULTS", None)
            for flag in _probe_dir.glob("fail-*"):
                flag.unlink()  # every probe passes again: the cluster can converge
            self.finish_every_rollout()
            self.sync_every_node()  # quiescence: every node synced once more, then disks == database
            for node in NODES:  # converged: one more pass of each node changes nothing
                again = reconcile(node_name=node, storage_root=self.storages[node].root, trigger="manual",
                                  verify_contents=True)
                assert again.ok and not again.actions, (node, again.actions, self.in_force())
            for key, value in self.counts.items():
                TOTALS[key] = TOTALS.get(key, 0) + value
            TOTALS["examples"] = TOTALS.get("examples", 0) + 1
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @initialize(rollout=st.one_of(st.none(), st.fixed_dictionaries({
        "node": st.sampled_from(NODES), "canary": st.sampled_from([None, *NODES]), "batch": st.sampled_from([1, 2]),
        "max_failures": st.sampled_from([0, 1, 2]), "activation": st.sampled_from(["each", "together"]),
    })), unwell=st.sets(st.sampled_from(NODES), max_size=2))
    def a_cluster_with_one_package(self, rollout: dict | None, unwell: set[str]) -> None:
        """Start from Alpha installed everywhere, so tampering and upgrades have something to act on;
        upgraded once, so a rollback and a quarantine of a retained version can happen from the first step;
        mostly with Alpha 2.0.0 then being rolled out (and the probe of some nodes failing), so rollouts meet
        every other rule from the first step."""
        for version in ("1.0.0", "1.1.0"):
            package_import(items=[ImportItem(path=package_zip("Alpha", version))], actor=Actor(), node_name="a",
                           storage_root=self.storages["a"].root)
        for node in NODES:
            assert reconcile(node_name=node, storage_root=self.storages[node].root, trigger="startup",
                             verify_contents=True).ok
        for node in sorted(unwell):  # their health probe fails from now on, until a rule says otherwise
            self.health_probe(node=node, failing=True)
        if rollout is not None:
            self.import_with_rollout(name="Alpha", version="2.0.0", **rollout)
            assert Rollout.objects.exists()

    # --- operator actions -----------------------------------------------------------------
    @rule(node=st.sampled_from(NODES), name=st.sampled_from(NAMES), version=st.sampled_from(VERSIONS),
          fault=st.sampled_from(IMPORT_FAULTS))
    def import_(self, node: str, name: str, version: str, fault: str | None) -> None:
        self.counts["steps"] += 1
        before = database()
        path = package_zip(name, version)
        try:
            with Faults(fault):
                package_import(items=[ImportItem(path=path)], actor=Actor(), node_name=node,
                               storage_root=self.storages[node].root)
        except Refusal:
            assert database() == before, "a refused import changed the database"
            self.counts["faults"] += bool(fault)
            return
        assert fault is None, f"the import went through its fault {fault}"
        assert database()[name][:2] == (version, file_sha256(path))

    @rule(node=st.sampled_from(NODES), name=st.sampled_from(NAMES), fault=st.sampled_from(REMOVE_FAULTS))
    def remove(self, node: str, name: str, fault: str | None) -> None:
        self.counts["steps"] += 1
        before = database()
        try:
            with Faults(fault):
                package_remove(name=name, actor=Actor(), node_name=node, storage_root=self.storages[node].root)
        except Refusal:
            after = database()
            # A failed removal keeps everything, except that step 1 (undeploy) may have marked it removing.
            assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}
            self.counts["faults"] += bool(fault)
            return
        assert fault is None and name not in database()

    @precondition(lambda self: RetainedVersion.objects.exists())
    @rule(node=st.sampled_from(NODES), fault=st.sampled_from([None, *IMPORT_FAULTS]), data=st.data())
    def rollback(self, node: str, fault: str | None, data: st.DataObject) -> None:
        """To the previous version, or a named retained one (a quarantined one is refused)."""
        name = data.draw(st.sampled_from(sorted({r[0] for r in retained()})))
        to = data.draw(st.sampled_from([None, *sorted({r[1] for r in retained() if r[0] == name})]))
        self.counts["steps"] += 1
        before, kept = database(), retained()
        target = next((r for r in sorted(kept) if r[0] == name and r[1] == to), None)
        try:
            with Faults(fault):
                package_rollback(name=name, to=to, actor=Actor(), node_name=node, storage_root=self.storages[node].root)
        except Refusal:
            assert (database(), retained()) == (before, kept), "a refused rollback changed the database"
            self.counts["faults"] += bool(fault)
            return
        assert fault is None, f"the rollback went through its fault {fault}"
        self.counts["rollbacks"] += 1  # the ones that went through
        now = database()[name]
        assert now[1] not in quarantined(), "rolled back to a quarantined checksum"
        if target is not None:
            assert now[:2] == (target[1], target[2])
        assert (name, before[name][0], before[name][1]) in retained(), "the version rolled back from was not kept"

    @precondition(lambda self: ExtensionPackage.objects.exists())
    @rule(rollback=st.booleans(), data=st.data())
    def quarantine(self, rollback: bool, data: st.DataObject) -> None:
        """The current or a retained version of a package (or one never kept: refused), rolled back or not."""
        current = database()
        name = data.draw(st.sampled_from(sorted(current)))
        kept = sorted({current[name][0], *(r[1] for r in retained() if r[0] == name)})
        version = data.draw(st.sampled_from([*kept, "9.9.9"]))
        self.counts["steps"] += 1
        held = {(n, pkg, s.read_chk(pkg)) for n, s in self.storages.items() for pkg in s.installed_names()}
        before = quarantined()
        # Refused: nothing was quarantined, or it was and only the rollback after it was refused.
        with contextlib.suppress(Refusal):
            package_quarantine(name=name, version=version, reason="bad", rollback=rollback, node_name="a",
                               storage_root=self.storages["a"].root)
        new = quarantined() - before
        self.counts["quarantines"] += bool(new)
        self.held_at_quarantine |= {h for h in held if h[2] in new}

    @rule(node=st.sampled_from(NODES), name=st.sampled_from(NAMES), version=st.sampled_from(VERSIONS),
          canary=st.sampled_from([None, *NODES]), batch=st.sampled_from([1, 2]),
          max_failures=st.sampled_from([0, 1, 2]), activation=st.sampled_from(["each", "together"]))
    def import_with_rollout(self, node: str, name: str, version: str, canary: str | None, batch: int,
                            max_failures: int, activation: str) -> None:
        """An import under the import's own rollout policy (max-failures 0: never halt)."""
        self.counts["steps"] += 1
        for n in NODES:
            node_seen(name=n)  # every node online: each gets its place in the rollout
        before, path = database(), package_zip(name, version)
        held = {n: s.read_chk(name) for n, s in self.storages.items()}
        newest = Rollout.objects.order_by("-id").values_list("id", flat=True).first() or 0
        fields = {"canary": canary or "", "batch": batch, "max_failures": max_failures or "", "activation": activation}
        try:
            package_import(items=[ImportItem(path=path)], actor=Actor(), node_name=node,
                           storage_root=self.storages[node].root, rollout=fields)
        except Refusal:
            assert database() == before, "a refused import changed the database"
            assert not Rollout.objects.filter(id__gt=newest).exists(), "a refused import made a rollout"
            return
        made = Rollout.objects.filter(id__gt=newest).first()
        if made is None:  # the same bytes again: nothing changes, so nothing is rolled out
            assert before[name][1] == file_sha256(path)
            return
        self.counts["rollouts"] += 1
        self.chk_at_rollout[made.pk] = held
        assert (made.sha256, made.batch_size, made.max_failures or 0, made.activation) == (
            file_sha256(path), batch, max_failures, activation)
        assert made.from_sha256 == (before[name][1] if name in before else "")

    @rule(node=st.sampled_from(NODES), failing=st.booleans())
    def health_probe(self, node: str, failing: bool) -> None:
        """The node's health probe fails (exit 1) or passes for its next installs."""
        flag = _probe_dir / f"fail-{node}"
        if failing:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)
        self.counts["steps"] += 1

    @precondition(lambda self: SyncState.objects.filter(state=SyncState.State.FAILED).exists())
    @rule(node=st.sampled_from(NODES), one=st.booleans(), data=st.data())
    def retry_now(self, node: str, one: bool, data: st.DataObject) -> None:
        """An operator's "retry now" on a node (or one package there): its failed checksums due at once."""
        failed = sorted(SyncState.objects.filter(node__name=node, state=SyncState.State.FAILED)
                        .exclude(desired_sha256="").values_list("package_name", flat=True))
        package = data.draw(st.sampled_from(failed)) if one and failed else None
        self.counts["steps"] += 1
        try:
            acted = node_retry(name=node, actor=Actor(), package=package)
        except Conflict:
            assert not failed, f"retry now refused on {node} although {failed} failed"
            return
        assert acted.packages == ([package] if package else failed)
        self.counts["retries"] += 1
        due = SyncState.objects.filter(node__name=node, package_name__in=acted.packages)
        assert all(s.failures == 0 and s.next_retry_at is None for s in due)

    @precondition(lambda self: Rollout.objects.exists())
    @rule()
    def advance_rollouts(self) -> None:
        """The console reads the rollouts (and so moves each on as far as it goes)."""
        rollouts_advance_all()
        for r in latest_rollouts():
            assert r.state in ROLLOUT_WORDS, r.state
        self.counts["advances"] += 1
        self.counts["steps"] += 1

    @precondition(lambda self: Rollout.objects.exists())
    @rule(action=st.sampled_from(CONTROLS), data=st.data())
    def control(self, action: str, data: st.DataObject) -> None:
        """Pause, resume or abort a package's latest rollout (refused when its state does not allow it)."""
        name = data.draw(st.sampled_from(sorted(set(Rollout.objects.values_list("package_name", flat=True)))))
        self.counts["steps"] += 1
        before = list(Rollout.objects.filter(package_name=name).values_list("id", "state", "batch", "reason"))
        try:
            shown = rollout_control(name=name, action=action, actor=Actor())
        except Refusal:
            after = list(Rollout.objects.filter(package_name=name).values_list("id", "state", "batch", "reason"))
            assert after == before, "a refused rollout control changed a rollout"
            return
        self.counts["controls"] += 1
        if action == "abort":
            assert shown["state"] == Rollout.State.ABORTED

    @precondition(lambda self: any(s.installed_names() for s in self.storages.values()))
    @rule(node=st.sampled_from(NODES), how=st.sampled_from(TAMPER), data=st.data())
    def tamper(self, node: str, how: str, data: st.DataObject) -> None:
        storage = self.storages[node]
        names = storage.installed_names()
        if not names:
            return
        name = data.draw(st.sampled_from(names))
        folder = storage.package_dir(name)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != f"{name}.chk")
        if how == "alter" and files:
            with files[0].open("ab") as f:
                f.write(b"tampered")
        elif how == "flip" and files:
            data_ = bytearray(files[-1].read_bytes() or b"\0")
            data_[0] ^= 0xFF
            files[-1].write_bytes(bytes(data_))
        elif how == "delete_folder":
            shutil.rmtree(folder)
        elif how == "delete_chk":
            storage.chk_path(name).unlink(missing_ok=True)
        elif how == "wrong_chk" and storage.chk_path(name).exists():
            storage.chk_path(name).write_text("0" * 64 + "\n")
        self.tampered[node][name] = how
        self.counts["tampered"] += 1
        self.counts["steps"] += 1

    @rule(node=st.sampled_from(NODES), contents=st.booleans(), fault=st.sampled_from(SYNC_FAULTS))
    def sync(self, node: str, contents: bool, fault: str | None) -> None:
        with Faults(fault):
            result = reconcile(node_name=node, storage_root=self.storages[node].root, trigger="periodic",
                               verify_contents=contents)
        self.counts["steps"] += 1
        self.counts["syncs"] += 1
        self.counts["faults"] += bool(fault)
        if fault is None:
            self.assert_only_expected_failures(node, result.failures)
            # It has looked at everything now: what it missed on a quick pass is only a flipped byte.
            # A repair that failed (its probe said no) put the damaged copy back: still tampered.
            self.tampered[node] = {k: v for k, v in self.tampered[node].items()
                                   if (v == "flip" and not contents) or k in result.failures}
            self.assert_holders_of_quarantined_bytes_say_so(node)
            self.assert_nodes_not_admitted_hold_the_previous_version(node, contents=contents, failed=result.failures)

    @rule()
    def sync_every_node(self) -> None:
        """A manual pass of every node (``sync_node``: retries what failed); then, unless a node's probe
        or a missing retained version failed something, every disk equals the database."""
        failed = False
        for node in NODES:
            result = reconcile(node_name=node, storage_root=self.storages[node].root, trigger="manual",
                               verify_contents=True)
            self.assert_only_expected_failures(node, result.failures)
            failed = failed or not result.ok
            self.tampered[node] = {k: v for k, v in self.tampered[node].items() if k in result.failures}
            self.counts["syncs"] += 1
            self.assert_holders_of_quarantined_bytes_say_so(node)
            self.assert_nodes_not_admitted_hold_the_previous_version(node, contents=True, failed=result.failures)
        if not failed:
            self.assert_every_disk_equals_the_database()

    def assert_only_expected_failures(self, node: str, failures: dict[str, str]) -> None:
        """A pass without a fault fails a package only for a reason the model knows of."""
        probe_fails = (_probe_dir / f"fail-{node}").exists()
        kept = {r[2] for r in retained()}
        for name, reason in failures.items():
            if reason.startswith("health probe exit 1: ") and probe_fails:
                self.counts["probe_failures"] += 1
                continue
            waits = re.fullmatch(r"waits for (.+), which could not be installed", reason)
            if waits:
                # Each dependency failed in this pass, or failed before and waits for its retry (or gave up).
                for dep in waits.group(1).split(", "):
                    s = SyncState.objects.get(node__name=node, package_name=dep)
                    assert s.state == SyncState.State.FAILED, (node, name, reason, dep, s.state)
                    assert dep in failures or not retry_due(s, desired_sha256=s.desired_sha256, now=timezone.now()), (
                        node, name, reason, dep, s.next_retry_at)
                continue
            gone = re.fullmatch(r"(\S+) (\S+) is no longer retained in the database .*", reason)
            if gone:  # a rollout's from-version evicted by EXTADMIN_KEEP_VERSIONS: nothing to fetch
                assert not any(r.package_name == name and r.from_version == gone.group(2)
                               and r.from_sha256 in kept for r in self.in_force()), (node, reason)
                continue
            raise AssertionError(f"{node}: {name} failed without a cause the model knows: {reason}")

    def finish_every_rollout(self) -> None:
        """Quiescence for rollouts: resume what is paused or halted, and pass until each completed (or was aborted)."""
        for _ in range(3 * len(NODES)):
            live = [r for r in self.in_force() if r.state != Rollout.State.ABORTED and r.sha256 not in quarantined()]
            if not live:
                break
            for r in live:
                if r.state in (Rollout.State.PAUSED, Rollout.State.HALTED):
                    self.counts["halted"] += r.state == Rollout.State.HALTED
                    rollout_control(name=r.package_name, action="resume", actor=Actor())
            for node in NODES:
                assert reconcile(node_name=node, storage_root=self.storages[node].root, trigger="manual",
                                 verify_contents=True).ok
            self.tampered = {n: {} for n in NODES}
            self.counts["completed"] += sum(
                1 for r in live if Rollout.objects.get(pk=r.pk).state == Rollout.State.COMPLETED)
        # A rollout of a quarantined version never completes: no node installs those bytes (quarantine wins).
        stuck = [(r.package_name, r.version, r.state, r.batch, r.reason) for r in self.in_force()
                 if r.state != Rollout.State.ABORTED and r.sha256 not in quarantined()]
        assert not stuck, f"rollouts that never completed: {stuck}"

    def in_force(self) -> list[Rollout]:
        """The rollout each package's current version is under: the one its current import made, if
        not completed (a rollout of a version since replaced binds nobody, even when those bytes
        come back by a rollback or a new import)."""
        current = {name: (sha, at) for name, sha, at in ExtensionPackage.objects.values_list(
            "name", "sha256", "imported_at")}
        out: dict[str, Rollout] = {}
        for r in Rollout.objects.filter(state__in=LIVE_OR_ABORTED).order_by("package_name", "-created_at", "-id"):
            sha, at = current.get(r.package_name, ("", None))
            if r.package_name not in out and sha == r.sha256 and at is not None and r.created_at >= at:
                out[r.package_name] = r
        return list(out.values())

    def live_rollouts(self) -> list[tuple[Rollout, list[RolloutNode]]]:
        return [(r, list(r.nodes.select_related("node"))) for r in self.in_force() if r.state != Rollout.State.ABORTED]

    def assert_nodes_not_admitted_hold_the_previous_version(
        self, node: str, *, contents: bool, failed: dict[str, str],
    ) -> None:
        """After this node's own pass: not admitted, it holds the from-version, ``.chk`` and files exactly
        (unless putting it back failed in this very pass: its probe said no, say; then it kept what it had)."""
        bad, kept = quarantined(), {r[2] for r in retained()}
        storage = self.storages[node]
        for r, rows in self.live_rollouts():
            row = next((x for x in rows if x.node.name == node), None)
            if row is None or row.batch <= r.batch or not r.from_sha256 or bad & {r.from_sha256, r.sha256}:
                continue  # quarantine wins over the rollout: no pass installs, removes nor repairs either
            if r.package_name in self.tampered[node] or r.from_sha256 not in kept or r.package_name in failed:
                continue
            assert storage.read_chk(r.package_name) == r.from_sha256, (node, r.package_name, "not admitted")
            assert storage.verify(r.package_name, r.from_manifest, contents=contents) is None, (node, r.package_name)

    # --- invariants -------------------------------------------------------------------------
    @invariant()
    def no_node_shows_installed_what_its_disk_lacks(self) -> None:
        for s in SyncState.objects.filter(state=SyncState.State.INSTALLED).select_related("node"):
            node = s.node.name
            if node not in self.storages or s.package_name in self.tampered[node]:
                continue
            storage = self.storages[node]
            chk = storage.read_chk(s.package_name)
            assert chk == s.installed_sha256, f"{node} shows {s.package_name} at {s.installed_sha256[:8]}, disk {chk}"
            problem = storage.verify(s.package_name, _manifests[s.installed_sha256], contents=False)
            assert problem is None, f"{node} shows {s.package_name} installed but {problem}"

    @invariant()
    def no_node_holds_a_quarantined_checksum_it_did_not_hold_before(self) -> None:
        bad = quarantined()
        for node, storage in self.storages.items():
            for name in storage.installed_names():
                chk = storage.read_chk(name)
                if chk in bad:
                    assert (node, name, chk) in self.held_at_quarantine, f"{node} installed quarantined {name} {chk}"

    @invariant()
    def no_more_nodes_change_at_once_than_the_batch_size(self) -> None:
        """Changing: admitted and not yet installed nor failed (its rollout row says), or not admitted
        yet holding on disk the new version it did not hold when the rollout began (changed outside
        its batch). A node that failed is done, whatever its backout left on its disk."""
        for r, rows in self.live_rollouts():
            at_start = self.chk_at_rollout.get(r.pk, {})
            changing = []
            for x in rows:
                node = x.node.name
                outside = x.batch > r.batch and r.package_name not in self.tampered[node] and (
                    self.storages[node].read_chk(r.package_name) == r.sha256 != at_start.get(node))
                if (x.batch <= r.batch and x.state not in DONE) or outside:
                    changing.append(node)
            assert len(changing) <= (r.batch_size or len(NODES)), (
                f"{r.package_name} {r.version} batch {r.batch} ({r.state}): {changing} changing at once, "
                f"batch size {r.batch_size}; {[(x.node.name, x.batch, x.state) for x in rows]}")

    @invariant()
    def every_rollout_state_is_one_of_its_words(self) -> None:
        states = set(Rollout.objects.values_list("state", flat=True))
        assert states <= ROLLOUT_WORDS, states - ROLLOUT_WORDS
        places = set(RolloutNode.objects.values_list("state", flat=True))
        assert places <= set(RolloutNode.State.values), places

    @invariant()
    def no_node_not_admitted_holds_the_new_version(self) -> None:
        bad = quarantined()
        for r, rows in self.live_rollouts():
            at_start = self.chk_at_rollout.get(r.pk, {})
            for row in rows:
                node = row.node.name
                if row.batch <= r.batch or r.package_name in self.tampered[node]:
                    continue
                chk = self.storages[node].read_chk(r.package_name)
                if r.sha256 in bad:  # frozen: no pass repairs a copy changed by hand; it only never takes the new bytes
                    assert chk != r.sha256 or chk == at_start.get(node), (node, r.package_name, chk)
                    continue
                assert chk in {at_start.get(node), r.from_sha256 or None}, (
                    f"{node} is waiting for batch {row.batch} of {r.package_name} {r.version} (at {r.batch}) "
                    f"yet holds {chk}; it held {at_start.get(node)}, the from-version is {r.from_sha256}")

    @invariant()
    def no_node_the_rollout_shows_installed_lacks_it(self) -> None:
        bad = quarantined()
        for r, rows in self.live_rollouts():
            for row in rows:
                node = row.node.name
                if row.state != RolloutNode.State.INSTALLED or r.package_name in self.tampered[node] or r.sha256 in bad:
                    continue
                chk = self.storages[node].read_chk(r.package_name)
                assert chk == r.sha256, f"the rollout shows {node} installed {r.package_name} {r.version}; disk {chk}"

    def assert_holders_of_quarantined_bytes_say_so(self, node: str) -> None:
        """After a pass: a node holding the quarantined current version is flagged, never shown installed."""
        bad = quarantined()
        for p in ExtensionPackage.objects.filter(sha256__in=bad):
            s = SyncState.objects.filter(node__name=node, package_name=p.name).first()
            holds = self.storages[node].read_chk(p.name) == p.sha256
            assert s is not None and (s.state, s.error) == (
                SyncState.State.QUARANTINED, quarantine_words(p.version, holds=holds),
            ), (node, p.name, s and s.state, s and s.error)

    def assert_every_disk_equals_the_database(self) -> None:
        """Every package as the database says; one in a live rollout (checked by the invariants) left
        out; one whose rollout was aborted: its from-version, each node saying ``reverted``."""
        bad = quarantined()
        every = {p.name: p for p in ExtensionPackage.objects.select_related("archive")}
        aborted = {r.package_name: r for r in self.in_force() if r.state == Rollout.State.ABORTED}
        rolling = {r.package_name for r, _ in self.live_rollouts()}
        packages = {name: p for name, p in every.items() if p.sha256 not in bad and name not in rolling
                    and (name not in aborted or aborted[name].from_sha256 not in bad)}
        expected = {name: (p.sha256, p.archive.manifest, SyncState.State.INSTALLED) for name, p in packages.items()}
        for name, r in aborted.items():
            if name in expected:
                assert r.from_sha256, f"{name}: aborted without a version to go back to"
                expected[name] = (r.from_sha256, r.from_manifest, SyncState.State.REVERTED)
        for node, storage in self.storages.items():
            held = set(storage.installed_names()) - rolling
            assert held - (set(every) - set(packages)) == set(packages), node  # quarantined: kept or not, as it was
            for name, (sha, manifest, state) in expected.items():
                assert storage.read_chk(name) == sha, (node, name)
                assert storage.verify(name, manifest, contents=True) is None, (node, name)
                s = SyncState.objects.get(node__name=node, package_name=name)
                assert (s.state, s.installed_sha256) == (state, sha), (node, name, s.state)
            assert not list((storage.work / "staging").glob("*")) if (storage.work / "staging").exists() else True


def machine_settings(settings) -> None:  # type: ignore[no-untyped-def]
    """Deterministic time: a failed checksum is never due by itself within a run (only "retry now"
    and manual passes retry it), and every node stays online (a heartbeat window longer than a run)."""
    settings.EXTADMIN_NODE = "a"
    settings.EXTADMIN_SYNC_DEADLINE = 60
    settings.EXTADMIN_SYNC_RETRY_BACKOFF = 3600
    settings.EXTADMIN_SYNC_RETRY_BACKOFF_MAX = 3600
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600
    settings.EXTADMIN_HEALTH_PROBE = [str(PROBE)]


def settings_for(**kwargs: int) -> settings:
    return settings(
        deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
        **kwargs,
    )


# The default run (CI's) draws the same examples every time, so that it says the same of the same
# code; the soak (and EXTADMIN_STATE_MACHINE_RANDOM=1) draws new ones each run, to find new corners.
RANDOM = os.environ.get("EXTADMIN_STATE_MACHINE_RANDOM") == "1"
Cluster.TestCase.settings = settings_for(max_examples=EXAMPLES, stateful_step_count=20, derandomize=not RANDOM)


@pytest.mark.django_db
def test_it_keeps_every_node_honest_and_converged_under_random_operations(settings):  # type: ignore[no-untyped-def]
    machine_settings(settings)
    Cluster.TestCase().runTest()
    print(f"state machine: {TOTALS}")  # the figures quoted in docs/reliability.md (pytest -s)


@pytest.mark.soak
@pytest.mark.django_db
def test_it_keeps_every_node_honest_over_a_long_random_run(settings):  # type: ignore[no-untyped-def]
    machine_settings(settings)

    class Long(Cluster.TestCase):  # type: ignore[name-defined,misc]
        settings = settings_for(max_examples=EXAMPLES * 8, stateful_step_count=50)

    Long().runTest()
    print(f"state machine (soak): {TOTALS}")
