"""A node may read the retained versions and the quarantined checksums; and may say it holds one.

The agent streams a retained version's chunks (a rollout that keeps a node on the previous
version) and must know which checksums it may never install. It reads those tables only: SELECT
for the node group role, as 0004 grants for the other tables it reads. The archive chunks of a
retained version live in ``extadmin_archivechunk``, which the group already reads.

Self-contained on purpose (see 0004): the group role's name is computed here again.
"""
from __future__ import annotations

import hashlib
import re

from django.db import migrations, models

READ_ONLY = ["extadmin_retainedversion", "extadmin_quarantine"]


def node_group_role(database: str) -> str:
    readable = re.sub(r"[^a-z0-9_]", "_", database.lower())[:36]
    return f"extadmin_node_{readable}_{hashlib.sha256(database.encode()).hexdigest()[:12]}"


def _group(schema_editor) -> str | None:  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        group = node_group_role(database)
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [group])
        return group if cursor.fetchone() is not None else None


def grant(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    group = _group(schema_editor)
    if group is None:  # 0004 could not create it (no CREATEROLE) and said so
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'GRANT SELECT ON {", ".join(READ_ONLY)} TO "{group}"')


def revoke(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    group = _group(schema_editor)
    if group is None:
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'REVOKE SELECT ON {", ".join(READ_ONLY)} FROM "{group}"')


class Migration(migrations.Migration):

    dependencies = [
        ("nodes", "0004_node_privileges"),
        ("extadmin", "0006_retained_versions_quarantine"),
    ]

    operations = [
        migrations.AlterField(
            model_name="syncstate",
            name="state",
            field=models.CharField(
                choices=[("pending", "pending"), ("syncing", "syncing"), ("installed", "installed"),
                         ("failed", "failed"), ("removing", "removing"), ("quarantined", "quarantined")],
                default="pending", max_length=16,
            ),
        ),
        migrations.RunPython(grant, revoke),
    ]
