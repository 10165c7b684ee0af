"""Broker users are server-wide, like PostgreSQL roles: the tests remove the ones they made."""
from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import redis


def broker_users_drop(*, url: str, users: list[str]) -> None:
    """Remove ``users`` from the broker ``url`` names (Redis ACL users; RabbitMQ users, with rabbitmqctl)."""
    scheme = urlsplit(url).scheme
    if scheme == "redis" and users:
        client = redis.Redis.from_url(url, socket_timeout=10)
        try:
            client.acl_deluser(*users)
        finally:
            client.close()
    elif scheme in ("amqp", "pyamqp"):
        for user in users:
            subprocess.run(["rabbitmqctl", "delete_user", user], capture_output=True, timeout=60)
