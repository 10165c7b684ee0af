"""Per-node database credentials: a node can speak only for itself, and PostgreSQL enforces it.

``node_credentials_issue`` gives a node its own LOGIN role, a member of the database's node group
(migration ``nodes.0003`` grants that group what an agent needs and row-level security limits its
writes to the node's own rows). Issuing again rotates the password. On SQLite there is nothing to
enforce with: every process on the one machine shares the file, with the console's rights.
Beside the role, ``nodes.broker`` gives the node a broker user of its own where the broker can.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from django.db import DatabaseError, connection, transaction
from psycopg import errors, sql

from extadmin.operations import describe_error
from extadmin.packaging import Refusal
from extadmin.packaging.errors import shown
from extadmin.packaging.names import NODE_NAME_RULE, is_safe_name
from nodes.broker import broker_credentials_issue
from nodes.models import Node

STEP = "node_credentials"
# What an agent's connection may write, in the words of the refusal an operator reads in its log.
ALLOWED = "a node's credentials may change only its own node row, sync states and sync runs"


@dataclass(frozen=True)
class NodeCredentials:
    node: str
    role: str
    database_url: str
    broker_url: str
    broker_user: str | None  # None: the broker credentials are the console's own (warnings say why)
    warnings: list[str] = field(default_factory=list)

    def as_env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "CELERY_BROKER_URL": self.broker_url}


def node_group_role(database: str) -> str:
    """The group every node role of ``database`` belongs to (the name migration nodes.0003 creates).

    Roles are server-wide: the database's name and a hash of it keep the groups of test runs and
    of other databases on the same server apart.
    """
    return f"extadmin_node_{_readable(database, 36)}_{_digest(database)}"


def node_role(database: str, node_name: str) -> str:
    """``node_name``'s own role in ``database``: readable, at most 63 bytes, unique per database and node."""
    return f"extadmin_agent_{_readable(node_name, 32)}_{_digest(database + chr(0) + node_name)}"


def _readable(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:limit]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def node_credentials_issue(*, name: str) -> NodeCredentials:
    """Create or rotate ``name``'s database role and say how its agent connects.

    1. refuse on SQLite, and names that are not a node's name
    2. the node row: created if missing (an agent's role may not insert one)
    3. its role: created, or given a new random password (the old one stops working)
    4. the row bound to the role, which is what the row-level security policies check
    5. sessions still open with the old password are ended, after commit; ``warnings`` says when they
       could not be, and which lines of pg_hba.conf let anyone in as the role without its password
    6. its broker user, created or rotated where the broker can have one (``nodes.broker``); a broker
       that does not answer refuses the whole command, the database's changes rolled back
    """
    if connection.vendor != "postgresql":
        raise Refusal(
            STEP,
            "per-node credentials need PostgreSQL (DATABASE_URL); the embedded SQLite default runs every "
            "node on one machine with the console's rights",
        )
    _check_name(name)
    password = secrets.token_urlsafe(32)
    with transaction.atomic():
        database = _current_database()
        group, role = node_group_role(database), node_role(database, name)
        _require_group(group)
        node, _ = Node.objects.get_or_create(name=name)
        _create_or_rotate(role=role, group=group, password=password, node=name, database=database)
        Node.objects.filter(pk=node.pk).update(db_role=role)
        # Last, inside the transaction: a broker that refuses leaves the database as it was.
        broker = broker_credentials_issue(node_name=name, database=database)
    warnings = _end_old_sessions(role) + _trusting_hba_rules(role=role, group=group, database=database)
    return NodeCredentials(
        node=name, role=role, database_url=_database_url(role=role, password=password),
        broker_url=broker.url, broker_user=broker.user, warnings=warnings + broker.warnings,
    )


def _check_name(name: str) -> None:
    # The rule every node name follows (where a node registers), named after this command's step.
    if not is_safe_name(name):
        raise Refusal(STEP, f"node name '{shown(name)}' is not a safe name ({NODE_NAME_RULE})")


def _current_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        return str(cursor.fetchone()[0])


def _require_group(group: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [group])
        if cursor.fetchone() is None:
            raise Refusal(
                STEP,
                f"the database has no node group role {group}: migration nodes.0003 ran as a role that may not "
                "create roles; re-run it as one that may (migrate nodes 0002, then migrate)",
            )


def _create_or_rotate(*, role: str, group: str, password: str, node: str, database: str) -> None:
    # The password goes to the server as a SCRAM verifier computed here: never in clear text,
    # so not in the server's statement log either.
    verifier = connection.connection.pgconn.encrypt_password(password.encode(), role.encode(), None).decode()
    ident, secret = sql.Identifier(role), sql.Literal(verifier)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        exists = cursor.fetchone() is not None
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        statements = [
            sql.SQL("{} {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD {}")
            .format(verb, ident, secret),
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), ident),
            sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(f"extadmin node {node} of {database}")),
        ]
        for statement in statements:
            cursor.execute(statement.as_string(connection.connection))


def _end_old_sessions(role: str) -> list[str]:
    """A connection opened with the old password outlives the rotation unless it is ended."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                [role],
            )
    except DatabaseError as exc:
        return [f"sessions of {role} opened before the rotation stay open until they end: {describe_error(exc)}"]
    return []


def _trusting_hba_rules(*, role: str, group: str, database: str) -> list[str]:
    """``trust`` lines of pg_hba.conf that let anyone log in as this role without its password.

    Readable only by a superuser; a console that may not read them says nothing.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT line_number, coalesce(address, type) FROM pg_hba_file_rules "
                "WHERE type LIKE 'host%%' AND auth_method = 'trust' AND database && %s AND user_name && %s "
                "ORDER BY line_number",
                [["all", database], ["all", role, f"+{group}"]],
            )
            rules = cursor.fetchall()
    except DatabaseError:
        return []
    return [
        f"pg_hba.conf line {line} trusts connections from {address} without a password (unless an earlier line "
        f"matches): anyone reaching the server there can log in as {role} without its password; use scram-sha-256"
        for line, address in rules
    ]


def _database_url(*, role: str, password: str) -> str:
    """The database this process is connected to (the test database in tests), as the node's role."""
    s = connection.settings_dict
    host, query = s.get("HOST") or "localhost", {}
    if host.startswith("/"):  # a Unix socket folder: only agents on the database's own host can use it
        host, query["host"] = "", host
    elif ":" in host:
        host = f"[{host}]"  # IPv6
    if sslmode := (s.get("OPTIONS") or {}).get("sslmode"):
        query["sslmode"] = str(sslmode)
    where = f"{host}:{s.get('PORT') or 5432}" if host else ""
    url = f"postgres://{quote(role, safe='')}:{quote(password, safe='')}@{where}/{quote(s['NAME'], safe='')}"
    return url + (f"?{urlencode(query)}" if query else "")


def database_refused(exc: BaseException) -> bool:
    """The database refused a write for lack of rights: a grant or a row-level security policy."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, errors.InsufficientPrivilege):
            return True
        cause = cause.__cause__
    return False


def describe_refusal(*, node_name: str, exc: BaseException) -> str:
    """One line for the agent's log: who was refused, what the database said, and what is allowed."""
    return f"the database refused a write by node {node_name}: {describe_error(exc)} ({ALLOWED})"
