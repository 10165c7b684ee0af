from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from extadmin.storage import NodeStorage
from nodes.changes import feed_stop
from tests.dbroles import node_roles_drop


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


# The RabbitMQ the broker tests use (CI starts one on this machine); Redis is CELERY_BROKER_URL's.
RABBITMQ_URL = os.environ.get("EXTADMIN_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
_deselected: dict[str, int] = {}


# Fixtures that reach the database (pytest-django's and the ones every database test builds on):
# a test marked dbless may use none of them, so deselecting it on one database loses nothing.
_DATABASE_FIXTURES = {
    "db", "transactional_db", "django_db_setup", "client", "admin_client", "admin_user", "live_server",
}


def _refuse_dbless_database_tests(items: list[pytest.Item]) -> None:
    wrong = [
        i.nodeid for i in items if i.get_closest_marker("dbless") and (
            i.get_closest_marker("django_db") or _DATABASE_FIXTURES & set(getattr(i, "fixturenames", ())))
    ]
    if wrong:
        raise pytest.UsageError(f"marked dbless but uses the database: {', '.join(wrong)}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _refuse_dbless_database_tests(items)
    # Deselected, not skipped, so the summary shows only what ran: soak runs are opt-in, and a test
    # of one database's behaviour (PostgreSQL roles and row-level security; SQLite's refusal of
    # them) runs only on that database — CI runs the suite on both. A broker's users are tested
    # only where that broker is: the reason is printed at the end.
    on_postgresql = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    unwanted = {"postgresql" if not on_postgresql else "sqlite": "", **_missing_brokers()}
    if not config.getoption("--soak"):
        unwanted["soak"] = ""
    drop = [i for i in items if any(i.get_closest_marker(m) for m in unwanted)]
    for item in drop:  # a reason for the tests only a missing broker kept from running
        reasons = [unwanted[m] for m in unwanted if item.get_closest_marker(m)]
        if all(reasons):
            _deselected[reasons[0]] = _deselected.get(reasons[0], 0) + 1
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


def _missing_brokers() -> dict[str, str]:
    missing = {}
    scheme = urlsplit(settings.CELERY_BROKER_URL).scheme
    if scheme != "redis":
        missing["redis"] = "Redis broker users need CELERY_BROKER_URL=redis://…"
    if scheme not in ("redis", "amqp", "pyamqp"):
        missing["networked_broker"] = "a broker to cut off needs CELERY_BROKER_URL=redis://… or amqp://…"
    url = urlsplit(RABBITMQ_URL)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), timeout=1).close()
    except OSError:
        missing["rabbitmq"] = f"RabbitMQ broker users need a RabbitMQ at {url.hostname}:{url.port or 5672} " \
            "(EXTADMIN_TEST_RABBITMQ)"
    return missing


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for reason, count in _deselected.items():
        terminalreporter.write_line(f"deselected {count}: {reason}")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """The test database's node roles are server-wide: dropped before the database itself, and the
    live pages' change feed stops listening to it first (it would keep the database open)."""
    yield
    feed_stop()
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
