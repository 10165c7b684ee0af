"""Per-node credentials: with node A's DATABASE_URL, PostgreSQL lets A write only A's own rows.

Real roles on the real server, and a real second connection as the node's role (psycopg, with the
URL the command printed, which names the test database). Node names are unique per test; every
role a test made is dropped at its end (``tests.dbroles``), the group role with the test database.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import unquote, urlparse

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from extadmin.models import ArchiveChunk, ExtensionPackage, Operation, Quarantine, RetainedVersion
from extadmin.removal import package_remove
from nodes.broker import broker_user
from nodes.credentials import node_group_role, node_role
from nodes.models import ClusterSettings, Node, SyncRun, SyncState
from tests.brokerusers import broker_users_drop
from tests.cluster.conftest import Cluster, cluster  # noqa: F401 (the real-agents fixture)
from tests.dbroles import node_roles_drop
from tests.nodes.conftest import Importer
from tests.processes import child_env, manage, run_command, wait_for

Issue = Callable[[str], dict[str, str]]


@pytest.fixture
def issue() -> Iterator[Issue]:
    """``node_credentials NAME --json`` in this process; the roles and broker users made are dropped afterwards
    (of every node of the test, however the test ran the command, and of nodes it deleted since)."""
    issued: set[str] = set()

    def run(name: str) -> dict[str, str]:
        status, out, err = run_command("node_credentials", name, "--json")
        assert status == 0, err
        issued.add(name)
        return json.loads(out)

    yield run
    database = _current_database()
    nodes = issued | set(Node.objects.values_list("name", flat=True))
    users = [broker_user(database=database, node_name=n) for n in sorted(nodes)]
    broker_users_drop(url=settings.CELERY_BROKER_URL, users=users)
    node_roles_drop()


@pytest.fixture
def names() -> tuple[str, str]:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    return f"{prefix}-a", f"{prefix}-b"


@pytest.fixture
def connect() -> Iterator[Callable[[str], psycopg.Connection]]:
    """A connection as a node's role, from the URL the command printed; closed at the end."""
    opened: list[psycopg.Connection] = []

    def run(url: str) -> psycopg.Connection:
        conn = psycopg.connect(url, autocommit=True)
        opened.append(conn)
        return conn

    yield run
    for conn in opened:
        conn.close()


@pytest.mark.sqlite
@pytest.mark.django_db
def test_it_refuses_on_sqlite_saying_why() -> None:
    status, out, err = run_command("node_credentials", "A", "--json")

    assert (status, out) == (1, "")
    assert err.strip() == (
        "error: node_credentials: per-node credentials need PostgreSQL (DATABASE_URL); the embedded SQLite "
        "default runs every node on one machine with the console's rights"
    )
    assert not Node.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_undoes_and_redoes_its_migrations() -> None:
    call_command("migrate", "nodes", "0002", verbosity=0)
    assert "db_role" not in _columns_of_node()

    call_command("migrate", verbosity=0)  # every app: the ones that build on nodes were undone with it
    assert "db_role" in _columns_of_node()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_drops_roles_policies_and_trigger_when_migrated_back_and_makes_them_again(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection]
) -> None:
    a, _ = names
    issue(a)

    call_command("migrate", "nodes", "0003", verbosity=0)
    assert (_policies(), _group_exists(), _members_of_group(), _heartbeat_trigger()) == (set(), False, [], False)

    call_command("migrate", verbosity=0)  # every app: the ones that build on nodes were undone with it
    assert {"node_read", "node_update_own", "nodes_syncstate_insert_own", "nodes_syncrun_delete_own"} <= _policies()
    assert _group_exists() and _heartbeat_trigger()
    node = connect(issue(a)["DATABASE_URL"])
    assert node.execute("UPDATE nodes_node SET last_heartbeat = now() WHERE name = %s", [a]).rowcount == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_creates_a_login_role_bound_to_the_node_for_the_database_django_uses(
    issue: Issue, names: tuple[str, str]
) -> None:
    a, _ = names
    creds = issue(a)

    url = urlparse(creds["DATABASE_URL"])
    database = _current_database()
    assert database == connection.settings_dict["NAME"] and database.startswith("test_")
    assert (url.scheme, url.path, url.username) == ("postgres", f"/{database}", node_role(database, a))
    assert creds["CELERY_BROKER_URL"] == _broker_url_of(a, creds)  # see test_broker_credentials
    assert Node.objects.get(name=a).db_role == url.username
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolcanlogin, r.rolsuper, r.rolbypassrls, pg_has_role(r.rolname, %s, 'MEMBER') "
            "FROM pg_roles r WHERE r.rolname = %s", [node_group_role(database), url.username],
        )
        assert cursor.fetchone() == (True, False, False, True)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_prints_an_environment_file_without_json(issue: Issue, names: tuple[str, str]) -> None:
    a, _ = names
    status, out, _ = run_command("node_credentials", a)

    comment, database_url, broker_url = out.strip().splitlines()
    assert status == 0
    assert comment.startswith(f"# node {a}, database role {node_role(_current_database(), a)}, ")
    assert database_url.startswith(f"DATABASE_URL=postgres://{node_role(_current_database(), a)}:")
    assert broker_url.startswith(f"CELERY_BROKER_URL={urlparse(child_env()['CELERY_BROKER_URL']).scheme}://")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["", "rack/1", "x" * 129])
def test_it_refuses_a_name_that_is_not_a_nodes_name(name: str) -> None:
    status, out, err = run_command("node_credentials", name)

    assert (status, out) == (1, "")
    assert err.strip().startswith(f"error: node_credentials: node name '{name}' is not a safe name (letters, digits")
    assert not Node.objects.exists() and _members_of_group() == []


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_prints_a_url_through_the_unix_socket_when_the_console_uses_one(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    connection.ensure_connection()  # already open: only the printed URL sees the socket folder
    monkeypatch.setitem(connection.settings_dict, "HOST", "/var/run/postgresql")
    a, _ = names

    url = issue(a)["DATABASE_URL"]

    assert "@/" in url and url.endswith("?host=%2Fvar%2Frun%2Fpostgresql")
    node = connect(url)
    who = node.execute("SELECT current_user, inet_client_addr()").fetchone()
    assert who == (node_role(_current_database(), a), None)  # no client address: through the socket


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_warns_about_each_line_of_pg_hba_that_lets_the_role_in_without_a_password(
    issue: Issue, names: tuple[str, str]
) -> None:
    a, _ = names
    database = _current_database()
    role = node_role(database, a)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT line_number, coalesce(address, type) FROM pg_hba_file_rules WHERE type LIKE 'host%%' "
            "AND auth_method = 'trust' AND database && %s AND user_name && %s ORDER BY line_number",
            [["all", database], ["all", role, f"+{node_group_role(database)}"]],
        )
        trusting = cursor.fetchall()

    status, _, err = run_command("node_credentials", a, "--json")

    assert status == 0
    expected = [
        f"warning: pg_hba.conf line {line} trusts connections from {address} without a password (unless an earlier "
        f"line matches): anyone reaching the server there can log in as {role} without its password; use scram-sha-256"
        for line, address in trusting
    ]
    assert [line for line in err.splitlines() if "pg_hba" in line] == expected  # this server trusts 127.0.0.1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_rotates_the_password_and_ends_the_old_sessions(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection]
) -> None:
    a, _ = names
    first = issue(a)
    old_session = connect(first["DATABASE_URL"])

    second = issue(a)

    old, new = (unquote(urlparse(c["DATABASE_URL"]).password or "") for c in (first, second))
    role = urlparse(second["DATABASE_URL"]).username
    assert old != new and role == urlparse(first["DATABASE_URL"]).username
    # This server trusts 127.0.0.1 (pg_hba), so a login would not prove it: the verifier the server
    # checks every password-authenticated login against does. It accepts the new one only.
    verifier = _stored_verifier(role)
    assert _scram_accepts(verifier, new) and not _scram_accepts(verifier, old)
    with pytest.raises(psycopg.OperationalError):
        old_session.execute("SELECT 1")  # the session opened with the old password was ended
    assert Node.objects.filter(name=a).count() == 1
    assert _members_of_group() == [role]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_lets_a_node_write_its_own_rows(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection], import_package: Importer
) -> None:
    alpha = import_package("Alpha")
    a, _ = names
    node = connect(issue(a)["DATABASE_URL"])
    own = Node.objects.get(name=a).pk

    node.execute(
        "UPDATE nodes_node SET host = 'h', storage_path = '/s', agent_version = 'v', pid = 7, started_at = now(), "
        "last_heartbeat = now(), sync_lock_owner = 'x', sync_lock_until = now(), sync_requested_at = now(), "
        "behind_since = now() WHERE id = %s", [own],
    )
    state = node.execute(
        "INSERT INTO nodes_syncstate (node_id, package_name, desired_version, desired_sha256, installed_version, "
        "installed_sha256, state, error, changed_at) VALUES (%s, 'Alpha', '', '', '', '', 'pending', '', now()) "
        "RETURNING id", [own],
    ).fetchone()[0]
    node.execute("SELECT * FROM nodes_syncstate WHERE id = %s FOR UPDATE", [state])  # update_or_create locks first
    node.execute("UPDATE nodes_syncstate SET state = 'installed' WHERE id = %s", [state])
    # Its retries of a failed checksum (nodes.retries, migration nodes.0006's column grant).
    node.execute("UPDATE nodes_syncstate SET failures = 2, next_retry_at = now() WHERE id = %s", [state])
    run = node.execute(
        "INSERT INTO nodes_syncrun (node_id, trigger, started_at, outcome, actions, error) "
        "VALUES (%s, 'manual', now(), 'running', '[]', '') RETURNING id", [own],
    ).fetchone()[0]
    node.execute("UPDATE nodes_syncrun SET outcome = 'succeeded' WHERE id = %s", [run])

    assert SyncState.objects.get(pk=state).state == "installed"
    assert SyncState.objects.get(pk=state).failures == 2
    assert SyncRun.objects.get(pk=run).outcome == "succeeded"
    assert Node.objects.get(pk=own).sync_lock_owner == "x"
    assert node.execute("DELETE FROM nodes_syncrun WHERE id = %s", [run]).rowcount == 1
    assert node.execute("DELETE FROM nodes_syncstate WHERE id = %s", [state]).rowcount == 1
    # It reads what it installs: the archive's bytes (binary, as the agent streams them) and the history.
    with node.cursor(binary=True) as cursor:
        cursor.execute("SELECT data FROM extadmin_archivechunk WHERE package_id = %s ORDER BY seq", [alpha.pk])
        assert hashlib.sha256(b"".join(row[0] for row in cursor)).hexdigest() == alpha.sha256
    assert node.execute("SELECT EXISTS (SELECT 1 FROM extadmin_operation)").fetchone() == (True,)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_stamps_the_heartbeat_with_the_database_clock(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection]
) -> None:
    a, _ = names
    node = connect(issue(a)["DATABASE_URL"])

    node.execute("UPDATE nodes_node SET last_heartbeat = now() + interval '10 years' WHERE name = %s", [a])

    stamped = Node.objects.get(name=a).last_heartbeat
    assert stamped is not None and abs(stamped - timezone.now()) < timedelta(seconds=5)
    # The console's own role owns the table: its writes are taken as they are.
    Node.objects.filter(name=a).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert Node.objects.get(name=a).last_heartbeat < timezone.now() - timedelta(minutes=59)


FORBIDDEN = {
    "another node's heartbeat": "UPDATE nodes_node SET last_heartbeat = now() WHERE name = %(b)s",
    "another node's lease": "UPDATE nodes_node SET sync_lock_owner = 'me' WHERE name = %(b)s",
    "an installed state for another node": (
        "INSERT INTO nodes_syncstate (node_id, package_name, desired_version, desired_sha256, installed_version, "
        "installed_sha256, state, error, changed_at) SELECT id, 'Alpha', '', '', '', '', 'installed', '', now() "
        "FROM nodes_node WHERE name = %(b)s"
    ),
    "another node's state made installed": (
        "UPDATE nodes_syncstate SET state = 'installed', error = '' WHERE package_name = 'Beta'"
    ),
    "another node's retries started over": (
        "UPDATE nodes_syncstate SET failures = 0, next_retry_at = NULL WHERE package_name = 'Beta'"
    ),
    "its own state moved to another node": (
        "UPDATE nodes_syncstate SET node_id = (SELECT id FROM nodes_node WHERE name = %(b)s) WHERE package_name = 'Own'"
    ),
    "a sync run for another node": (
        "INSERT INTO nodes_syncrun (node_id, trigger, started_at, outcome, actions, error) "
        "SELECT id, 'manual', now(), 'succeeded', '[]', '' FROM nodes_node WHERE name = %(b)s"
    ),
    "its own node renamed": "UPDATE nodes_node SET name = 'x' WHERE name = %(a)s",
    "its own node bound to another role": "UPDATE nodes_node SET db_role = 'postgres' WHERE name = %(a)s",
    "a new node": "INSERT INTO nodes_node (name, host, storage_path, agent_version, sync_lock_owner, db_role) "
    "VALUES ('ghost', '', '', '', '', '')",
    "a node deleted": "DELETE FROM nodes_node WHERE name = %(b)s",
    "an archive chunk": "UPDATE extadmin_archivechunk SET data = 'planted'",
    "a new archive chunk": (
        "INSERT INTO extadmin_archivechunk (package_id, seq, data) SELECT id, 99, 'x' FROM extadmin_extensionpackage"
    ),
    "an archive's checksum": "UPDATE extadmin_archive SET sha256 = repeat('0', 64)",
    "a package's checksum": "UPDATE extadmin_extensionpackage SET sha256 = repeat('0', 64)",
    "a package deleted": "DELETE FROM extadmin_extensionpackage",
    "an entity": "UPDATE extadmin_entity SET name = 'x'",
    "an operation": (
        "INSERT INTO extadmin_operation (kind, package_name, version, previous_version, sha256, node, username, via, "
        "started_at, outcome, error_step, error, warnings) "
        "VALUES ('import', 'Alpha', '', '', '', '', '', '', now(), 'succeeded', '', '', '')"
    ),
    "an operation rewritten": "UPDATE extadmin_operation SET outcome = 'failed'",
    "the cluster settings": "UPDATE nodes_clustersettings SET sync_paused = false",
    "a retained version's checksum": "UPDATE extadmin_retainedversion SET sha256 = repeat('0', 64)",
    "a retained version deleted": "DELETE FROM extadmin_retainedversion",
    "a quarantine lifted": "DELETE FROM extadmin_quarantine",
    "a quarantine added": (
        "INSERT INTO extadmin_quarantine (package_name, version, sha256, reason, username, created_at) "
        "VALUES ('Alpha', '1.0.0', repeat('1', 64), 'x', '', now())"
    ),
}


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_lets_a_node_read_retained_versions_and_quarantines(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection], import_package: Importer
) -> None:
    first = import_package("Alpha", "1.0.0")
    import_package("Alpha", "2.0.0")
    retained = RetainedVersion.objects.get()
    Quarantine.objects.create(package_name="Alpha", version="2.0.0", sha256="2" * 64, reason="bad")
    node = connect(issue(names[0])["DATABASE_URL"])
    # A rollout keeps a node on the previous version: it streams the retained chunks as it streams an archive.
    with node.cursor(binary=True) as cursor:
        cursor.execute("SELECT data FROM extadmin_archivechunk WHERE retained_id = %s ORDER BY seq", [retained.pk])
        assert hashlib.sha256(b"".join(row[0] for row in cursor)).hexdigest() == first.sha256 == retained.sha256
    assert node.execute("SELECT version FROM extadmin_retainedversion").fetchall() == [("1.0.0",)]
    assert node.execute("SELECT reason FROM extadmin_quarantine").fetchall() == [("bad",)]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("what", list(FORBIDDEN))
def test_it_refuses_a_write_beyond_the_nodes_own_rows(
    what: str, issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection],
    import_package: Importer,
) -> None:
    import_package("Alpha")
    a, b = names
    node = connect(issue(a)["DATABASE_URL"])
    issue(b)
    ClusterSettings.objects.create(pk=1, sync_paused=True)
    _state(b, "Beta", "failed")
    _state(a, "Own", "pending")
    before = _snapshot()

    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        node.execute(FORBIDDEN[what], {"a": a, "b": b})

    assert "permission denied" in str(refused.value) or "violates row-level security policy" in str(refused.value)
    assert _snapshot() == before


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_lets_a_delete_of_another_nodes_rows_change_nothing(
    issue: Issue, names: tuple[str, str], connect: Callable[[str], psycopg.Connection]
) -> None:
    a, b = names
    node = connect(issue(a)["DATABASE_URL"])
    issue(b)
    _state(b, "Beta", "installed")

    # Row-level security filters a DELETE silently: another node's rows are simply not its to delete.
    deleted = node.execute("DELETE FROM nodes_syncstate WHERE package_name = 'Beta'").rowcount

    assert deleted == 0
    assert SyncState.objects.filter(node__name=b, package_name="Beta").exists()


@pytest.mark.postgresql
@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_it_converges_an_agent_that_holds_only_its_own_credentials(
    issue: Issue, cluster: Cluster, import_package: Importer  # noqa: F811 (agents stop before their roles go)
) -> None:
    name = cluster.name(1)
    creds = issue(name)
    agent = cluster.agent(name, DATABASE_URL=creds["DATABASE_URL"]).start()
    cluster.wait_started(name)

    alpha = import_package("Alpha")
    beta = import_package("Beta", depends_on="Alpha:1.0.0")

    cluster.wait_converged([name], [alpha, beta], timeout=30)
    package_remove(name="Beta")
    wait_for(
        lambda: cluster.storage(name).installed_names() == ["Alpha"]
        and not SyncState.objects.filter(node__name=name, package_name="Beta").exists(),
        timeout=30, what=f"{name} removed Beta",
    )
    role = urlparse(creds["DATABASE_URL"]).username
    assert _sessions_of(role) >= 1  # it really is connected as its own role
    wait_for(lambda: Node.objects.get(name=name).last_heartbeat > timezone.now() - timedelta(seconds=3),
             timeout=10, what="a fresh heartbeat")
    assert "refused" not in agent.output() and "Traceback" not in agent.output()


@pytest.mark.postgresql
@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_it_logs_a_clear_line_when_the_database_refuses_a_running_agent(
    issue: Issue, cluster: Cluster  # noqa: F811 (agents stop before their roles go)
) -> None:
    name = cluster.name(1)
    agent = cluster.agent(name, DATABASE_URL=issue(name)["DATABASE_URL"]).start()
    cluster.wait_started(name)

    Node.objects.filter(name=name).delete()  # an operator deleted the node: its role may not re-create it

    line = (
        f"heartbeat of {name} failed: the database refused a write by node {name}: permission denied for table "
        "nodes_node (a node's credentials may change only its own node row, sync states and sync runs)"
    )
    wait_for(lambda: line in agent.output(), timeout=15, what="the refusal in the agent's log")
    assert agent.alive and not Node.objects.filter(name=name).exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_stops_an_agent_started_with_another_nodes_credentials(
    issue: Issue, names: tuple[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    a, b = names
    creds = issue(a)
    issue(b)

    env = child_env(DATABASE_URL=creds["DATABASE_URL"])
    done = manage("run_node", "--name", b, "--storage", str(tmp_path / b), env=env)

    assert done.returncode == 1
    refusal = f"error: start: the database refused a write by node {b}: new row violates row-level security policy"
    assert refusal in done.stderr
    assert "may change only its own node row, sync states and sync runs" in done.stderr
    assert Node.objects.get(name=b).pid is None


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_it_stops_an_agent_whose_node_row_the_console_never_made(
    issue: Issue, names: tuple[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    a, _ = names
    creds = issue(a)

    done = manage("run_node", "--name", "stranger", "--storage", str(tmp_path / "s"),
                  env=child_env(DATABASE_URL=creds["DATABASE_URL"]))

    assert done.returncode == 1
    refusal = "error: start: the database refused a write by node stranger: permission denied for table nodes_node"
    assert refusal in done.stderr
    assert not Node.objects.filter(name="stranger").exists()


# --- helpers ---------------------------------------------------------------------------------
def _broker_url_of(node: str, creds: dict[str, str]) -> str:
    """The console's broker URL, with the node's own user and password where the broker has users."""
    console = urlparse(child_env()["CELERY_BROKER_URL"])
    if console.scheme not in ("redis", "amqp", "pyamqp"):
        return console.geturl()
    mine = urlparse(creds["CELERY_BROKER_URL"])
    assert mine.username == broker_user(database=_current_database(), node_name=node)
    return console._replace(netloc=f"{mine.username}:{mine.password}@{console.netloc.rpartition('@')[2]}").geturl()


def _current_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        return str(cursor.fetchone()[0])


def _policies() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT policyname FROM pg_policies WHERE tablename LIKE 'nodes_%%'")
        return {row[0] for row in cursor.fetchall()}


def _columns_of_node() -> list[str]:
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, "nodes_node")]


def _heartbeat_trigger() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'nodes_node_stamp_heartbeat'")
        return cursor.fetchone() is not None


def _group_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [node_group_role(_current_database())])
        return cursor.fetchone() is not None


def _members_of_group() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s", [node_group_role(_current_database())],
        )
        return [row[0] for row in cursor.fetchall()]


def _sessions_of(role: str | None) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role])
        return int(cursor.fetchone()[0])


def _stored_verifier(role: str | None) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role])
        return str(cursor.fetchone()[0])


def _scram_accepts(verifier: str, password: str) -> bool:
    """RFC 5802 / 7677: the server's check of a SCRAM-SHA-256 login, done on the stored verifier."""
    method, iterations_salt, keys = verifier.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    assert method == "SCRAM-SHA-256"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key)


def _state(node: str, package: str, state: str) -> None:
    SyncState.objects.create(
        node=Node.objects.get(name=node), package_name=package, state=state, changed_at=timezone.now()
    )


def _snapshot() -> tuple[object, ...]:
    """Everything a refused write might have changed."""
    return (
        list(Node.objects.values_list("name", "db_role", "last_heartbeat", "sync_lock_owner")),
        list(SyncState.objects.values_list("node__name", "package_name", "state", "failures", "next_retry_at")),
        list(SyncRun.objects.values_list("node__name", "outcome")),
        list(ExtensionPackage.objects.values_list("name", "sha256")),
        [(c.seq, bytes(c.data)) for c in ArchiveChunk.objects.order_by("package", "seq")],
        list(Operation.objects.values_list("kind", "outcome")),
        list(ClusterSettings.objects.values_list("sync_paused")),
    )
