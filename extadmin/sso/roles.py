"""extadmin's roles: Django groups with the permissions the console's doors check.

``operator`` may act (import and remove packages, pause and resume syncing, forget nodes, sync or
retry a node now); ``viewer`` may read what every logged-in user reads, plus the models' view
permissions. A signed-in user of no mapped group belongs to neither: logged in, no permission, so it
reads and cannot act.

The groups are the code's: ``roles_apply`` sets their permissions after every migrate and when a
sign-in finds one missing, so an edit to them in the admin lasts only until the next migrate. A group
for anything else is made by hand, under another name.
"""
from __future__ import annotations

from typing import Any

VIEW = [
    "extadmin.view_extensionpackage", "extadmin.view_entity", "extadmin.view_operation",
    "extadmin.view_operationstep", "nodes.view_node", "nodes.view_syncstate", "nodes.view_syncrun",
    "nodes.view_clustersettings", "rollouts.view_rollout", "rollouts.view_rolloutnode", "rollouts.view_rolloutpolicy",
]
ACT = [
    "extadmin.add_extensionpackage", "extadmin.delete_extensionpackage",  # upload, delete
    "nodes.change_clustersettings",  # pause and resume syncing
    "nodes.delete_node",  # forget a node
    "nodes.change_node",  # ask a node to sync now or to retry its failed packages now
    "rollouts.change_rollout", "rollouts.change_rolloutpolicy",  # pause, resume, abort; the default policy
    # register, change, resend and delete webhook endpoints
    "webhooks.add_webhookendpoint", "webhooks.change_webhookendpoint", "webhooks.delete_webhookendpoint",
]
ROLES: dict[str, list[str]] = {"operator": [*VIEW, *ACT], "viewer": VIEW}


def roles_apply(*, group_model: Any, permission_model: Any, using: str = "default") -> None:
    """Create the role groups where missing and set their permissions to the code's.

    Takes the models as arguments: after a migrate they are the migration state's, at a sign-in the
    real ones. A permission that does not exist yet (a model added later) is skipped, not an error.
    """
    for role, perms in ROLES.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        wanted = [tuple(p.split(".", 1)) for p in perms]
        found = permission_model.objects.using(using).select_related("content_type").filter(
            content_type__app_label__in={app for app, _ in wanted}, codename__in={code for _, code in wanted}
        )
        group.permissions.set([p for p in found if (p.content_type.app_label, p.codename) in wanted])
