"""JSON logs without a credential in any of them, nor in any error page, from real processes.

The console (gunicorn with scripts/run's arguments, once with DEBUG off and once on) and a real agent
run with ``EXTADMIN_LOG_FORMAT=json`` and credentials in every URL: on PostgreSQL the console
connects as a role with a password made for this test and the agent with its own node role
(``node_credentials``); on Redis the broker URL names an ACL user with a password. Then an import,
a refused upload, two 404s and a 500 (a console whose database cannot be opened: the connection
attempt, with its password, fails inside a real request). Every line of every log must parse as a
JSON object with the promised fields, and no log line and no page may hold any of the secrets.
"""
from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from extadmin.models import ExtensionPackage
from nodes.credentials import node_credentials_issue
from tests.cluster.conftest import FAST
from tests.dbroles import node_roles_drop
from tests.packages import build_package
from tests.processes import ROOT, ManagedProcess, child_env, database_url, free_port, port_answers, run_env, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

FIELDS = {"time", "level", "logger", "node", "package", "operation_id", "message"}


@dataclass
class Credentials:
    """The URLs the processes get, and every secret in them that must never be shown."""

    console_db: str
    agent_db: str
    broker: str
    secrets: dict[str, str] = field(default_factory=dict)
    cleanups: list[object] = field(default_factory=list)


def _with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}:{parts.port or 5432}"))


def _postgres_role(creds: Credentials) -> None:
    """The console's own login role with a password (it must own nothing: the tables stay postgres')."""
    role, password = f"extadmin_logtest_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(24)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER PASSWORD %s', [password])
    creds.console_db = _with_password(database_url(), role, password)
    creds.secrets["the console's database password"] = password
    creds.cleanups.append(("role", role))


def _redis_user(creds: Credentials) -> None:
    user, password = f"logtest-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(24)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    parts = urlsplit(settings.CELERY_BROKER_URL)
    creds.broker = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 6379}"))
    creds.secrets["the broker password"] = password
    creds.cleanups.append(("redis", user))


def _cleanup(creds: Credentials) -> None:
    for kind, name in creds.cleanups:  # type: ignore[misc]
        if kind == "redis":
            redis.Redis.from_url(settings.CELERY_BROKER_URL).execute_command("ACL", "DELUSER", name)
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
                cursor.execute(f'DROP ROLE IF EXISTS "{name}"')
    node_roles_drop()


@pytest.fixture
def credentials(agent_name: str) -> Iterator[Credentials]:
    creds = Credentials(console_db=database_url(), agent_db=database_url(), broker=settings.CELERY_BROKER_URL)
    creds.secrets["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    creds.secrets["EXTADMIN_METRICS_TOKEN"] = secrets.token_urlsafe(32)
    try:
        if connection.vendor == "postgresql":
            _postgres_role(creds)
            issued = node_credentials_issue(name=agent_name)
            creds.agent_db = issued.database_url
            creds.secrets["the agent's database password"] = urlsplit(issued.database_url).password or ""
        if settings.CELERY_BROKER_URL.startswith("redis://"):
            _redis_user(creds)
        yield creds
    finally:
        _cleanup(creds)


@pytest.fixture
def agent_name() -> str:
    return f"log{uuid.uuid4().hex[:6]}"


def _env(base: dict[str, str], creds: Credentials, **extra: str) -> dict[str, str]:
    return {
        **base, "EXTADMIN_LOG_FORMAT": "json", "CELERY_BROKER_URL": creds.broker,
        "DJANGO_SECRET_KEY": creds.secrets["DJANGO_SECRET_KEY"],
        "EXTADMIN_METRICS_TOKEN": creds.secrets["EXTADMIN_METRICS_TOKEN"], **extra,
    }


def console(tmp: Path, creds: Credentials, *, name: str, database: str, debug: str) -> tuple[ManagedProcess, int]:
    """gunicorn with the arguments scripts/run gives it (a port of its own)."""
    port = free_port()
    # The agent's var/ (as scripts/run gives them one): on the embedded default the broker is a
    # folder under it, and a console with a var/ of its own nudges a folder no agent reads.
    env = _env(run_env(tmp / name, port=port), creds, DATABASE_URL=database, DJANGO_DEBUG=debug,
               EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(tmp / "web"), EXTADMIN_VAR=str(tmp / "var"))
    argv = [str(ROOT / ".venv" / "bin" / "gunicorn"), "extadmin.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4", "--timeout", "900", "--no-control-socket", "--access-logfile", "-",
            "--logger-class", "extadmin.gunicorn_logging.GunicornLogger"]
    proc = ManagedProcess(env=env, log=tmp / f"{name}.log", argv=argv).start()
    wait_for(lambda: port_answers(port), timeout=60, what=f"console {name}")
    return proc, port


def request(port: int, path: str, *, token: str, data: bytes | None = None, **headers: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET",
                                 headers={"Authorization": f"Token {token}", **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 (http://127.0.0.1 only)
            return int(r.status), r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def upload(port: int, path: Path, *, token: str) -> tuple[int, str]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/zip\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return request(port, "/api/extensions/", token=token, data=body,
                   **{"Content-Type": f"multipart/form-data; boundary={boundary}"})


def broken_database(tmp: Path, creds: Credentials) -> str:
    """A URL with the console's password whose database cannot be opened: every query of a request fails."""
    if connection.vendor == "postgresql":
        parts = urlsplit(creds.console_db)
        return urlunsplit(parts._replace(path=f"/extadmin_no_such_db_{uuid.uuid4().hex[:6]}"))
    not_a_database = tmp / "not-a-database.sqlite3"
    not_a_database.write_bytes(b"this is not an SQLite file " * 200)
    return f"sqlite:///{not_a_database}"


def drive(tmp: Path, creds: Credentials, *, token: str, debug: str, package: Path) -> list[tuple[int, str]]:
    """The requests of one run: an import, a refused upload, 404s and 500s; returns every page."""
    good, port = console(tmp, creds, name=f"console-debug{debug}", database=creds.console_db, debug=debug)
    broken, broken_port = console(tmp, creds, name=f"broken-debug{debug}", database=broken_database(tmp, creds),
                                  debug=debug)
    try:
        not_a_zip = tmp / "notes.zip"
        not_a_zip.write_text("not a zip")
        secret = creds.secrets["EXTADMIN_METRICS_TOKEN"]
        pages = [
            upload(port, package, token=token), upload(port, not_a_zip, token=token),
            request(port, f"/no/such/page/?token={secret}&password={secret}", token=token),
            request(port, "/api/extensions/NoSuchPackage/", token=token),
            request(broken_port, "/api/extensions/", token=token),
            request(broken_port, f"/?token={secret}", token=token, Cookie=f"sessionid={uuid.uuid4().hex}"),
        ]
    finally:
        good.stop()
        broken.stop()
    return pages


def agent(tmp: Path, creds: Credentials, name: str) -> ManagedProcess:
    env = _env(child_env(**FAST), creds, DATABASE_URL=creds.agent_db, EXTADMIN_VAR=str(tmp / "var"))
    return ManagedProcess("run_node", "--name", name, "--storage", str(tmp / name), env=env,
                          log=tmp / f"{name}.log").start()


def test_it_logs_json_lines_and_never_a_credential(tmp_path: Path, credentials: Credentials, agent_name: str) -> None:
    user = User.objects.create_superuser("ops", password=secrets.token_urlsafe(16))
    token = Token.objects.create(user=user).key
    credentials.secrets["the user's API token"] = token
    node = agent(tmp_path, credentials, agent_name)
    try:
        wait_for(lambda: '"agent of' in node.output() or "ready." in node.output(), timeout=90, what="the agent")
        pages = drive(tmp_path, credentials, token=token, debug="0", package=build_package(tmp_path, "Alpha"))
        pages += drive(tmp_path, credentials, token=token, debug="1", package=build_package(tmp_path, "Beta"))
        # Nudged by each import: well within the periodic interval (FAST: 60 s), which would hide a lost nudge.
        wait_for(lambda: f"nudge sync of {agent_name}: succeeded installed Beta" in node.output(), timeout=20,
                 what="the agent's nudged sync of the imports")
    finally:
        node.stop()

    statuses = [status for status, _ in pages]
    assert statuses[:4] == [201, 400, 404, 404] and statuses[4:6] == [500, 500], statuses
    assert statuses[6:] == [201, 400, 404, 404, 500, 500], statuses
    assert ExtensionPackage.objects.filter(name__in=["Alpha", "Beta"]).count() == 2
    assert "Traceback" in pages[10][1] or "OperationalError" in pages[10][1]  # DEBUG on: the debug page
    logs = sorted(tmp_path.glob("*.log"))
    assert len(logs) == 5, logs
    for log in logs:
        _assert_json_lines(log)
    _assert_context(tmp_path, agent_name)
    for what, value in credentials.secrets.items():
        assert len(value) >= 6
        for log in logs:
            assert value not in log.read_text(), f"{what} in {log.name}"
        for i, (status, body) in enumerate(pages):
            assert value not in body, f"{what} in page {i} ({status})"


def _assert_json_lines(log: Path) -> None:
    lines = log.read_text().splitlines()
    assert lines, f"{log.name} is empty"
    for number, line in enumerate(lines, 1):
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{log.name}:{number} is not JSON: {line[:300]}")
        assert isinstance(parsed, dict) and set(parsed) >= FIELDS, f"{log.name}:{number}: {line[:300]}"


def _assert_context(tmp: Path, agent_name: str) -> None:
    agent_lines = [json.loads(x) for x in (tmp / f"{agent_name}.log").read_text().splitlines()]
    assert {x["node"] for x in agent_lines} == {agent_name}
    assert any(x["logger"] == "celery.apps.worker" for x in agent_lines)  # Celery's own lines, as JSON
    console_lines = [json.loads(x) for x in (tmp / "console-debug0.log").read_text().splitlines()]
    loggers = {x["logger"] for x in console_lines}
    assert {"gunicorn.error", "gunicorn.access", "django.request"} <= loggers, loggers
    assert any("token=***" in x["message"] for x in console_lines if x["logger"] == "gunicorn.access")


def test_it_writes_the_supervisors_lines_as_json_too(tmp_path: Path) -> None:
    """scripts/supervise's own lines (an agent restarted) sit in the agent's log between its JSON lines."""
    log = tmp_path / "node-9.log"
    env = {**child_env(), "EXTADMIN_LOG_FORMAT": "json"}
    dying = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = ManagedProcess(env=env, log=tmp_path / "supervisor.out",
                                argv=[str(ROOT / "scripts" / "supervise"), "node-9", str(log), *dying]).start()
    try:
        wait_for(lambda: log.exists() and "exited with status 3" in log.read_text(), timeout=20, what="a restart")
    finally:
        supervisor.stop()
    _assert_json_lines(log)
    first = json.loads(log.read_text().splitlines()[0])
    assert (first["logger"], first["node"]) == ("supervise", "node-9")
    assert first["message"] == "agent node-9 exited with status 3; restarting in 2 s"
