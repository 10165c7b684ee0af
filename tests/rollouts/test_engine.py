"""A rollout's life over real reconcile passes of four nodes (one process, real database and folders)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from nodes.models import SyncRun, SyncState
from rollouts.models import Rollout
from rollouts.services import rollout_control, rollouts_status
from tests.processes import Pause
from tests.rollouts.conftest import Nodes

pytestmark = pytest.mark.django_db

FAIL = "sync.after_fetch=raise"


def _status(name: str = "Pump") -> dict:
    [r] = rollouts_status(name)["rollouts"]
    return r


def test_the_canary_goes_first_then_batches_of_one_and_a_failure_halts_naming_the_node(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(4)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    before = {n: cluster.files(n, "Pump") for n in cluster.names}
    v2 = import_with("Pump", "2.0.0", rollout={"canary": "n1", "batch": 1, "max_failures": 1})
    r = _status()
    assert (r["state"], r["batch"], r["from_version"]) == ("running", 0, "1.0.0")
    assert r["nodes"] == {"n1": "admitted", "n2": "waiting", "n3": "waiting", "n4": "waiting", "web": "installed"}

    for n in ("n4", "n3", "n2"):  # not admitted: each holds 1.0.0 and says why
        cluster.sync(n)
        assert cluster.files(n, "Pump") == before[n]
        s = SyncState.objects.get(node__name=n, package_name="Pump")
        assert (s.state, s.error, s.installed_sha256) == ("waiting", f"waiting for batch {int(n[1]) - 1}", v1.sha256)
    cluster.sync("n1")  # the canary installs, and its pass admits batch 1 (n2)
    assert cluster.chk("n1", "Pump") == v2.sha256
    assert _status()["batch"] == 1
    cluster.sync("n2")  # → batch 2 (n3)
    assert cluster.chk("n2", "Pump") == v2.sha256 and _status()["batch"] == 2
    cluster.sync("n3", faults=FAIL)  # n3 fails → halted
    r = _status()
    assert r["state"] == "halted"
    assert r["reason"] == "halted at batch 2: 1 node failed (max-failures 1): n3: fault injected at sync.after_fetch"
    assert r["nodes"]["n3"] == "failed" and r["nodes"]["n4"] == "waiting"
    cluster.sync_all(faults={"n3": FAIL})  # halted: nothing moves
    assert cluster.files("n3", "Pump") == before["n3"] and cluster.files("n4", "Pump") == before["n4"]
    assert SyncState.objects.get(node__name="n3", package_name="Pump").state == "failed"

    rollout_control(name="Pump", action="abort", actor=Actor(via="cli"))
    assert Operation.objects.filter(kind=Operation.Kind.ROLLOUT_ABORT, package_name="Pump").count() == 1
    assert _status()["state"] == "aborted"
    cluster.sync_all()  # n1 and n2 fetch 1.0.0 from the retained versions and put it back
    assert {n: cluster.files(n, "Pump") for n in cluster.names} == before
    # n3 tried and failed; it holds 1.0.0 as every node now (web, the importing node, syncs no pass here)
    assert _status()["nodes"] == {
        "n1": "reverted", "n2": "reverted", "n3": "reverted", "n4": "waiting", "web": "installed",
    }
    s = SyncState.objects.get(node__name="n1", package_name="Pump")
    assert (s.state, s.installed_sha256) == ("reverted", v1.sha256)
    assert s.error == "reverted to 1.0.0: the rollout of 2.0.0 was aborted"


def test_the_default_policy_makes_no_rollout_and_every_node_installs_at_once(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0")
    cluster.sync_all()
    assert not Rollout.objects.exists()
    assert all(cluster.chk(n, "Pump") == v2.sha256 for n in cluster.names)


def test_batches_complete_the_rollout_and_then_every_node_holds_the_new_version(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(4)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"batch": 2})
    changing_most = 0
    for _ in range(4):
        r = _status()
        changing_most = max(changing_most, sum(1 for s in r["nodes"].values() if s == "admitted"))
        cluster.sync_all()
    assert _status()["state"] == "completed" and changing_most <= 2
    assert all(cluster.chk(n, "Pump") == v2.sha256 for n in cluster.names)


def test_together_mode_stages_everywhere_first_then_swaps(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"activation": "together"})
    cluster.sync("n1")
    cluster.sync("n2")
    assert cluster.chk("n1", "Pump") == v1.sha256  # staged, not swapped: n3 has not staged yet
    assert cluster.storage("n1").staged_path("Pump", v2.sha256).is_dir()
    assert _status()["nodes"]["n1"] == "staged"
    cluster.sync("n3")  # the last one stages: the rollout activates
    assert _status()["state"] == "activating"
    cluster.sync_all()
    assert _status()["state"] == "completed"
    assert all(cluster.chk(n, "Pump") == v2.sha256 for n in cluster.names)
    assert not cluster.storage("n1").staged_path("Pump", v2.sha256).exists()


def test_together_mode_halts_and_nobody_switches_when_one_node_cannot_stage(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    import_with("Pump", "2.0.0", rollout={"activation": "together"})
    cluster.sync_all(faults={"n2": FAIL})
    cluster.sync_all(faults={"n2": FAIL})
    r = _status()
    assert r["state"] == "halted" and "n2: fault injected at sync.after_fetch" in r["reason"]
    assert all(cluster.chk(n, "Pump") == v1.sha256 for n in cluster.names)


@pytest.mark.parametrize(("fields", "said"), [
    ({"batch": "0"}, "rollout: batch: 0 is less than 1"),
    ({"batch": "two"}, "rollout: batch: 'two' is not a whole number"),
    ({"max_failures": "-1"}, "rollout: max-failures: -1 is less than 1"),
    ({"activation": "sometimes"}, "rollout: activation: 'sometimes' is neither 'each' nor 'together'"),
    ({"canary": "nope"}, "rollout: canary: no node named 'nope'"),
])
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_imported(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage], fields: dict, said: str,
) -> None:
    nodes(2)
    with pytest.raises(Refusal) as refused:
        import_with("Pump", "1.0.0", rollout=fields)
    assert str(refused.value) == said
    assert not ExtensionPackage.objects.exists()


def test_resuming_a_halted_rollout_makes_its_failed_node_try_again_at_once_and_the_rollout_completes(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    """The failure is counted, its retry backed off; the resume must not wait for that backoff (nor
    be undone by the node reporting its old failure again at its next pass)."""
    cluster = nodes(2)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"batch": 1, "max_failures": 1})
    cluster.sync("n1", faults=FAIL)
    assert _status()["state"] == "halted"
    assert SyncState.objects.get(node__name="n1", package_name="Pump").next_retry_at is not None

    assert rollout_control(name="Pump", action="resume", actor=Actor(via="cli"))["state"] == "running"
    cluster.sync("n1", trigger=SyncRun.Trigger.NUDGE)  # the resume's nudge: it tries again, now
    assert cluster.chk("n1", "Pump") == v2.sha256
    assert _status()["nodes"]["n1"] == "installed" and _status()["batch"] == 2
    cluster.sync("n2")
    assert _status()["state"] == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_pass_that_began_before_the_resume_does_not_report_the_old_failure_and_halt_it_again(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage], tmp_path: Path,
) -> None:
    """n1's pass read "leave Pump alone" (it failed) before the operator resumed; it must not write
    that old failure over the resumed row when it reports at its end."""
    cluster = nodes(2)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"batch": 1, "max_failures": 1})
    cluster.sync("n1", faults=FAIL)
    assert _status()["state"] == "halted"
    import_with("Valve", "1.0.0")  # something for n1's next pass to install: it waits in the middle of it
    pause = Pause(tmp_path / "release")

    def in_flight() -> None:
        try:
            cluster.sync("n1", faults=pause.at("sync.after_fetch"), trigger=SyncRun.Trigger.NUDGE)
        finally:
            connection.close()

    pass_ = threading.Thread(target=in_flight)
    pass_.start()
    try:
        pause.wait_reached()
        assert rollout_control(name="Pump", action="resume", actor=Actor(via="cli"))["state"] == "running"
    finally:
        pause.release()
        pass_.join(timeout=60)
    assert (_status()["state"], _status()["nodes"]["n1"]) == ("running", "admitted")
    cluster.sync("n1", trigger=SyncRun.Trigger.NUDGE)
    assert cluster.chk("n1", "Pump") == v2.sha256 and _status()["nodes"]["n1"] == "installed"


def _changing(name: str = "Pump") -> list[str]:
    """The nodes its rollout has admitted that are not done yet (installed, failed or reverted)."""
    r = Rollout.objects.filter(package_name=name).latest("id")
    return sorted(x.node.name for x in r.nodes.select_related("node")
                  if x.batch <= r.batch and x.state not in ("installed", "failed", "reverted"))


def test_resuming_a_rollout_halted_with_more_failed_nodes_than_a_batch_retries_them_a_batch_at_a_time(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    """Batches of one, two failures halt: the canary n1 fails, then n2 fails and it halts. Resuming
    let both try again at once, two nodes changing in a rollout of batches of one."""
    cluster = nodes(4)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    before = {n: cluster.files(n, "Pump") for n in cluster.names}
    v2 = import_with("Pump", "2.0.0", rollout={"canary": "n1", "batch": 1, "max_failures": 2})
    cluster.sync("n1", faults=FAIL)  # the canary fails (1 of 2): the rollout goes on to batch 1
    assert _status()["batch"] == 1
    cluster.sync("n2", faults=FAIL)  # the second failure halts it
    assert _status()["state"] == "halted"

    r = rollout_control(name="Pump", action="resume", actor=Actor(via="cli"))
    assert r["state"] == "running"
    assert _changing() == ["n1"]  # the first failed node tries again; n2 waits for the next batch
    assert r["nodes"] == {"n1": "admitted", "n2": "waiting", "n3": "waiting", "n4": "waiting", "web": "installed"}
    for n in ("n2", "n3", "n4"):  # not admitted: each keeps 1.0.0, byte for byte, and its pass says so
        cluster.sync(n, trigger=SyncRun.Trigger.NUDGE)
        assert cluster.files(n, "Pump") == before[n] and cluster.chk(n, "Pump") == v1.sha256
        assert SyncState.objects.get(node__name=n, package_name="Pump").state == "waiting"
    assert _changing() == ["n1"]

    for n in ("n1", "n2", "n3", "n4"):  # one at a time, each admitted only once the one before is done
        assert _changing() == [n]
        cluster.sync(n, trigger=SyncRun.Trigger.NUDGE)
        assert cluster.chk(n, "Pump") == v2.sha256 and _status()["nodes"][n] == "installed"
    assert _status()["state"] == "completed"
