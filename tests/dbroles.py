"""PostgreSQL roles are server-wide, not per database: the tests drop the ones they made."""
from __future__ import annotations

from django.db import connection

from nodes.credentials import node_group_role


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def node_roles_drop(*, group: bool = False) -> None:
    """Drop every node role of the database Django is connected to, and with ``group`` its group too."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        name = node_group_role(cursor.fetchone()[0])
        cursor.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s", [name],
        )
        for (member,) in cursor.fetchall():
            cursor.execute(f"DROP OWNED BY {_quoted(member)}")
            cursor.execute(f"DROP ROLE {_quoted(member)}")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if group and cursor.fetchone() is not None:
            cursor.execute(f"DROP OWNED BY {_quoted(name)}")
            cursor.execute(f"DROP ROLE {_quoted(name)}")
