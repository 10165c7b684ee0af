from __future__ import annotations

import pytest

from extadmin.claim import storage_claim
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def test_it_refuses_a_storage_that_belongs_to_another_node(n1: NodeStorage) -> None:
    storage_claim(storage=n1, node_name="n1", exclusive=False).release()

    with pytest.raises(Refusal, match="belongs to node n1"):
        storage_claim(storage=n1, node_name="n2", exclusive=False)


def test_it_refuses_a_storage_that_a_running_agent_holds(n1: NodeStorage) -> None:
    held = storage_claim(storage=n1, node_name="n1", exclusive=True)
    try:
        with pytest.raises(Refusal, match=r"already in use by the running agent of node n1 \(pid \d+\)"):
            storage_claim(storage=n1, node_name="n1", exclusive=True)
    finally:
        held.release()

    storage_claim(storage=n1, node_name="n1", exclusive=True).release()  # free again once released
