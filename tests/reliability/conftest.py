"""Fixtures of the reliability suite: a node's storage, and child processes acting as that node."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from extadmin.storage import NodeStorage
from tests.processes import child_env


@pytest.fixture
def web_storage(tmp_path: Path, settings) -> NodeStorage:  # type: ignore[no-untyped-def]
    """This test process and its manage.py children act as node ``web`` with storage under tmp_path."""
    root = tmp_path / "storage" / "web"
    settings.EXTADMIN_NODE = "web"
    settings.EXTADMIN_STORAGE = root
    return NodeStorage(root)


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
