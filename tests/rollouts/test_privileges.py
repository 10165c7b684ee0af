"""A node's own database role and rollouts: it reads them all, writes only its own place in a rollout
and, of a rollout it is part of, only the columns a transition changes (rollouts.0002).

Real roles on the real PostgreSQL server, a real second connection as the node's role; and real
agents that hold only their own credentials running a rollout to its end.
"""
from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.models import Node
from rollouts.models import Rollout, RolloutNode, RolloutPolicy
from rollouts.services import rollouts_status
from tests.cluster.conftest import Cluster, cluster  # noqa: F401 (the real-agents fixture)
from tests.nodes.test_credentials import Issue, connect, issue, names  # noqa: F401 (fixtures)
from tests.processes import wait_for

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def _rollout(package: str, nodes: list[str]) -> Rollout:
    now = timezone.now()
    r = Rollout.objects.create(package_name=package, version="2.0.0", sha256="b" * 64, from_version="1.0.0",
                               from_sha256="a" * 64, batch_size=1, created_at=now, changed_at=now, last_batch=2)
    for i, name in enumerate(nodes, start=1):
        RolloutNode.objects.create(rollout=r, node=Node.objects.get(name=name), batch=i, changed_at=now)
    return r


def _snapshot() -> tuple[object, ...]:
    return (
        list(Rollout.objects.order_by("id").values_list("state", "batch", "reason", "sha256", "version")),
        list(RolloutNode.objects.order_by("id").values_list("node__name", "state", "error", "batch")),
        list(RolloutPolicy.objects.values_list("batch")),
    )


def test_a_node_moves_its_own_place_and_a_rollout_it_is_part_of(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection],  # noqa: F811
) -> None:
    a, b = names
    node = connect(issue(a)["DATABASE_URL"])
    issue(b)
    r = _rollout("Pump", [a, b])

    assert node.execute("SELECT count(*) FROM rollouts_rolloutnode WHERE rollout_id = %s", [r.pk]).fetchone() == (2,)
    node.execute("UPDATE rollouts_rolloutnode SET state = 'installed', changed_at = now(), swapped_at = now() "
                 "WHERE rollout_id = %s AND node_id = (SELECT id FROM nodes_node WHERE name = %s) "
                 "AND state = 'waiting'", [r.pk, a])
    node.execute("UPDATE rollouts_rollout SET batch = 2, changed_at = now() WHERE id = %s AND batch = 1", [r.pk])

    assert RolloutNode.objects.get(rollout=r, node__name=a).state == "installed"
    assert Rollout.objects.get(pk=r.pk).batch == 2


FORBIDDEN = {
    "another node's place": "UPDATE rollouts_rolloutnode SET state = 'installed' "
    "WHERE node_id = (SELECT id FROM nodes_node WHERE name = %(b)s)",
    "its own place moved to another batch": "UPDATE rollouts_rolloutnode SET batch = 1 "
    "WHERE node_id = (SELECT id FROM nodes_node WHERE name = %(a)s)",
    "a rollout it is not part of": "UPDATE rollouts_rollout SET state = 'completed' WHERE package_name = 'Other'",
    "a rollout's version": "UPDATE rollouts_rollout SET sha256 = repeat('0', 64) WHERE package_name = 'Pump'",
    "a new place": "INSERT INTO rollouts_rolloutnode (rollout_id, node_id, batch, state, error, changed_at) "
    "SELECT r.id, n.id, 0, 'installed', '', now() FROM rollouts_rollout r, nodes_node n "
    "WHERE r.package_name = 'Other' AND n.name = %(a)s",
    "a place deleted": "DELETE FROM rollouts_rolloutnode",
    "a rollout deleted": "DELETE FROM rollouts_rollout",
    "the cluster's rollout policy": (
        "INSERT INTO rollouts_rolloutpolicy (id, canary, activation) VALUES (1, '', 'each')"
    ),
}


@pytest.mark.parametrize("what", list(FORBIDDEN))
def test_a_node_may_not_write_beyond_its_own_place(
    what: str, issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection],  # noqa: F811
) -> None:
    a, b = names
    node = connect(issue(a)["DATABASE_URL"])
    issue(b)
    _rollout("Pump", [a, b])
    _rollout("Other", [b])
    before = _snapshot()

    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        node.execute(FORBIDDEN[what], {"a": a, "b": b})

    assert "permission denied" in str(refused.value) or "violates row-level security policy" in str(refused.value)
    assert _snapshot() == before


@pytest.mark.cluster
def test_agents_holding_only_their_own_credentials_run_a_rollout_to_its_end(
    issue: Issue, cluster: Cluster, import_with: Callable[..., ExtensionPackage],  # noqa: F811
) -> None:
    agents = [cluster.name(1), cluster.name(2)]
    for name in agents:
        cluster.agent(name, DATABASE_URL=issue(name)["DATABASE_URL"]).start()
    for name in agents:
        cluster.wait_started(name)
    v1 = import_with("Pump", "1.0.0")
    cluster.wait_converged(agents, [v1])
    v2 = import_with("Pump", "2.0.0", rollout={"canary": agents[0], "batch": "1"})
    wait_for(lambda: rollouts_status("Pump")["rollouts"][0]["state"] == "completed", timeout=60,
             what="the rollout to complete")
    cluster.wait_converged(agents, [ExtensionPackage.objects.get(name="Pump")])
    assert v2.sha256 != v1.sha256
    for name in agents:
        out = cluster.agents[name].output()
        assert "permission denied" not in out and "row-level security" not in out, out
