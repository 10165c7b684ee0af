"""Django admin: inspection of every model. Packages change only through the ordered services,
so edits are off and a delete here runs the ordered removal."""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from extadmin.models import Archive, Entity, ExtensionPackage, Operation, OperationStep, Quarantine, RetainedVersion
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.removal import package_remove


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ExtensionPackage)
class ExtensionPackageAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "vendor", "state", "ha_compatible", "imported_at", "imported_on_node"]
    list_filter = ["state", "ha_compatible", "imported_on_node"]
    search_fields = ["name", "vendor", "description"]
    # No entity inline: it rendered every entity on one page (290,000 made it 240 MB). A link to
    # the Entity changelist filtered by package instead, which Django paginates.
    readonly_fields = ["entity_list"]
    actions = ["remove_packages"]

    @admin.display(description="entities")
    def entity_list(self, obj: ExtensionPackage) -> str:
        url = f"{reverse('admin:extadmin_entity_changelist')}?package__id__exact={obj.pk}"
        return format_html('<a href="{}">{} entities</a>', url, obj.entities.count())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("extadmin.delete_extensionpackage")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the bulk delete would bypass the ordered removal
        return actions

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, set[str], Any]:
        """What the ordered removal deletes, summarised for the confirmation page.

        Not Django's collector: it loads every related row to list it, the archive's chunks
        included (the whole zip in memory, one line per chunk), and asks for delete permission
        on the read-only entity and archive admins, which would refuse every package delete.
        """
        packages = list(objs)
        entities = Entity.objects.filter(package__in=packages).count()
        deleted = [
            f"{p} — its entities, its archive ({p.size} bytes) and its folder on every node" for p in packages
        ]
        counts = {
            ExtensionPackage._meta.verbose_name_plural: len(packages),
            Entity._meta.verbose_name_plural: entities,
            Archive._meta.verbose_name_plural: Archive.objects.filter(package__in=packages).count(),
        }
        return deleted, counts, set(), []

    def delete_model(self, request: HttpRequest, obj: ExtensionPackage) -> None:
        if not self._remove(request, [obj]):
            request._extadmin_removal_refused = True  # type: ignore[attr-defined]

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        # A refused removal keeps the package: back to its page with the refusal, never "deleted successfully".
        if getattr(request, "_extadmin_removal_refused", False):
            return HttpResponseRedirect(reverse("admin:extadmin_extensionpackage_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExtensionPackage]) -> None:
        self._remove(request, list(queryset))

    @admin.action(description="Remove selected packages (ordered removal)", permissions=["delete"])
    def remove_packages(self, request: HttpRequest, queryset: QuerySet[ExtensionPackage]) -> None:
        self._remove(request, list(queryset))

    def _remove(self, request: HttpRequest, packages: list[ExtensionPackage]) -> bool:
        """Run the ordered removal of each package; returns False when any was refused."""
        actor = Actor(user=request.user, remote_addr=request.META.get("REMOTE_ADDR"), via="admin")
        removed_all = True
        for package in packages:
            try:
                package_remove(name=package.name, actor=actor)
            except Refusal as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                removed_all = False
        return removed_all


@admin.register(Entity)
class EntityAdmin(ReadOnlyAdmin):
    list_display = ["name", "type", "package"]
    list_filter = ["type"]
    list_select_related = ["package"]
    ordering = ["package__name", "type", "name"]
    search_fields = ["name", "package__name"]


@admin.register(Archive)
class ArchiveAdmin(ReadOnlyAdmin):
    list_display = ["package", "sha256", "size", "chunk_count", "chunk_size", "created_at"]
    exclude = ["manifest"]


@admin.register(RetainedVersion)
class RetainedVersionAdmin(ReadOnlyAdmin):
    """Earlier versions kept for rollback (``extadmin.versions``); a rollback is the way to use one."""

    list_display = ["package", "version", "sha256", "size", "imported_at", "imported_by_name", "retained_at"]
    list_select_related = ["package"]
    exclude = ["manifest", "signature"]


@admin.register(Quarantine)
class QuarantineAdmin(ReadOnlyAdmin):
    """Quarantined checksums (``extadmin.quarantine``): set through ``quarantine``, the API or the package page."""

    list_display = ["package_name", "version", "sha256", "reason", "username", "created_at"]
    search_fields = ["package_name", "reason"]


class OperationStepInline(admin.TabularInline):
    model = OperationStep
    extra = 0
    can_delete = False
    readonly_fields = ["number", "name", "outcome", "started_at", "duration_ms", "error"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at", "kind", "package_name", "version", "outcome", "username", "remote_addr", "via", "node",
    ]
    list_filter = ["kind", "outcome", "via", "node"]
    search_fields = ["package_name", "username", "error"]
    inlines = [OperationStepInline]
