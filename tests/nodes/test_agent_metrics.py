"""An agent's own metrics server: on loopback, and a port already taken never stops the agent."""
from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodes.agent_metrics import agent_metrics_serve, agent_sync_observed
from tests.processes import free_port, http_get

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def test_it_serves_the_agents_syncs_on_loopback() -> None:
    port = free_port()
    assert agent_metrics_serve(port=port)
    agent_sync_observed(trigger="manual", outcome="succeeded", seconds=0.2)

    status, body = http_get(port, "/metrics")

    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples[("extadmin_agent_syncs_total", (("outcome", "succeeded"), ("trigger", "manual")))] >= 1


def test_it_logs_a_taken_port_instead_of_raising(caplog) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="nodes.agent_metrics"):
            assert agent_metrics_serve(port=port) is False
    assert f"agent metrics not served on 127.0.0.1:{port}" in caplog.text
    assert agent_metrics_serve(port=0) is False  # unset: no server
