"""Retries of a failed checksum (``nodes.retries``): the count and the next retry's time on each sync state.

The agent writes them with its node's own role, which may update only the columns 0004 granted:
the two new ones are granted to the node group role here (PostgreSQL; the row-level policies of
0004 already keep every write to the node's own rows). Self-contained, like 0004.
"""
from __future__ import annotations

import hashlib
import re

from django.db import migrations, models

NEW_COLUMNS = ["failures", "next_retry_at"]


def node_group_role(database: str) -> str:
    readable = re.sub(r"[^a-z0-9_]", "_", database.lower())[:36]
    return f"extadmin_node_{readable}_{hashlib.sha256(database.encode()).hexdigest()[:12]}"


def _group(schema_editor) -> str | None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return None  # SQLite: one machine, one file, the console's rights for every process
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        role = node_group_role(database)
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        exists = cursor.fetchone() is not None
    return '"' + role.replace('"', '""') + '"' if exists else None  # none: 0004 could not create it


def grant(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    group = _group(schema_editor)
    if group is not None:
        schema_editor.execute(f"GRANT UPDATE ({', '.join(NEW_COLUMNS)}) ON nodes_syncstate TO {group}")


def revoke(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    group = _group(schema_editor)
    if group is not None:
        schema_editor.execute(f"REVOKE UPDATE ({', '.join(NEW_COLUMNS)}) ON nodes_syncstate FROM {group}")


class Migration(migrations.Migration):

    dependencies = [
        ("nodes", "0005_quarantined_state_node_reads"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncstate",
            name="failures",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="syncstate",
            name="next_retry_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(grant, revoke),
    ]
