"""An agent's own metrics: its process (CPU, memory, open files, Python's collector) and its syncs,
served by ``prometheus_client`` on ``127.0.0.1:EXTADMIN_AGENT_METRICS_PORT`` when that is set.

The console's ``/metrics`` says what the database knows about every node; this says what one
agent process is doing, which only it knows. Bound to loopback only: a Prometheus (or an exporter
proxy) on the node's own host scrapes it. A port already taken is logged and the agent syncs on
without metrics: monitoring never stops a node from converging.
"""
from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

SYNCS = Counter("extadmin_agent_syncs", "Syncs this agent ran, by trigger and outcome.", ["trigger", "outcome"])
SYNC_SECONDS = Histogram(
    "extadmin_agent_sync_duration_seconds", "How long this agent's syncs took, waiting for the lease included.",
    ["trigger"], buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
HEARTBEAT_FAILURES = Counter("extadmin_agent_heartbeat_failures", "Heartbeats this agent could not write.")


def agent_metrics_serve(*, port: int) -> bool:
    """Serve the default registry on 127.0.0.1:``port``; False (and a log line) when it cannot."""
    if not port:
        return False
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as exc:
        log.error("agent metrics not served on 127.0.0.1:%s: %s", port, exc.strerror or exc)
        return False
    log.info("agent metrics on http://127.0.0.1:%s/metrics", port)
    return True


def agent_sync_observed(*, trigger: str, outcome: str, seconds: float) -> None:
    SYNCS.labels(trigger=trigger, outcome=outcome).inc()
    SYNC_SECONDS.labels(trigger=trigger).observe(seconds)
