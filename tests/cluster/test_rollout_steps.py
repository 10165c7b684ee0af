"""kill -9 at every step of a rollout, real processes: the console and the agents.

One cluster of three agents serves every case (a new package each), so that the whole set stays
quick. Every process of the cluster runs with ``EXTADMIN_FAULTS_ARMED``: a case arms one checkpoint,
and whichever process reaches it first (an agent, or a ``manage.py`` console command) SIGKILLs
itself there. Which process that is follows from where the step runs:

- the console's import (``import_extension``) creates the rollout inside its transaction
  (``rollout.after_create``, not committed) and commits it (``import.after_commit``);
- the agents move a rollout on, after each pass (``rollout_node_report``: ``rollout.after_report``,
  ``rollout.before_advance``; ``rollout_advance``: ``rollout.before_/after_`` admit, halt, complete,
  activate, activated); the console moves it on only when it shows or controls one, so the test
  process reads the rows itself and never advances while it waits for a kill;
- an agent swaps a version in (``sync.after_swap``, also at a together activation) and stages one
  (``sync.after_stage``);
- the controls (``rollout_pause``, ``rollout_resume``, ``rollout_abort``) die once their transition
  is committed, before any node is told (``rollout.after_pause`` …).

While each case runs, every change of the rollout's rows is checked: no node outside the admitted
batch changes (its folder stays the previous version byte for byte), no node is said installed
without holding the new version, no batch is admitted before the one before it is done, at most one
node changes at a time (batches of one), and in together mode no folder changes before the
activation. Then the killed agent is restarted (or the console's next action runs) and the rollout
must end as it should: completed with every node on the new version, or aborted with every node
back on the old one, byte for byte.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from extadmin.models import ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from rollouts.models import Rollout, RolloutNode
from tests.cluster.conftest import Cluster
from tests.packages import build_package, folder_files
from tests.processes import Pause, child_env, manage, run_command, wait_for

pytestmark = [pytest.mark.cluster]

EACH = ("--batch", "1", "--max-failures", "1")
TOGETHER = ("--batch", "1", "--activation", "together")
CHANGING = ("waiting", "admitted", "staged")
# Every node runs this probe: it refuses a package on a node while the test says so (a file
# ``<package>@<node>`` in the folder given), so one node can fail one rollout and halt it.
PROBE = "sh -c 'test ! -e \"$0/$EXTADMIN_PACKAGE@$EXTADMIN_NODE\" || { echo refused on purpose >&2; exit 1; }'"
AGENT = {"EXTADMIN_SYNC_INTERVAL": "2"}  # a periodic pass moves on whatever a kill left un-nudged


@dataclass(frozen=True)
class Case:
    point: str
    policy: tuple[str, ...] = EACH
    by: str = "agent"  # the process that runs the step: agent, import, pause, resume, abort
    halt: str = ""  # the batch-1 node fails its probe; then the console resumes or aborts

    @property
    def id(self) -> str:
        return self.point + ("-together" if self.policy == TOGETHER else "")


CASES = [
    Case("rollout.after_create", by="import"),
    Case("import.after_commit", by="import"),
    Case("rollout.before_admit"),
    Case("rollout.after_admit"),
    Case("rollout.before_complete"),
    Case("rollout.after_complete"),
    Case("rollout.before_halt", halt="resume"),
    Case("rollout.after_halt", halt="abort"),
    Case("rollout.before_activate", TOGETHER),
    Case("rollout.after_activate", TOGETHER),
    Case("rollout.before_activated", TOGETHER),
    Case("rollout.after_activated", TOGETHER),
    Case("sync.after_stage", TOGETHER),
    Case("sync.after_swap"),  # swapped in, not yet proved nor reported: the rollout waits for it
    Case("sync.after_swap", TOGETHER),  # the activation's swap
    Case("rollout.after_report"),
    Case("rollout.before_advance"),
    Case("rollout.after_pause", by="pause"),
    Case("rollout.after_resume", by="resume"),
    Case("rollout.after_abort", by="abort"),
]


class Rig:
    """The cluster every case shares, and the switches of its processes (arms, the probe's refusals)."""

    def __init__(self, tmp: Path) -> None:
        self.cluster = Cluster(tmp)
        self.arms, self.refusals = tmp / "arms", tmp / "refusals"
        self.arms.mkdir()
        self.refusals.mkdir()
        self.names = [self.cluster.name(i) for i in (1, 2, 3)]
        self.console = self.names[0]  # the console imports as this node, beside its agent (as scripts/run)
        self.env = {"EXTADMIN_FAULTS_ARMED": str(self.arms), "EXTADMIN_HEALTH_PROBE": f"{PROBE} {self.refusals}"}
        self.serial = itertools.count(1)
        self.tmp = tmp

    def storage(self, name: str) -> NodeStorage:
        return self.cluster.storage(name)

    def start(self, name: str) -> None:
        self.cluster.agent(name, **AGENT, **self.env).start()

    def arm(self, point: str, action: str = "kill") -> None:
        """Arm ``point`` for the first process that reaches it (written whole, then renamed in)."""
        ready = self.tmp / f"arming-{point}"
        ready.write_text(action)
        ready.rename(self.arms / point)

    def taker(self, point: str) -> int | None:
        """The pid of the process that took the armed ``point``, once one did."""
        taken = [p for p in self.arms.glob(f"{point}.*") if p.name.removeprefix(point + ".").isdigit()]
        return int(taken[0].name.rsplit(".", 1)[1]) if taken else None

    def agent_of(self, pid: int) -> str | None:
        return next((n for n, p in self.cluster.agents.items() if p.proc is not None and p.proc.pid == pid), None)

    def console_env(self) -> dict[str, str]:
        return child_env(EXTADMIN_NODE=self.console, EXTADMIN_STORAGE=str(self.storage(self.console).root),
                         EXTADMIN_HEARTBEAT_INTERVAL="1", **self.env)

    def console_killed(self, point: str, *args: str) -> None:
        """A console command (``manage.py …`` as this node) that must die at ``point``."""
        self.arm(point)
        done = manage(*args, env=self.console_env())
        assert done.returncode == -9 and self.taker(point) is not None, done.stderr

    def disarm(self) -> None:
        for path in [*self.arms.iterdir(), *self.refusals.iterdir()]:
            path.unlink()


@pytest.fixture(scope="module")
def rig(django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    """Three agents for the whole module, on rows that stay between its cases (flushed at the end,
    as every transactional test leaves the database)."""
    tmp = tmp_path_factory.mktemp("steps")
    rig = Rig(tmp)
    with django_db_blocker.unblock(), override_settings(
        EXTADMIN_NODE=rig.console, EXTADMIN_STORAGE=rig.storage(rig.console).root, EXTADMIN_HEARTBEAT_INTERVAL=1.0,
    ):
        try:
            for name in rig.names:
                rig.start(name)
            for name in rig.names:
                rig.cluster.wait_started(name)
            yield rig
        finally:
            rig.cluster.stop_all()
            call_command("flush", interactive=False, verbosity=0)


class Watch:
    """Every state of one package's rollout seen while the test waits, each checked at once."""

    def __init__(self, rig: Rig, name: str, v1: ExtensionPackage, before: dict[str, dict[str, bytes]]) -> None:
        self.rig, self.name, self.v1, self.before = rig, name, v1, before
        self.seen: list[tuple] = []

    def rollout(self) -> Rollout | None:
        return Rollout.objects.filter(package_name=self.name).order_by("-id").first()

    def sample(self) -> None:
        r = self.rollout()
        rows = {n: (s, b) for n, s, b in RolloutNode.objects.filter(rollout=r, node__name__in=self.rig.names)
                .values_list("node__name", "state", "batch")} if r else {}
        syncing = set(SyncState.objects.filter(node__name__in=self.rig.names, package_name=self.name,
                                               state=SyncState.State.SYNCING).values_list("node__name", flat=True))
        snapshot = (r.state if r else None, r.batch if r else None, tuple(sorted(rows.items())), tuple(sorted(syncing)))
        if self.seen and self.seen[-1] == snapshot:
            return
        self.seen.append(snapshot)
        self.check(r, rows, syncing)

    def check(self, r: Rollout | None, rows: dict[str, tuple[str, int]], syncing: set[str]) -> None:
        for n in self.rig.names:
            if n == self.rig.console and r is None:
                continue  # the console's own unzip, before its import committed (or died)
            admitted = r is not None and (r.state == Rollout.State.COMPLETED or (n in rows and rows[n][1] <= r.batch))
            if not admitted:
                self.stands(r, folder_files(self.rig.storage(n).package_dir(self.name)) == self.before[n],
                            f"{n} changed outside the admitted batch")
        if r is None:
            return
        aborted = r.state == Rollout.State.ABORTED
        changing = {n for n, (s, b) in rows.items() if b <= r.batch and s in CHANGING}
        if not aborted:  # an abort sends every changed node back at once
            assert len(changing | syncing) <= 1, self.seen
        for n, (state, batch) in rows.items():
            if batch < r.batch:  # admitted only once every node of the batches before was done
                assert state in ("installed", "failed", "reverted"), self.seen
            chk = self.rig.storage(n).read_chk(self.name)
            if state == "installed" and not aborted:
                self.stands(r, chk == r.sha256, f"{n} said installed without holding {r.version}")
            if (r.activation == "together" and r.state in (Rollout.State.RUNNING, Rollout.State.HALTED)
                    and state != "installed" and n != self.rig.console):
                self.stands(r, chk == self.v1.sha256, f"{n} switched before the activation")

    def stands(self, r: Rollout | None, ok: bool, what: str) -> None:
        """``ok`` (read from the disk after the rows) must hold, unless the rollout moved meanwhile:
        then what was read is no evidence about the rows read before."""
        if ok:
            return
        again = self.rollout()
        if ((again.state, again.batch) if again else None) != ((r.state, r.batch) if r else None):
            return
        raise AssertionError(f"{what}: {self.seen}")

    def until(self, condition: Callable[[], object], *, what: str, timeout: float = 60) -> None:
        def check() -> object:
            self.sample()
            return condition()

        try:
            wait_for(check, timeout=timeout, interval=0.02, what=f"{what} (seen: {self.seen})")
        except AssertionError as exc:  # what each agent did meanwhile says why nothing moved
            logs = {n: log.read_text(errors="replace")[-2500:] for n in self.rig.names
                    if (log := self.rig.tmp / f"{n}.log").exists()}
            raise AssertionError(f"{exc}\nagents' logs (the end of each): {logs}") from None

    def state(self) -> str | None:
        r = self.rollout()
        return r.state if r else None


def _holds(rig: Rig, n: str, pkg: ExtensionPackage, files: dict[str, bytes] | None = None) -> bool:
    storage = rig.storage(n)
    proved = SyncState.objects.filter(node__name=n, package_name=pkg.name, installed_sha256=pkg.sha256,
                                      state__in=("installed", "reverted")).exists()
    return proved and storage.read_chk(pkg.name) == pkg.sha256 and (
        folder_files(storage.package_dir(pkg.name)) == files if files is not None
        else storage.verify(pkg.name, pkg.archive.manifest, contents=True) is None
    )


def _import(rig: Rig, name: str, version: str, *options: str) -> ExtensionPackage:
    """The console's import, in this process (which never carries the arms). The console's node
    runs an agent too: an import that finds it mid-sync of the package is refused ("try again"),
    as an operator's would be, and is tried again, as an operator would."""
    path = str(build_package(rig.tmp, name, version))
    deadline = time.monotonic() + 30
    while True:
        code, _, err = run_command("import_extension", path, *options)
        if code == 0 or "lock: another import or sync" not in err or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == 0, err
    return ExtensionPackage.objects.get(name=name)


@pytest.fixture
def db(rig: Rig) -> Rig:
    """This module's cases share the rig's rows (committed, seen by every process) instead of a
    database of their own each; asking for ``db`` also makes pytest-django create the test database."""
    return rig


@pytest.fixture
def fresh(db: Rig) -> Iterator[Rig]:
    """Every agent up before a case, every arm and refusal gone after it, every held process let go."""
    rig = db
    for name in rig.names:
        if not rig.cluster.agents[name].alive:
            rig.start(name)
    yield rig
    rig.disarm()
    for release in rig.tmp.glob("release-*"):
        release.touch()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_process_killed_at_each_rollout_step_installs_nothing_outside_the_batch_and_the_rollout_ends(
    fresh: Rig, case: Case,
) -> None:
    rig = fresh
    name = f"K{next(rig.serial)}"
    v1 = _import(rig, name, "1.0.0")  # the default policy: every node at once, no rollout
    wait_for(lambda: all(_holds(rig, n, v1) for n in rig.names), timeout=60, what=f"{name} 1.0.0 everywhere")
    before = {n: folder_files(rig.storage(n).package_dir(name)) for n in rig.names}
    watch = Watch(rig, name, v1, before)
    first = rig.names[1]  # batch 1 beside the console's node, which installs at its own import
    if case.halt:
        (rig.refusals / f"{name}@{first}").touch()

    ends = STEPS[case.by](rig, watch, case, name)

    watch.until(lambda: watch.state() == ends, what=f"the rollout to end {ends}", timeout=90)
    r = watch.rollout()
    assert r is not None
    final = ExtensionPackage.objects.get(name=name)
    if ends == Rollout.State.COMPLETED:
        assert final.version == "2.0.0"
        assert set(r.nodes.values_list("state", flat=True)) == {"installed"}
        watch.until(lambda: all(_holds(rig, n, final) for n in rig.names), what="2.0.0 on every node")
    else:  # every node that changed goes back and says so; the others never changed
        watch.until(lambda: all(_holds(rig, n, v1, before[n]) for n in rig.names) and set(
            r.nodes.exclude(state="waiting").values_list("state", flat=True)) <= {"reverted"},
            what="1.0.0 back on every node, byte for byte, each saying so")


def _killed(rig: Rig, watch: Watch, point: str) -> str:
    """Wait for the process that reached ``point`` to die; an agent is started again (without the arm)."""
    watch.until(lambda: rig.taker(point) is not None, what=f"a process to reach {point}")
    pid = rig.taker(point)
    assert pid is not None
    victim = rig.agent_of(pid)
    assert victim is not None, f"{point} was reached by pid {pid}, not an agent"
    watch.until(lambda: not rig.cluster.agents[victim].alive, what=f"{victim} to die at {point}")
    rig.start(victim)
    return victim


def _by_agent(rig: Rig, watch: Watch, case: Case, name: str) -> str:
    rig.arm(case.point)
    _import(rig, name, "2.0.0", *case.policy)
    _killed(rig, watch, case.point)
    if not case.halt:
        return Rollout.State.COMPLETED
    watch.until(lambda: watch.state() == Rollout.State.HALTED, what="the rollout to halt")
    (rig.refusals / f"{name}@{rig.names[1]}").unlink()
    code, _, err = run_command(f"rollout_{case.halt}", name)  # the console's next action
    assert code == 0, err
    return Rollout.State.COMPLETED if case.halt == "resume" else Rollout.State.ABORTED


def _by_import(rig: Rig, watch: Watch, case: Case, name: str) -> str:
    rig.console_killed(case.point, "import_extension", str(build_package(rig.tmp, name, "2.0.0")), *case.policy)
    if case.point == "rollout.after_create":  # died before its commit: nothing of 2.0.0 anywhere
        assert ExtensionPackage.objects.get(name=name).version == "1.0.0"
        assert not Rollout.objects.filter(package_name=name).exists()
        # The console node's own agent puts back what the dead import had unzipped there.
        console = rig.console
        watch.until(lambda: _holds(rig, console, watch.v1, watch.before[console]), what=f"{console} repaired")
        _import(rig, name, "2.0.0", *case.policy)  # the operator imports again
    return Rollout.State.COMPLETED


def _held_first(rig: Rig, name: str) -> Pause:
    """Import 2.0.0 with the batch-1 node held after its fetch, so the rollout is mid-batch."""
    pause = Pause(rig.tmp / f"release-{name}")
    rig.arm("sync.after_fetch", f"wait:{pause.path}")
    _import(rig, name, "2.0.0", *EACH)
    pause.wait_reached()
    return pause


def _control_killed(rig: Rig, case: Case, name: str, action: str) -> None:
    rig.console_killed(case.point, f"rollout_{action}", name)
    assert Operation.objects.filter(package_name=name, kind=f"rollout_{action}").exists()  # committed


def _by_pause(rig: Rig, watch: Watch, case: Case, name: str) -> str:
    pause = _held_first(rig, name)
    _control_killed(rig, case, name, "pause")
    assert watch.state() == Rollout.State.PAUSED
    pause.release()
    first = rig.names[1]
    watch.until(lambda: RolloutNode.objects.filter(rollout__package_name=name, node__name=first,
                                                   state="installed").exists(), what=f"{first} to finish")
    deadline = time.monotonic() + 2.5  # every agent passes once more: a paused rollout admits nobody
    watch.until(lambda: time.monotonic() > deadline, what="the paused rollout to stay put")
    r = watch.rollout()
    assert r is not None and (r.state, r.batch) == (Rollout.State.PAUSED, 1)
    code, _, err = run_command("rollout_resume", name)
    assert code == 0, err
    return Rollout.State.COMPLETED


def _by_resume(rig: Rig, watch: Watch, case: Case, name: str) -> str:
    pause = _held_first(rig, name)
    code, _, err = run_command("rollout_pause", name)
    assert code == 0, err
    pause.release()
    first = rig.names[1]
    watch.until(lambda: RolloutNode.objects.filter(rollout__package_name=name, node__name=first,
                                                   state="installed").exists(), what=f"{first} to finish")
    _control_killed(rig, case, name, "resume")
    r = watch.rollout()
    assert r is not None and (r.state, r.batch) == (Rollout.State.RUNNING, 1)  # resumed, not moved on
    return Rollout.State.COMPLETED  # the agents' next passes move it on


def _by_abort(rig: Rig, watch: Watch, case: Case, name: str) -> str:
    pause = _held_first(rig, name)
    _control_killed(rig, case, name, "abort")
    assert watch.state() == Rollout.State.ABORTED
    pause.release()  # its install goes on to the end; its next pass puts 1.0.0 back
    return Rollout.State.ABORTED


STEPS: dict[str, Callable[[Rig, Watch, Case, str], str]] = {
    "agent": _by_agent, "import": _by_import, "pause": _by_pause, "resume": _by_resume, "abort": _by_abort,
}

