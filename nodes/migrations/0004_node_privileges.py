"""What a node's own database role may do, enforced by PostgreSQL (no-op on SQLite).

Every node role (``manage.py node_credentials``) is a member of one group role per database. The
group may read packages, entities, archives, chunks, operations, cluster settings and nodes, and
write only its own node row (the agent's columns, never ``name`` or ``db_role``), its own sync
states and its own sync runs: column grants say which columns, row-level security which rows. The
console's role owns the tables and so bypasses row-level security (not FORCEd).

UPDATE policies see every row (USING true) but check the new row (WITH CHECK own): an update of
another node's row is an error ("new row violates row-level security policy"), never a silent
0-row update. A trigger stamps a node role's heartbeat with the database's clock.

Self-contained on purpose: a migration states what was done at its point in history, so it does not
import ``nodes.credentials`` (whose ``node_group_role`` computes the same name).
"""
from __future__ import annotations

import hashlib
import re
import sys

from django.db import migrations

# Tables the agent only reads.
READ_ONLY = [
    "extadmin_extensionpackage", "extadmin_entity", "extadmin_archive", "extadmin_archivechunk",
    "extadmin_operation", "nodes_clustersettings",
]
# Tables with a node_id: the node role writes its own rows.
NODE_OWNED = ["nodes_syncstate", "nodes_syncrun"]
# Columns of nodes_node the agent writes (registration, heartbeat, lease, pause); never name/db_role.
NODE_COLUMNS = [
    "host", "storage_path", "agent_version", "pid", "started_at", "last_heartbeat",
    "sync_lock_owner", "sync_lock_until", "sync_requested_at", "behind_since",
]
OWN_NODE = "node_id IN (SELECT id FROM nodes_node WHERE db_role = current_user)"

HEARTBEAT_FUNCTION = """
CREATE OR REPLACE FUNCTION nodes_node_stamp_heartbeat() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- A node role's heartbeat is the database's time, whatever it sent: no heartbeat from the future.
    IF NEW.last_heartbeat IS DISTINCT FROM OLD.last_heartbeat
       AND NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        NEW.last_heartbeat := now();
    END IF;
    RETURN NEW;
END $$
"""


def node_group_role(database: str) -> str:
    readable = re.sub(r"[^a-z0-9_]", "_", database.lower())[:36]
    return f"extadmin_node_{readable}_{hashlib.sha256(database.encode()).hexdigest()[:12]}"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns_except(apps, model: str, excluded: set[str]) -> list[str]:  # type: ignore[no-untyped-def]
    fields = apps.get_model("nodes", model)._meta.concrete_fields
    return [f.column for f in fields if f.column not in excluded]


def grant(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: one machine, one file, the console's rights for every process
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        database, can_create_roles = cursor.fetchone()
        group = q(node_group_role(database))
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [node_group_role(database)])
        if cursor.fetchone() is None:
            if not can_create_roles:
                sys.stderr.write(
                    f"warning: nodes.0003: the role migrating {database} may not create roles (CREATEROLE), so "
                    "per-node credentials are unavailable; node_credentials will refuse until this migration "
                    "is re-run by a role that may\n"
                )
                return
            cursor.execute(f"CREATE ROLE {group} NOLOGIN")
        cursor.execute(f"COMMENT ON ROLE {group} IS 'extadmin nodes of database {database.replace(chr(39), '')}'")
        for statement in _grant_statements(apps, group):
            cursor.execute(statement)
        for table in [*NODE_OWNED, "nodes_node"]:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            if table != "nodes_node" and sequence:
                cursor.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {group}")


def _grant_statements(apps, group: str) -> list[str]:  # type: ignore[no-untyped-def]
    statements = [f"GRANT SELECT ON {', '.join(READ_ONLY)} TO {group}"]
    statements += [
        f"GRANT SELECT ON nodes_node TO {group}",
        f"GRANT UPDATE ({', '.join(NODE_COLUMNS)}) ON nodes_node TO {group}",
        "ALTER TABLE nodes_node ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY node_read ON nodes_node FOR SELECT TO {group} USING (true)",
        f"CREATE POLICY node_update_own ON nodes_node FOR UPDATE TO {group} "
        "USING (true) WITH CHECK (db_role = current_user)",
        HEARTBEAT_FUNCTION,
        "CREATE TRIGGER nodes_node_stamp_heartbeat BEFORE UPDATE ON nodes_node "
        "FOR EACH ROW EXECUTE FUNCTION nodes_node_stamp_heartbeat()",
    ]
    for table, model in zip(NODE_OWNED, ["SyncState", "SyncRun"], strict=True):
        columns = _columns_except(apps, model, {"id", "node_id"})  # a row never moves to another node
        statements += [
            f"GRANT SELECT, INSERT, DELETE ON {table} TO {group}",
            f"GRANT UPDATE ({', '.join(columns)}) ON {table} TO {group}",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {table}_read ON {table} FOR SELECT TO {group} USING (true)",
            f"CREATE POLICY {table}_insert_own ON {table} FOR INSERT TO {group} WITH CHECK ({OWN_NODE})",
            f"CREATE POLICY {table}_update_own ON {table} FOR UPDATE TO {group} USING (true) WITH CHECK ({OWN_NODE})",
            f"CREATE POLICY {table}_delete_own ON {table} FOR DELETE TO {group} USING ({OWN_NODE})",
        ]
    return statements


def revoke(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        group = node_group_role(database)
        cursor.execute("DROP TRIGGER IF EXISTS nodes_node_stamp_heartbeat ON nodes_node")
        cursor.execute("DROP FUNCTION IF EXISTS nodes_node_stamp_heartbeat()")
        for policy in ["node_read", "node_update_own"]:
            cursor.execute(f"DROP POLICY IF EXISTS {policy} ON nodes_node")
        for table in NODE_OWNED:
            for suffix in ["read", "insert_own", "update_own", "delete_own"]:
                cursor.execute(f"DROP POLICY IF EXISTS {table}_{suffix} ON {table}")
        for table in ["nodes_node", *NODE_OWNED]:
            cursor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        # The node roles are useless without the group: drop them with it (they own nothing).
        cursor.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s", [group],
        )
        for (member,) in cursor.fetchall():
            cursor.execute(f"DROP ROLE IF EXISTS {q(member)}")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [group])
        if cursor.fetchone() is not None:
            cursor.execute(f"DROP OWNED BY {q(group)}")  # its grants in this database
            cursor.execute(f"DROP ROLE {q(group)}")


class Migration(migrations.Migration):

    dependencies = [
        ("nodes", "0003_node_db_role"),
        ("extadmin", "0003_operation_kind_forget_node"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
