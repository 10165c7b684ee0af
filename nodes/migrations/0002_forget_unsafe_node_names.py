"""Forget the nodes an older version registered under a name no page can link to (``rack/1``, empty).

Every console page links to ``/nodes/<name>/``, so one such row made every page answer 500. They
are forgotten as an operator would forget them (their sync states and runs go with them), each
audited as a ``forget_node`` operation. An agent still running under such a name cannot register
again: its name is refused now.
"""
from __future__ import annotations

import re
from typing import Any

from django.db import migrations
from django.utils import timezone

# The rule of ``extadmin.packaging.is_safe_name``, frozen here as migrations must be.
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _is_safe(name: str) -> bool:
    return _SAFE_NAME_RE.fullmatch(name) is not None and not name.endswith(".") and ".." not in name


def forget_unsafe_node_names(apps: Any, schema_editor: Any) -> None:
    Node = apps.get_model("nodes", "Node")
    Operation = apps.get_model("extadmin", "Operation")
    for node in Node.objects.all():
        if _is_safe(node.name):
            continue
        now = timezone.now()
        Operation.objects.create(
            kind="forget_node", package_name="", node=node.name, via="migration", started_at=now,
            finished_at=now, outcome="succeeded",
            warnings="its name is not a safe name, so no page could link to it; forgotten on upgrade",
        )
        node.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("nodes", "0001_initial"),
        ("extadmin", "0003_operation_kind_forget_node"),
    ]

    operations = [migrations.RunPython(forget_unsafe_node_names, migrations.RunPython.noop)]
