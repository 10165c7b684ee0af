"""Per-node broker users: where the broker can say so, an agent may consume only its own queue.

``broker_credentials_issue`` gives a node its own broker user beside its database role:

- RabbitMQ (``amqp://``): a user whose configure/write/read permissions on the console's vhost
  match only ``node.<name>``: the queue, and the direct exchange of the same name that Celery
  declares and binds it to. Made with ``rabbitmqctl`` (AMQP cannot create users); without it,
  the credentials are the console's own and the operator is told which commands make them.
- Redis (``redis://``): an ACL user limited to the keys of its own queue (its priority lists,
  binding sets and unacked bookkeeping, which ``agent_broker_options`` names per node) and to
  the commands kombu's Redis transport sends for a consumer.
- Anything else (the embedded filesystem broker): no users to give; the console's own, saying why.

Issuing again rotates the password and ends the connections opened with the old one.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from django.conf import settings
from kombu import Connection

from extadmin.operations import describe_error
from extadmin.packaging import Refusal
from nodes.services import node_queue

STEP = "node_credentials"
REDIS_SCHEMES = ("redis", "rediss")
RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp")
# What a consumer of one queue sends, as seen with MONITOR while a real agent starts, takes a nudge
# (acks late) and stops: the queue's lists, its binding sets, the unacked bookkeeping with its mutex
# (a Lua script releases it), transactions around them; nothing else.
REDIS_COMMANDS = (
    "select", "ping", "brpop", "llen", "lpush", "rpush", "sadd", "srem", "smembers", "multi", "exec",
    "discard", "watch", "unwatch", "set", "get", "del", "zadd", "zrem", "zrange", "hset", "hget", "hdel",
    "evalsha", "eval", "script|exists", "script|load",
)
RABBITMQCTL_TIMEOUT = 60
EX_NOUSER = 67  # rabbitmqctl's exit status for a user that does not exist: a new node


@dataclass(frozen=True)
class BrokerCredentials:
    url: str
    user: str | None  # None: the console's own credentials
    warnings: list[str] = field(default_factory=list)


def agent_broker_options(*, node_name: str, broker_url: str) -> dict[str, object]:
    """Transport options of ``node_name``'s agent: on Redis, unacked bookkeeping of its own.

    kombu keeps every consumer's unacknowledged messages in one ``unacked`` hash, and any consumer
    restores any of them into its queue: with per-node users that would need rights on every
    node's queue. Per-node keys keep each agent to its own, which its ACL user can then enforce.
    """
    if urlsplit(broker_url).scheme not in REDIS_SCHEMES:
        return {}
    return dict(_unacked_keys(node_queue(node_name)))


def _unacked_keys(queue: str) -> dict[str, str]:
    return {
        "unacked_key": f"unacked.{queue}",
        "unacked_index_key": f"unacked_index.{queue}",
        "unacked_mutex_key": f"unacked_mutex.{queue}",
    }


def broker_user(*, database: str, node_name: str) -> str:
    """The node's broker user: readable, unique per database and node (brokers are shared too)."""
    readable = re.sub(r"[^a-z0-9_]", "_", node_name.lower())[:32]
    return f"extadmin_agent_{readable}_{hashlib.sha256((database + chr(0) + node_name).encode()).hexdigest()[:12]}"


def broker_credentials_issue(*, node_name: str, database: str) -> BrokerCredentials:
    """Create or rotate ``node_name``'s broker user, or say why its agent gets the console's own."""
    url = settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    user, password = broker_user(database=database, node_name=node_name), secrets.token_urlsafe(32)
    if scheme in REDIS_SCHEMES:
        return _redis_issue(url=url, user=user, password=password, queue=node_queue(node_name))
    if scheme in RABBITMQ_SCHEMES:
        return _rabbitmq_issue(url=url, user=user, password=password, queue=node_queue(node_name))
    why = (
        "the filesystem broker (the embedded default) has no users: any process that can write its folder can "
        "publish to, consume or purge every node's queue"
        if scheme == "filesystem" else f"extadmin cannot give users of a {scheme}:// broker"
    )
    return BrokerCredentials(url=url, user=None, warnings=[_console_own(why)])


def _console_own(why: str) -> str:
    return f"CELERY_BROKER_URL is the console's own: {why}"


def _with_user(url: str, *, user: str, password: str) -> str:
    parts = urlsplit(url)
    where = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{where}"))


# --- Redis --------------------------------------------------------------------------------------
def redis_keys(queue: str) -> list[str]:
    """Every key a consumer of ``queue`` touches (kombu's names; priority lists end in \\x06\\x16<digit>)."""
    return [
        queue, f"{queue}\x06\x16?", f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}",
        *_unacked_keys(queue).values(),
    ]


def _redis_issue(*, url: str, user: str, password: str, queue: str) -> BrokerCredentials:
    # The password goes to the server as its SHA-256, never in clear text (ACL LIST shows no secret).
    digest = hashlib.sha256(password.encode()).hexdigest()
    rules = ["reset", "on", f"#{digest}", "resetchannels", *(f"~{key}" for key in redis_keys(queue)),
             "-@all", *(f"+{command}" for command in REDIS_COMMANDS)]
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10, decode_responses=True)
    try:
        try:
            client.execute_command("ACL", "SETUSER", user, *rules)
        except redis.exceptions.NoPermissionError as exc:
            return BrokerCredentials(url=url, user=None, warnings=[_console_own(
                f"the console's Redis user may not create ACL users ({describe_error(exc)})")])
        client.execute_command("CLIENT", "KILL", "USER", user)  # sessions opened with the old password
        warnings = _redis_warnings(client)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Refusal(STEP, f"the Redis broker did not answer: {describe_error(exc)}") from exc
    except redis.RedisError as exc:  # an older Redis without these ACL rules, say
        raise Refusal(STEP, f"Redis refused the node's ACL user {user}: {describe_error(exc)}") from exc
    finally:
        client.close()
    return BrokerCredentials(url=_with_user(url, user=user, password=password), user=user, warnings=warnings)


def _redis_warnings(client: redis.Redis) -> list[str]:
    warnings = []
    try:
        client.execute_command("ACL", "SAVE")
    except redis.ResponseError as exc:
        warnings.append(
            f"Redis keeps the node's ACL user only until it restarts ({describe_error(exc)}): configure an aclfile, "
            "or run node_credentials again after a restart"
        )
    me = str(client.acl_whoami())
    flags = (client.acl_getuser(me) or {}).get("flags")
    if isinstance(flags, list) and "nopass" in flags:
        warnings.append(
            f"the console's Redis user '{me}' has no password: anyone who reaches Redis connects as it, with every "
            "right, around the node's ACL user; give it one (requirepass, or ACL SETUSER)"
        )
    return warnings


# --- RabbitMQ -------------------------------------------------------------------------------------
def rabbitmq_permissions(queue: str) -> tuple[str, str, str]:
    """configure, write, read: the queue and the exchange Celery declares for it share its name."""
    only = f"^{re.escape(queue)}$"
    return only, only, only


def _rabbitmq_issue(*, url: str, user: str, password: str, queue: str) -> BrokerCredentials:
    vhost = Connection(url).virtual_host or "/"
    configure, write, read = rabbitmq_permissions(queue)
    if shutil.which("rabbitmqctl") is None:
        return BrokerCredentials(url=url, user=None, warnings=[_console_own(
            "rabbitmqctl is not on this host's PATH (AMQP cannot create users); on the broker's host run: "
            f"rabbitmqctl add_user {user} (the password on stdin); rabbitmqctl set_permissions -p {vhost} {user} "
            f"'{configure}' '{write}' '{read}' — then give the agent amqp://{user}:<password>@… (docs/security.md)")])
    try:
        changed = _rabbitmqctl("change_password", user, stdin=password)
        _check(_rabbitmqctl("add_user", user, stdin=password) if changed.returncode == EX_NOUSER else changed)
        _check(_rabbitmqctl("set_permissions", "-p", vhost, user, configure, write, read))
        _check(_rabbitmqctl("close_all_user_connections", user, "extadmin: node credentials rotated"))
    except (OSError, subprocess.SubprocessError) as exc:
        raise Refusal(STEP, f"rabbitmqctl could not give the node its broker user: {describe_error(exc)}") from exc
    node_url = _with_user(url, user=user, password=password)
    _check_login(node_url, user=user)
    return BrokerCredentials(url=node_url, user=user)


def _rabbitmqctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], input=stdin, capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT,
    )


def _check(done: subprocess.CompletedProcess[str]) -> None:
    if done.returncode != 0:
        words = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise subprocess.SubprocessError(f"{done.args[1]}: {words[-1] if words else f'exit {done.returncode}'}")


def _check_login(url: str, *, user: str) -> None:
    """rabbitmqctl manages the RabbitMQ of this host: make sure it is the one CELERY_BROKER_URL names."""
    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        raise Refusal(
            STEP,
            f"the broker refused the new user {user}: {describe_error(exc)} (rabbitmqctl manages this host's RabbitMQ; "
            "is it the one CELERY_BROKER_URL names?)",
        ) from exc
