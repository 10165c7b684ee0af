"""A package removed, then imported again under a rollout: the nodes still waiting for their batch
hold none of it, and none says 'installed' of the copy it kept from before the removal."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from extadmin.models import ExtensionPackage
from extadmin.removal import package_remove
from nodes.models import Node, SyncState
from tests.rollouts.conftest import Nodes
from tests.rollouts.test_engine import _status

pytestmark = pytest.mark.django_db


def test_a_node_waiting_for_the_batch_of_a_first_version_drops_the_copy_from_before_the_removal(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    import_with("Pump", "1.1.0")
    cluster.sync_all()
    package_remove(name="Pump")  # the nodes have not passed since: each still holds 1.1.0
    v1 = import_with("Pump", "1.0.0", rollout={"batch": 1})
    for name in cluster.names:  # only the nodes still waiting pass
        if _status()["nodes"].get(name) == "waiting":
            cluster.sync(name)
    waiting = [n for n, place in _status()["nodes"].items() if place == "waiting" and n in cluster.names]
    assert waiting, _status()
    for name in waiting:
        state = SyncState.objects.filter(node=Node.objects.get(name=name), package_name="Pump").first()
        assert state is None or state.state != SyncState.State.INSTALLED, (name, state and state.installed_sha256)
        assert cluster.chk(name, "Pump") is None
        assert not cluster.storage(name).package_dir("Pump").exists()
    for _ in range(4):  # and the rollout still takes every node to 1.0.0
        cluster.sync_all()
    assert {n: cluster.chk(n, "Pump") for n in cluster.names} == {n: v1.sha256 for n in cluster.names}
