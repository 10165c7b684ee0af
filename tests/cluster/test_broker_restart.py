"""The broker restarted in the middle of a together activation, real processes.

Three agents and the importing console talk to a broker this test owns: a private ``redis-server``
(killed and started again: a restart with no persistence, every queued message lost), or the
RabbitMQ of the test run behind a TCP proxy (cut and healed: every connection dies, reconnects fail,
then they work again; a shared RabbitMQ is never restarted). One agent is held in the middle of
staging the new version while the others have staged it; the broker goes down; the held agent goes
on, the rollout flips to ``activating`` and every node swaps while the broker is away; the broker
comes back. No node swaps before all are staged, the swaps come close together, no node ever shows
"installed" of what its disk does not hold, and afterwards every agent's worker takes nudges again.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from kombu import Connection

from extadmin.models import ExtensionPackage
from nodes.models import SyncRun, SyncState
from nodes.services import node_queue
from rollouts.models import Rollout, RolloutNode
from tests.cluster.conftest import Cluster
from tests.cluster.test_rollouts import _import
from tests.conftest import RABBITMQ_URL
from tests.packages import build_package
from tests.processes import Pause, child_env, manage, wait_for
from tests.reliability.harness import PrivateRedis
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

AGENTS = 3
SKEW_LIMIT_S = 3.0  # first to last swap; the agents see the flip within 0.1 s, the machine is loaded


@dataclass
class Broker:
    """A broker only this test uses: ``down()`` is an outage for its clients, ``up()`` ends it."""

    url: str
    redis: PrivateRedis | None = None
    proxy: TcpProxy | None = None

    def down(self) -> None:
        if self.redis is not None:
            self.redis.stop()  # SIGKILL: nothing saved, every queue gone
        else:
            assert self.proxy is not None
            self.proxy.cut()

    def up(self) -> None:
        if self.redis is not None:
            self.redis.start()
        else:
            assert self.proxy is not None
            self.proxy.heal()


def _rabbitmq_url() -> str:
    own = settings.CELERY_BROKER_URL
    return own if urlsplit(own).scheme in ("amqp", "pyamqp") else RABBITMQ_URL


@pytest.fixture(params=[
    pytest.param("redis-server", id="redis-restart"),
    pytest.param("rabbitmq", id="rabbitmq-cut", marks=pytest.mark.rabbitmq),
])
def broker(request: pytest.FixtureRequest, tmp_path: Path, cluster: Cluster) -> Iterator[Broker]:
    """The agents are stopped before their broker goes (a stop needs no reconnect loop)."""
    if request.param == "redis-server":
        if not PrivateRedis.available():
            pytest.skip("redis-server is not installed")
        folder = tmp_path / "redis"
        folder.mkdir()
        private = PrivateRedis(folder).start()
        yield Broker(private.url, redis=private)
        cluster.stop_all()
        private.stop()
        return
    url = _rabbitmq_url()
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    yield Broker(proxy.url_for(url, parts.hostname or "127.0.0.1", parts.port or 5672), proxy=proxy)
    cluster.stop_all()
    proxy.close()
    _queues_delete(url, [*cluster.agents, "web"])  # the node names are never used again


def _queues_delete(url: str, names: list[str]) -> None:
    with Connection(url, connect_timeout=5) as conn:
        for name in names:
            try:
                with conn.channel() as channel:
                    channel.queue_delete(node_queue(name))
            except Exception:  # noqa: S112 (a queue that was never declared)
                continue


def _import_in_a_console(cluster: Cluster, broker: Broker, pkgdir: Path, version: str, *options: str) -> None:
    """``import_extension`` as its own process on node web, nudging through the test's broker."""
    path = build_package(pkgdir, "Pump", version)
    done = manage("import_extension", str(path), *options,
                  env=child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(cluster.storage("web").root),
                                CELERY_BROKER_URL=broker.url))
    assert done.returncode == 0, done.stderr


class Watch:
    """The cluster sampled as fast as the test can: every node's disk and its shown state."""

    def __init__(self, cluster: Cluster, names: list[str], new: str) -> None:
        self.cluster, self.names, self.new = cluster, names, new
        self.first_new: dict[str, float] = {}  # node → when its disk first held the new version
        self.false_installed: list[str] = []
        self.swapped_before_staged: list[str] = []

    def sample(self) -> None:
        now = time.monotonic()
        disks = {n: self.cluster.storage(n).read_chk("Pump") for n in self.names}
        for n, chk in disks.items():
            if chk == self.new and n not in self.first_new:
                self.first_new[n] = now
        rows = dict(RolloutNode.objects.filter(rollout__version="2.0.0", node__name__in=self.names)
                    .values_list("node__name", "staged_at"))
        if self.first_new and not all(rows.get(n) for n in self.names):
            self.swapped_before_staged.append(f"{sorted(self.first_new)} swapped; staged: {rows}")
        for s in SyncState.objects.filter(node__name__in=self.names, package_name="Pump", state="installed"):
            disk = self.cluster.storage(s.node.name).read_chk("Pump")
            if disk != s.installed_sha256:
                self.false_installed.append(f"{s.node.name}: shown {s.installed_sha256[:8]}, disk {disk}")

    def until(self, condition, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        def check() -> bool:
            self.sample()
            return bool(condition())

        wait_for(check, timeout=timeout, interval=0.02, what=what)


def _rollout_state() -> str:
    """Read only: the test process never moves the rollout on (the agents do)."""
    return Rollout.objects.get(package_name="Pump", version="2.0.0").state


def test_a_together_activation_survives_the_broker_restarted_while_nodes_stage(
    cluster: Cluster, pkgdir: Path, broker: Broker, tmp_path: Path,
) -> None:
    v1 = _import(pkgdir, "1.0.0")  # before the agents: their startup pass installs it
    names = cluster.start(AGENTS, CELERY_BROKER_URL=broker.url)
    cluster.wait_converged(names, [v1])
    *quick, held = names
    pause = Pause(tmp_path / "release")
    last = SyncRun.objects.filter(node__name=held).order_by("-id").values_list("id", flat=True).first() or 0
    cluster.agents[held].stop()
    cluster.agent(held, CELERY_BROKER_URL=broker.url, EXTADMIN_FAULTS=pause.at("sync.after_fetch")).start()
    wait_for(lambda: SyncRun.objects.filter(node__name=held, trigger=SyncRun.Trigger.STARTUP, id__gt=last)
             .exclude(outcome=SyncRun.Outcome.RUNNING).exists(), timeout=60, what=f"{held} restarted")

    # The console's nudges go through the broker: the agents' periodic pass is a minute away.
    _import_in_a_console(cluster, broker, pkgdir, "2.0.0", "--activation", "together")
    v2 = ExtensionPackage.objects.get(name="Pump")
    watch = Watch(cluster, names, v2.sha256)
    watch.until(lambda: RolloutNode.objects.filter(rollout__version="2.0.0", node__name__in=quick,
                                                   state="staged").count() == len(quick),
                timeout=60, what=f"{quick} staged")
    pause.wait_reached()
    assert watch.first_new == {}, "a node swapped while another was still staging"

    broker.down()
    time.sleep(2)  # the agents' workers lose their connection and start reconnecting
    pause.release()  # the held node stages with the broker away; the flip's nudge cannot be sent
    watch.until(lambda: len(watch.first_new) == len(names), timeout=60, what="every node to swap")
    assert all(cluster.agents[n].alive for n in names), [cluster.agents[n].output()[-2000:] for n in names]

    broker.up()
    watch.until(lambda: _rollout_state() == "completed", timeout=60, what="the rollout to complete")
    cluster.wait_converged(names, [v2])
    watch.sample()
    assert watch.swapped_before_staged == []
    assert watch.false_installed == []
    skew = max(watch.first_new.values()) - min(watch.first_new.values())
    assert skew < SKEW_LIMIT_S, watch.first_new
    rows = RolloutNode.objects.filter(rollout__version="2.0.0", node__name__in=names)
    assert max(r.staged_at for r in rows) <= min(r.swapped_at for r in rows)  # type: ignore[type-var]

    # The broker is back: every agent's worker took up its queue again (a nudge, not a periodic pass).
    last_runs = {n: SyncRun.objects.filter(node__name=n).order_by("-id").values_list("id", flat=True)[0]
                 for n in names}
    _import_in_a_console(cluster, broker, pkgdir, "3.0.0")
    v3 = ExtensionPackage.objects.get(name="Pump")
    cluster.wait_converged(names, [v3], timeout=45)
    for n in names:
        assert SyncRun.objects.filter(node__name=n, id__gt=last_runs[n], trigger=SyncRun.Trigger.NUDGE).exists(), n
