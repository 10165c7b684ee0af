"""Fixtures of the reliability suite: a node's storage, and child processes acting as that node."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token

from extadmin.storage import NodeStorage
from tests.processes import child_env
from tests.reliability.harness import Cluster, PrivateRedis


@pytest.fixture
def web_storage(node_storage: NodeStorage) -> NodeStorage:
    """This test process and its manage.py children act as node ``web`` (tests/conftest.py's node_storage)."""
    return node_storage


@pytest.fixture
def web_env(web_storage: NodeStorage) -> Callable[..., dict[str, str]]:
    """``web_env(EXTADMIN_FAULTS=...)`` → environment of a manage.py child acting as node ``web``."""

    def env(**extra: str) -> dict[str, str]:
        return child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(web_storage.root), **extra)

    return env


@pytest.fixture
def pkgdir(tmp_path: Path) -> Path:
    d = tmp_path / "packages"
    d.mkdir()
    return d


@pytest.fixture
def broker(tmp_path: Path, settings) -> Iterator[PrivateRedis | None]:  # type: ignore[no-untyped-def]
    if not PrivateRedis.available():
        yield None
        return
    redis = PrivateRedis(tmp_path).start()
    yield redis
    redis.stop()


@pytest.fixture
def cluster(tmp_path: Path, broker: PrivateRedis | None, web_storage: NodeStorage, settings) -> Iterator[Cluster]:
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 1.0  # judge liveness by the agents' interval
    c = Cluster(tmp=tmp_path, broker_url=broker.url if broker else settings.CELERY_BROKER_URL)
    yield c
    c.stop_all()


@pytest.fixture
def token(db) -> str:  # type: ignore[no-untyped-def]
    user = User.objects.create(username="ops")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_extensionpackage", "delete_extensionpackage"])
    )
    return Token.objects.create(user=user).key
