"""A property-based state machine over a three-node cluster, in one process (fast).

Random imports, upgrades, re-imports, removals, rollbacks, quarantines (with and without rollback),
tampering with a node's folder (alter a file, flip a byte, delete the folder, delete or falsify the
``.chk``), crashes (a fault raised at a random import, removal, rollback or sync step) and syncs —
calling the services and ``nodes.reconcile`` directly.

Invariants:
* at every step, no node shows "installed" for a checksum or files its disk does not have
  (except for what was tampered with by hand since that node last synced: it cannot know yet);
* a refused or failed import or removal changes nothing in the database;
* after every node synced (contents verified), every node's disk equals the database: the same
  packages, each folder exactly the archive's files, each ``.chk`` the archive's SHA-256 — except a
  package whose checksum is quarantined, which no node installs nor removes, each saying so;
* at every step, no node holds a quarantined checksum unless it held it when it was quarantined,
  and after a pass a node that still holds the quarantined current version is flagged as holding it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from extadmin.importing import ImportItem, file_sha256, package_import
from extadmin.models import ExtensionPackage, Operation, Quarantine, RetainedVersion
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.quarantine import package_quarantine
from extadmin.removal import package_remove
from extadmin.rollback import package_rollback
from extadmin.storage import NodeStorage
from nodes.convergence import quarantine_words
from nodes.models import Node, SyncRun, SyncState
from nodes.reconcile import reconcile
from tests.packages import build_package

NODES = ["a", "b", "c"]
NAMES = ["Alpha", "Beta"]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]
IMPORT_FAULTS = [None, None, "import.after_checksum", "import.after_unzip", "import.after_persist",
                 "import.after_archive"]
REMOVE_FAULTS = [None, None, "remove.after_undeploy", "remove.after_archive", "remove.after_package"]
SYNC_FAULTS = [None, None, None, "sync.after_fetch", "sync.after_unzip", "sync.after_swap", "sync.before_remove"]
TAMPER = ["alter", "flip", "delete_folder", "delete_chk", "wrong_chk"]
EXAMPLES = int(os.environ.get("EXTADMIN_STATE_MACHINE_EXAMPLES", "15"))
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
        for model in (SyncState, SyncRun, Node, ExtensionPackage, Operation, Quarantine):
            model.objects.all().delete()
        self.root = Path(tempfile.mkdtemp(prefix="extadmin-sm-nodes-"))
        self.storages = {n: NodeStorage(self.root / n) for n in NODES}
        self.tampered: dict[str, dict[str, str]] = {n: {} for n in NODES}
        self.counts = {"steps": 0, "faults": 0, "tampered": 0, "syncs": 0, "rollbacks": 0, "quarantines": 0}
        # (node, package, checksum) each node held when that checksum was quarantined: only these may stay.
        self.held_at_quarantine: set[tuple[str, str, str]] = set()

    def teardown(self) -> None:
        try:
            os.environ.pop("EXTADMIN_FAULTS", None)
            self.sync_every_node()  # quiescence: every node synced once more, then disks == database
            for key, value in self.counts.items():
                TOTALS[key] = TOTALS.get(key, 0) + value
            TOTALS["examples"] = TOTALS.get("examples", 0) + 1
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @initialize()
    def a_cluster_with_one_package(self) -> None:
        """Start from Alpha installed everywhere, so tampering and upgrades have something to act on;
        upgraded once, so a rollback and a quarantine of a retained version can happen from the first step."""
        for version in ("1.0.0", "1.1.0"):
            package_import(items=[ImportItem(path=package_zip("Alpha", version))], actor=Actor(), node_name="a",
                           storage_root=self.storages["a"].root)
        for node in NODES:
            assert reconcile(node_name=node, storage_root=self.storages[node].root, trigger="startup",
                             verify_contents=True).ok

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
            assert result.ok, result.error
            # It has looked at everything now: what it missed on a quick pass is only a flipped byte.
            self.tampered[node] = {k: v for k, v in self.tampered[node].items() if v == "flip" and not contents}
            self.assert_holders_of_quarantined_bytes_say_so(node)

    @rule()
    def sync_every_node(self) -> None:
        for node in NODES:
            result = reconcile(node_name=node, storage_root=self.storages[node].root, trigger="manual",
                               verify_contents=True)
            assert result.ok, result.error
            self.tampered[node] = {}
            self.counts["syncs"] += 1
            self.assert_holders_of_quarantined_bytes_say_so(node)
        self.assert_every_disk_equals_the_database()

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
        bad = quarantined()
        every = {p.name: p for p in ExtensionPackage.objects.select_related("archive")}
        packages = {name: p for name, p in every.items() if p.sha256 not in bad}
        for node, storage in self.storages.items():
            held = set(storage.installed_names())
            assert held - (set(every) - set(packages)) == set(packages), node  # quarantined: kept or not, as it was
            for name, p in packages.items():
                assert storage.read_chk(name) == p.sha256 == p.archive.sha256, (node, name)
                assert storage.verify(name, p.archive.manifest, contents=True) is None, (node, name)
                s = SyncState.objects.get(node__name=node, package_name=name)
                assert (s.state, s.installed_sha256) == (SyncState.State.INSTALLED, p.sha256), (node, name, s.state)
            assert not list((storage.work / "staging").glob("*")) if (storage.work / "staging").exists() else True


def settings_for(**kwargs: int) -> settings:
    return settings(
        deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
        **kwargs,
    )


Cluster.TestCase.settings = settings_for(max_examples=EXAMPLES, stateful_step_count=20)


@pytest.mark.django_db
def test_it_keeps_every_node_honest_and_converged_under_random_operations(settings):  # type: ignore[no-untyped-def]
    settings.EXTADMIN_NODE = "a"
    settings.EXTADMIN_SYNC_DEADLINE = 60
    Cluster.TestCase().runTest()
    print(f"state machine: {TOTALS}")  # the figures quoted in docs/reliability.md (pytest -s)


@pytest.mark.soak
@pytest.mark.django_db
def test_it_keeps_every_node_honest_over_a_long_random_run(settings):  # type: ignore[no-untyped-def]
    settings.EXTADMIN_NODE = "a"
    settings.EXTADMIN_SYNC_DEADLINE = 60

    class Long(Cluster.TestCase):  # type: ignore[name-defined,misc]
        settings = settings_for(max_examples=EXAMPLES * 20, stateful_step_count=50)

    Long().runTest()
    print(f"state machine (soak): {TOTALS}")
