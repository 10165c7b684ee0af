"""A rollout binds only the import that made it (found by the state machine).

A rollout of 1.0.0 still running when 2.0.0 is imported no longer says anything: 2.0.0 is the
package's version. Rolling back to 1.0.0 (or importing those bytes again) is a new import of them,
under its own policy; before, the old rollout's batches came back into force and a node of a later
batch held back the rolled-back version it should install at once (a first version's rollout even
left it holding nothing at all).
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.rollback import package_rollback
from nodes.models import SyncState
from rollouts.services import rollout_control
from tests.rollouts.conftest import Nodes

pytestmark = pytest.mark.django_db


def test_a_rollback_to_the_version_of_an_unfinished_rollout_goes_to_every_node_at_once(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    v11 = import_with("Pump", "1.1.0", rollout={"canary": "n1", "batch": 1})  # n2, n3 wait for their batch
    cluster.sync("n1")
    import_with("Pump", "2.0.0")  # the default policy: every node at once, the 1.1.0 rollout is history
    cluster.sync_all()

    package_rollback(name="Pump", to="1.1.0", actor=Actor(via="cli"))  # the default policy again
    assert ExtensionPackage.objects.get(name="Pump").sha256 == v11.sha256
    for n in reversed(cluster.names):  # n3 first: a later batch of the old rollout, were it in force
        cluster.sync(n)
    for n in cluster.names:
        assert cluster.chk(n, "Pump") == v11.sha256, n
        s = SyncState.objects.get(node__name=n, package_name="Pump")
        assert (s.state, s.error, s.installed_sha256) == ("installed", "", v11.sha256), n


def test_a_first_versions_unfinished_rollout_does_not_leave_a_node_without_the_package_after_a_rollback(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage],
) -> None:
    cluster = nodes(3)
    v1 = import_with("Pump", "1.0.0", rollout={"canary": "n1", "batch": 1})  # a first version, rolled out
    cluster.sync("n1")
    import_with("Pump", "2.0.0", rollout={"canary": "n1", "batch": 1})
    rollout_control(name="Pump", action="pause", actor=Actor(via="cli"))

    package_rollback(name="Pump", actor=Actor(via="cli"))  # back to 1.0.0, every node at once
    assert ExtensionPackage.objects.get(name="Pump").sha256 == v1.sha256
    for n in reversed(cluster.names):
        cluster.sync(n)
    assert {n: cluster.chk(n, "Pump") for n in cluster.names} == {n: v1.sha256 for n in cluster.names}
