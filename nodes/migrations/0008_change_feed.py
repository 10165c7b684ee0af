"""The console's change feed on PostgreSQL (no-op on SQLite): ``NOTIFY extadmin_changes`` when a
transaction that wrote sync states, packages, nodes (added or forgotten) or the cluster settings
commits, so that open dashboards update at once without asking the database in a loop
(``nodes.changes.ChangeListener``). Statement-level triggers: a bulk write is one notification,
and PostgreSQL folds a transaction's identical notifications into one. A heartbeat (an UPDATE of
``nodes_node``) sends none: liveness is rechecked by the listener every few seconds.

The function runs as whoever wrote (a node's own role too): ``pg_notify`` needs no privilege.
"""
from __future__ import annotations

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION extadmin_notify_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('extadmin_changes', TG_TABLE_NAME);
    RETURN NULL;
END $$
"""
# (table, events)
TRIGGERS = [
    ("nodes_syncstate", "INSERT OR UPDATE OR DELETE"),
    ("extadmin_extensionpackage", "INSERT OR UPDATE OR DELETE"),
    ("nodes_clustersettings", "INSERT OR UPDATE OR DELETE"),
    ("nodes_node", "INSERT OR DELETE"),
    ("nodes_syncrun", "INSERT OR UPDATE OR DELETE"),
]


def create(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    for table, events in TRIGGERS:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_notify_change AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION extadmin_notify_change()"
        )


def drop(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, _ in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS extadmin_notify_change()")


class Migration(migrations.Migration):
    dependencies = [
        ("nodes", "0007_sync_state_rollout_words"),
        ("extadmin", "0008_operation_kind_rollouts"),
    ]

    operations = [migrations.RunPython(create, drop)]
