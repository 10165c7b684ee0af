"""Done when (issue 14): Prometheus's own text parser reads ``/metrics`` from a running console
(gunicorn, as ``scripts/run`` starts it) with real agents, and the figures match the cluster: a
stopped node is counted offline, the convergence histogram grows when an import converges; each
agent serves its own process metrics on loopback."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import ManagedProcess, child_env, free_port, http_get, port_answers, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

HEARTBEAT = "2"  # as in test_truth: a heartbeat late on a loaded machine must not flip a live agent
TOKEN = "metrics-token-for-the-test"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def console(tmp_path: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = child_env(EXTADMIN_HEARTBEAT_INTERVAL=HEARTBEAT, EXTADMIN_METRICS_TOKEN=TOKEN, EXTADMIN_NODE="console")
    proc = ManagedProcess(env=env, log=tmp_path / "gunicorn.log",
                          argv=[gunicorn, "extadmin.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                "--no-control-socket"]).start()
    wait_for(lambda: port_answers(port) or not proc.alive, timeout=60, what="gunicorn")
    assert proc.alive, proc.output()
    return proc, port


def scrape(port: int) -> Samples:
    status, body = http_get(port, "/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200, body
    return parse(body)


def test_it_reads_the_cluster_from_a_running_console_with_real_agents(
    cluster: Cluster, import_package: Importer, tmp_path: Path, settings  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_HEARTBEAT_INTERVAL = float(HEARTBEAT)
    ports = {cluster.name(1): free_port(), cluster.name(2): free_port()}
    for name, port in ports.items():
        cluster.agent(name, EXTADMIN_HEARTBEAT_INTERVAL=HEARTBEAT, EXTADMIN_AGENT_METRICS_PORT=str(port)).start()
    names = list(ports)
    for name in names:
        cluster.wait_started(name)
    server, port = console(tmp_path)
    try:
        assert http_get(port, "/metrics")[0] == 401  # the token is set: nothing without it
        first = scrape(port)
        assert all(first[("extadmin_node_online", (("node", n),))] == 1 for n in names)
        before = first[("extadmin_convergence_seconds_count", ())]

        pump = import_package("Pump")
        cluster.wait_converged(names, [pump], timeout=60)
        wait_for(lambda: scrape(port)[("extadmin_convergence_seconds_count", ())] == before + 1, timeout=30,
                 what="the convergence histogram to count Pump")
        m = scrape(port)
        assert m[("extadmin_package_converged", (("package", "Pump"), ("version", "1.0.0")))] == 1
        assert m[("extadmin_sync_runs_total", (("node", names[0]), ("outcome", "succeeded")))] >= 2

        agent = parse(http_get(ports[names[0]], "/metrics")[1])  # the agent's own, on loopback
        assert agent[("extadmin_agent_syncs_total", (("outcome", "succeeded"), ("trigger", "startup")))] == 1
        assert ("process_cpu_seconds_total", ()) in agent

        cluster.agents[names[1]].stop()
        wait_for(lambda: scrape(port)[("extadmin_node_online", (("node", names[1]),))] == 0, timeout=30,
                 what=f"{names[1]} counted offline")
        m = scrape(port)
        assert m[("extadmin_nodes", (("state", "offline"),))] >= 1
        assert m[("extadmin_node_online", (("node", names[0]),))] == 1
    finally:
        server.stop()
    assert TOKEN not in server.output()  # never in gunicorn's log
