from __future__ import annotations

from pathlib import Path

import pytest

from extadmin.storage import NodeStorage


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    # Soak runs are opt-in: they are deselected (not skipped) so the summary shows only what ran.
    keep = [i for i in items if "soak" not in i.keywords]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "soak" in i.keywords])
        items[:] = keep


@pytest.fixture
def node_storage(tmp_path: Path, settings) -> NodeStorage:  # type: ignore[no-untyped-def]
    """This process acts as node ``web`` with its own storage under tmp_path."""
    root = tmp_path / "storage" / "web"
    settings.EXTADMIN_NODE = "web"
    settings.EXTADMIN_STORAGE = root
    return NodeStorage(root)


@pytest.fixture
def pkgdir(tmp_path: Path) -> Path:
    d = tmp_path / "packages"
    d.mkdir()
    return d
