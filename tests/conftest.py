from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from extadmin.storage import NodeStorage
from tests.dbroles import node_roles_drop


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Deselected, not skipped, so the summary shows only what ran: soak runs are opt-in, and a test
    # of one database's behaviour (PostgreSQL roles and row-level security; SQLite's refusal of
    # them) runs only on that database — CI runs the suite on both.
    on_postgresql = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    unwanted = {"postgresql" if not on_postgresql else "sqlite"}
    if not config.getoption("--soak"):
        unwanted.add("soak")
    drop = [i for i in items if any(i.get_closest_marker(m) for m in unwanted)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """The test database's node roles are server-wide: dropped before the database itself."""
    yield
    with django_db_blocker.unblock():
        node_roles_drop(group=True)


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
