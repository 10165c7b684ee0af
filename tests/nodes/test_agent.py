from __future__ import annotations

import threading
from pathlib import Path

import pytest

from extadmin.claim import storage_claim
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from nodes.agent import Agent

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


def test_a_second_shutdown_signal_inside_the_first_ones_stop_does_not_hang_the_agent(tmp_path: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT, and ``scripts/run`` then sends SIGTERM: Celery calls the
    agent's shutdown handler for each, in the main thread, and the second may land while the first
    is inside ``Event.set()``, holding its lock. Waiting for that lock there waits for ever (found by
    ``tests/cluster/test_run_command.py::test_it_stops_everything_on_ctrl_c`` on a loaded machine)."""
    agent = Agent(name="n1", storage=tmp_path, sync_interval=60, heartbeat_interval=5)

    def first_handler_interrupted_inside_its_set() -> None:
        agent._on_worker_shutdown(how="warm")  # the first signal: the agent is stopping
        with agent.stop._cond:  # still inside its Event.set(), as when the second signal lands
            agent._on_worker_shutdown(how="warm")

    second = threading.Thread(target=first_handler_interrupted_inside_its_set, daemon=True)
    second.start()
    second.join(timeout=5)
    assert not second.is_alive(), "the second shutdown signal waited for the lock its own thread holds"
    assert agent.stop.is_set()
