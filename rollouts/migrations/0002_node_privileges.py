"""What a node's own database role may do with rollouts, enforced by PostgreSQL (no-op on SQLite).

The node group role (``nodes.0004``) may read every rollout, every node's place in them and the
cluster's default policy; it may write only its own ``RolloutNode`` rows (its place: state, error,
when it swapped), and of a rollout's shared row only the columns a transition changes (state,
batch, reason, changed_at), and only of a rollout it is part of. Row-level security says which
rows; column grants say which columns. A node never admits another node: admission is the
rollout's batch, so it never needs to write another node's row.

Self-contained, as ``nodes.0004`` is: the group role's name is computed the same way here.
"""
from __future__ import annotations

import hashlib
import re

from django.db import migrations

OWN_NODE = "node_id IN (SELECT id FROM nodes_node WHERE db_role = current_user)"
OWN_ROLLOUT = f"id IN (SELECT rollout_id FROM rollouts_rolloutnode WHERE {OWN_NODE})"


def node_group_role(database: str) -> str:
    readable = re.sub(r"[^a-z0-9_]", "_", database.lower())[:36]
    return f"extadmin_node_{readable}_{hashlib.sha256(database.encode()).hexdigest()[:12]}"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def statements(group: str) -> list[str]:
    return [
        f"GRANT SELECT ON rollouts_rollout, rollouts_rolloutnode, rollouts_rolloutpolicy TO {group}",
        f"GRANT UPDATE (state, batch, reason, changed_at) ON rollouts_rollout TO {group}",
        "ALTER TABLE rollouts_rollout ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY rollout_read ON rollouts_rollout FOR SELECT TO {group} USING (true)",
        f"CREATE POLICY rollout_update_own ON rollouts_rollout FOR UPDATE TO {group} "
        f"USING (true) WITH CHECK ({OWN_ROLLOUT})",
        f"GRANT UPDATE (state, error, changed_at, staged_at, swapped_at) ON rollouts_rolloutnode TO {group}",
        "ALTER TABLE rollouts_rolloutnode ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY rolloutnode_read ON rollouts_rolloutnode FOR SELECT TO {group} USING (true)",
        f"CREATE POLICY rolloutnode_update_own ON rollouts_rolloutnode FOR UPDATE TO {group} "
        f"USING (true) WITH CHECK ({OWN_NODE})",
    ]


def _group(schema_editor) -> str | None:  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [node_group_role(database)])
        return node_group_role(database) if cursor.fetchone() is not None else None


def grant(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    group = _group(schema_editor)
    if group is None:  # nodes.0004 could not make it (no CREATEROLE) and said so
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in statements(q(group)):
            cursor.execute(statement)


def revoke(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    group = _group(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP POLICY IF EXISTS rollout_read ON rollouts_rollout")
        cursor.execute("DROP POLICY IF EXISTS rollout_update_own ON rollouts_rollout")
        cursor.execute("DROP POLICY IF EXISTS rolloutnode_read ON rollouts_rolloutnode")
        cursor.execute("DROP POLICY IF EXISTS rolloutnode_update_own ON rollouts_rolloutnode")
        cursor.execute("ALTER TABLE rollouts_rollout DISABLE ROW LEVEL SECURITY")
        cursor.execute("ALTER TABLE rollouts_rolloutnode DISABLE ROW LEVEL SECURITY")
        if group is not None:
            cursor.execute(
                f"REVOKE ALL ON rollouts_rollout, rollouts_rolloutnode, rollouts_rolloutpolicy FROM {q(group)}"
            )


class Migration(migrations.Migration):

    dependencies = [
        ("rollouts", "0001_initial"),
        ("nodes", "0004_node_privileges"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
