"""Per-node broker users: with node A's CELERY_BROKER_URL, the broker lets A consume only A's queue.

Real users on the machine's real Redis (CELERY_BROKER_URL) and RabbitMQ (EXTADMIN_TEST_RABBITMQ),
made by a real ``manage.py node_credentials`` pointed at that broker, and real clients (redis-py,
py-amqp) opened with the URL it printed. Node names are unique per test; the users, queues and
roles a test made are removed at its end.
"""
from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import amqp
import pytest
import redis
from django.conf import settings
from django.db import connection
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.broker import broker_user, rabbitmq_permissions
from nodes.credentials import node_role
from nodes.models import Node, SyncRun
from nodes.services import node_queue
from tests.brokerusers import broker_users_drop
from tests.cluster.conftest import Cluster, cluster  # noqa: F401 (the real-agents fixture)
from tests.conftest import RABBITMQ_URL
from tests.dbroles import node_roles_drop
from tests.packages import build_package
from tests.processes import child_env, manage

BROKERS = [pytest.param("redis", marks=pytest.mark.redis), pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


@dataclass
class Broker:
    """One broker, as the console sees it (its own URL), and what the test made there."""

    kind: str
    url: str
    users: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    def issue(self, name: str, **env: str) -> tuple[dict[str, str], str]:
        """``node_credentials NAME --json`` in a console pointed at this broker: the settings and stderr."""
        self.users.append(broker_user(database=connection.settings_dict["NAME"], node_name=name))
        self.queues.append(node_queue(name))
        done = manage("node_credentials", name, "--json", env=child_env(CELERY_BROKER_URL=self.url, **env))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), done.stderr

    def declare_with_a_message(self, queue: str) -> None:
        """The queue as the console's nudges leave it: declared (as Celery does), one message waiting."""
        self.queues.append(queue)
        with Connection(self.url) as conn, conn.SimpleQueue(queue) as q:
            q.put({"nudge": queue})

    def messages(self, queue: str) -> int:
        if self.kind == "redis":
            return int(_redis(self.url).llen(queue))
        with _amqp(self.url) as conn:
            return int(conn.channel().queue_declare(queue, passive=True).message_count)

    def clean(self) -> None:
        broker_users_drop(url=self.url, users=self.users)
        if self.kind == "redis":
            client = _redis(self.url)
            for queue in self.queues:
                client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}",
                              f"unacked.{queue}", f"unacked_index.{queue}", f"unacked_mutex.{queue}")
            return
        with _amqp(self.url) as conn:
            for queue in self.queues:
                channel = conn.channel()
                channel.queue_delete(queue)
                channel.exchange_delete(queue)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The broker named by the test's parameter (``indirect``); its users, queues and the roles are removed after."""
    b = Broker(kind=request.param, url=settings.CELERY_BROKER_URL if request.param == "redis" else RABBITMQ_URL)
    yield b
    b.clean()
    node_roles_drop()


@pytest.fixture
def names() -> tuple[str, str]:
    prefix = f"b{uuid.uuid4().hex[:6]}"
    return f"{prefix}-a", f"{prefix}-b"


def _redis(url: str) -> redis.Redis:
    # No silent reconnect: a test sees the broker end a session.
    return redis.Redis.from_url(url, socket_timeout=10, retry=Retry(NoBackoff(), 0))


def _amqp(url: str) -> amqp.Connection:
    c = Connection(url)
    conn = amqp.Connection(
        host=f"{c.hostname}:{c.port or 5672}", userid=c.userid, password=c.password, virtual_host=c.virtual_host,
        connect_timeout=5,
    )
    conn.connect()
    return conn


def _open(kind: str, url: str) -> redis.Redis | amqp.Connection:
    if kind == "redis":
        client = _redis(url)
        client.ping()
        return client
    return _amqp(url)


def _use(opened: redis.Redis | amqp.Connection) -> None:
    if isinstance(opened, redis.Redis):
        opened.ping()
    else:
        opened.channel().basic_qos(0, 1, False)


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_it_gives_each_node_a_broker_user_of_its_own(broker: Broker, names: tuple[str, str]) -> None:
    a, _ = names
    creds, _ = broker.issue(a)
    url, console = urlsplit(creds["CELERY_BROKER_URL"]), urlsplit(broker.url)
    assert url.username == broker_user(database=connection.settings_dict["NAME"], node_name=a)
    assert (url.scheme, url.hostname, url.port, url.path) == (console.scheme, console.hostname, console.port,
                                                              console.path)
    assert url.password and url.password != console.password
    old = _open(broker.kind, creds["CELERY_BROKER_URL"])

    rotated, _ = broker.issue(a)

    assert urlsplit(rotated["CELERY_BROKER_URL"]).password != url.password
    with pytest.raises((redis.AuthenticationError, amqp.exceptions.AccessRefused)):
        _open(broker.kind, creds["CELERY_BROKER_URL"])  # the old password no longer connects
    with pytest.raises((redis.ConnectionError, amqp.exceptions.ConnectionForced)):
        _use(old)  # and the session opened with it was ended
    _use(_open(broker.kind, rotated["CELERY_BROKER_URL"]))


# What node A tries on node B's queue, with the client an attacker holding A's CELERY_BROKER_URL would
# use; the same on A's own queue is allowed (but for the default exchange and another node's unacked).
REDIS_TRIES: dict[str, Callable[[redis.Redis, str], object]] = {
    "consume": lambda c, q: c.brpop([q], timeout=1),
    "publish": lambda c, q: c.lpush(q, "forged nudge"),
    "purge or delete": lambda c, q: c.delete(q),
    "delete it in a script": lambda c, q: c.eval("return redis.call('del', KEYS[1])", 1, q),
    "read its unacked messages": lambda c, q: c.hget(f"unacked.{q}", "any tag"),
    "read the shared unacked messages": lambda c, q: c.hget("unacked", "any tag"),
}
AMQP_TRIES: dict[str, Callable[[amqp.Channel, str], object]] = {
    "consume": lambda ch, q: ch.basic_consume(q, callback=lambda message: None),
    "get": lambda ch, q: ch.basic_get(q),
    "publish to its exchange": lambda ch, q: _publish(ch, exchange=q, queue=q),
    "publish through the default exchange": lambda ch, q: _publish(ch, exchange="", queue=q),
    "purge": lambda ch, q: ch.queue_purge(q),
    "delete": lambda ch, q: ch.queue_delete(q),
}
ONLY_REFUSED = {"publish through the default exchange", "read the shared unacked messages"}
TRIES = [pytest.param("redis", t, marks=pytest.mark.redis, id=f"redis-{t}") for t in REDIS_TRIES] + [
    pytest.param("rabbitmq", t, marks=pytest.mark.rabbitmq, id=f"rabbitmq-{t}") for t in AMQP_TRIES
]


def _publish(channel: amqp.Channel, *, exchange: str, queue: str) -> None:
    # With publisher confirms: the broker's answer (an ack, or the channel closed) before returning.
    channel.basic_publish_confirm(amqp.Message("forged nudge"), exchange=exchange, routing_key=queue)


def _try(kind: str, attempt: str, url: str, queue: str) -> None:
    if kind == "redis":
        REDIS_TRIES[attempt](_redis(url), queue)
        return
    with _amqp(url) as conn:
        AMQP_TRIES[attempt](conn.channel(), queue)


@pytest.mark.parametrize(("broker", "attempt"), TRIES, indirect=["broker"])
def test_it_refuses_node_a_anything_on_node_bs_queue(broker: Broker, attempt: str, names: tuple[str, str]) -> None:
    a, b = names
    creds, _ = broker.issue(a)
    broker.declare_with_a_message(node_queue(b))
    broker.declare_with_a_message(node_queue(a))

    refused = redis.exceptions.NoPermissionError if broker.kind == "redis" else amqp.exceptions.AccessRefused
    with pytest.raises(refused):
        _try(broker.kind, attempt, creds["CELERY_BROKER_URL"], node_queue(b))

    assert broker.messages(node_queue(b)) == 1  # B's nudge is still there, and nothing was added
    if attempt not in ONLY_REFUSED:
        _try(broker.kind, attempt, creds["CELERY_BROKER_URL"], node_queue(a))


@pytest.mark.cluster
@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_it_converges_an_agent_that_holds_only_its_own_database_and_broker_credentials(
    broker: Broker, cluster: Cluster, node_storage: NodeStorage, pkgdir: Path  # noqa: F811 (agents stop first)
) -> None:
    name = cluster.name(1)
    creds, _ = broker.issue(name)
    agent = cluster.agent(name, **creds).start()  # DATABASE_URL and CELERY_BROKER_URL: the node's own, nothing else
    cluster.wait_started(name)

    # The console, pointed at this broker, imports; the periodic pass is a minute away: the nudge does it.
    console = child_env(CELERY_BROKER_URL=broker.url, EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root))
    done = manage("import_extension", str(build_package(pkgdir, "Alpha")), env=console)
    assert done.returncode == 0, done.stderr

    cluster.wait_converged([name], [ExtensionPackage.objects.get(name="Alpha")], timeout=20)
    assert SyncRun.objects.filter(node__name=name, trigger=SyncRun.Trigger.NUDGE).exists()
    assert _connected_as(broker, urlsplit(creds["CELERY_BROKER_URL"]).username or "")
    for word in ("NOPERM", "ACCESS_REFUSED", "refused", "Traceback"):
        assert word not in agent.output()


def _connected_as(broker: Broker, user: str) -> bool:
    if broker.kind == "redis":
        return any(client.get("user") == user for client in _redis(broker.url).client_list())
    done = subprocess.run(["rabbitmqctl", "list_connections", "user"], capture_output=True, text=True, timeout=60)
    return user in done.stdout.split()


def test_it_says_the_broker_credentials_are_the_consoles_own_on_the_filesystem_broker(names: tuple[str, str]) -> None:
    a, _ = names
    try:
        done = manage("node_credentials", a, env=child_env(CELERY_BROKER_URL=""))  # the embedded default
    finally:
        node_roles_drop()

    comment, _, broker_url = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stderr
    assert broker_url == "CELERY_BROKER_URL=filesystem://" and "the console's own broker credentials" in comment
    assert (
        "warning: CELERY_BROKER_URL is the console's own: the filesystem broker (the embedded default) has no users: "
        "any process that can write its folder can publish to, consume or purge every node's queue"
    ) in done.stderr.splitlines()


@pytest.mark.redis
def test_it_says_the_broker_credentials_are_the_consoles_own_when_its_redis_user_may_not_make_users(
    names: tuple[str, str]
) -> None:
    a, _ = names
    admin, console_user = _redis(settings.CELERY_BROKER_URL), f"extadmin_test_console_{a}"
    admin.acl_setuser(console_user, enabled=True, passwords=["+secret"], keys=["*"], channels=["*"],
                      commands=["+@all", "-acl"])
    parts = urlsplit(settings.CELERY_BROKER_URL)
    url = parts._replace(netloc=f"{console_user}:secret@{parts.netloc.rpartition('@')[2]}").geturl()
    try:
        done = manage("node_credentials", a, "--json", env=child_env(CELERY_BROKER_URL=url))
    finally:
        admin.acl_deluser(console_user)
        node_roles_drop()

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["CELERY_BROKER_URL"] == url
    assert "warning: CELERY_BROKER_URL is the console's own: the console's Redis user may not create ACL users (" \
        in done.stderr


@pytest.mark.rabbitmq
def test_it_tells_the_operator_which_commands_make_the_user_without_rabbitmqctl(names: tuple[str, str]) -> None:
    a, _ = names
    try:
        done = manage("node_credentials", a, "--json", env=child_env(CELERY_BROKER_URL=RABBITMQ_URL, PATH="/nowhere"))
    finally:
        node_roles_drop()

    user, (configure, write, read) = broker_user(database=connection.settings_dict["NAME"], node_name=a), \
        rabbitmq_permissions(node_queue(a))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["CELERY_BROKER_URL"] == RABBITMQ_URL
    assert "warning: CELERY_BROKER_URL is the console's own: rabbitmqctl is not on this host's PATH" in done.stderr
    assert f"rabbitmqctl set_permissions -p / {user} '{configure}' '{write}' '{read}'" in done.stderr
    assert (configure, write, read) == ("^node\\." + a.replace("-", "\\-") + "$",) * 3


def test_it_refuses_and_writes_nothing_when_the_redis_broker_does_not_answer(names: tuple[str, str]) -> None:
    a, _ = names
    done = manage("node_credentials", a, env=child_env(CELERY_BROKER_URL="redis://127.0.0.1:1/0"))  # nobody there

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: node_credentials: the Redis broker did not answer: "), done.stderr
    assert not Node.objects.filter(name=a).exists() and not _role_exists(node_role(connection.settings_dict["NAME"], a))


@pytest.mark.rabbitmq
def test_it_refuses_and_writes_nothing_when_the_rabbitmq_it_manages_is_not_the_brokers(names: tuple[str, str]) -> None:
    a, _ = names
    elsewhere = RABBITMQ_URL.replace(f":{urlsplit(RABBITMQ_URL).port or 5672}/", ":1/")  # rabbitmqctl's is here
    try:
        done = manage("node_credentials", a, env=child_env(CELERY_BROKER_URL=elsewhere))
    finally:
        broker_users_drop(url=RABBITMQ_URL, users=[broker_user(database=connection.settings_dict["NAME"], node_name=a)])

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: node_credentials: the broker refused the new user "), done.stderr
    assert "is it the one CELERY_BROKER_URL names?" in done.stderr
    assert not Node.objects.filter(name=a).exists() and not _role_exists(node_role(connection.settings_dict["NAME"], a))


def _role_exists(role: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        return cursor.fetchone() is not None
