"""A rollout whose version is quarantined halts and says why; its controls refuse, naming the way back (a rollback)."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.packaging import Conflict
from extadmin.quarantine import package_quarantine
from extadmin.rollback import package_rollback
from rollouts.services import rollout_control
from tests.rollouts.conftest import Nodes
from tests.rollouts.test_engine import _status

pytestmark = pytest.mark.django_db


def test_quarantining_the_version_a_rollout_is_taking_out_halts_it_naming_the_reason(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(4)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"batch": 1})
    admitted = [n for n, place in _status()["nodes"].items() if place == "admitted" and n in cluster.names]
    for name in admitted:  # batch 1 takes 2.0.0; nobody else passes yet
        cluster.sync(name)
    assert _status()["state"] == "running"
    holders = [n for n in cluster.names if cluster.chk(n, "Pump") == v2.sha256]

    package_quarantine(name="Pump", version="2.0.0", reason="leaks memory under load", actor=Actor())

    r = _status()
    assert r["state"] == "halted"
    assert r["reason"] == "halted: Pump 2.0.0 was quarantined: leaks memory under load"
    for _ in range(3):  # nothing moves on: no node outside the admitted batch ever takes 2.0.0
        cluster.sync_all()
    assert [n for n in cluster.names if cluster.chk(n, "Pump") == v2.sha256] == holders
    assert _status()["state"] == "halted"

    for action in ("resume", "abort"):  # neither could move a node: quarantined bytes stay where they are
        with pytest.raises(Conflict) as refused:
            rollout_control(name="Pump", action=action, actor=Actor())
        assert refused.value.step == "rollout"
        assert "2.0.0 is quarantined: leaks memory under load" in refused.value.reason
        assert "roll Pump back" in refused.value.reason
    assert _status()["state"] == "halted"

    package_rollback(name="Pump", actor=Actor())  # the way back
    for _ in range(2):
        cluster.sync_all()
    held = {n: cluster.chk(n, "Pump") for n in cluster.names}
    assert held == {n: v1.sha256 for n in cluster.names}, (holders, _status())


def test_a_rollback_to_a_version_whose_rollout_was_aborted_installs_it_everywhere(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    """The aborted rollout of 2.0.0 is history once 3.0.0 replaced it: rolling back to 2.0.0 must not
    bring it back to life (it would send every node to 1.0.0, 'reverted')."""
    cluster = nodes(3)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v2 = import_with("Pump", "2.0.0", rollout={"batch": 1})
    rollout_control(name="Pump", action="abort", actor=Actor())
    import_with("Pump", "3.0.0")
    cluster.sync_all()

    package_rollback(name="Pump", to="2.0.0", actor=Actor())
    for _ in range(2):
        cluster.sync_all()
    assert {n: cluster.chk(n, "Pump") for n in cluster.names} == {n: v2.sha256 for n in cluster.names}
