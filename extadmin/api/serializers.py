"""What the API reads and writes, as DRF serializers: the OpenAPI schema is generated from these.

Package documents come from ``extadmin.documents`` so that the API and the CLI's ``--json``
answer with the same fields; the serializers for them describe that shape for the schema.
"""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from extadmin.api.selectors import NodePackageState
from extadmin.models import Operation, OperationStep


class UploadSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(),
        help_text="one or more package zips (or bundles: zips of package zips), imported all or nothing",
    )


class RefusalSerializer(serializers.Serializer):
    file = serializers.CharField(
        required=False,
        help_text="among several packages: the file (or bundle member, as Bundle.zip/Member.zip) that failed",
    )
    step = serializers.CharField(help_text="the step that refused: validate, checksum, unzip, persist, archive, …")
    reason = serializers.CharField(help_text="why, in plain words")
    dependents = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="on a refused removal: name:version of each"
    )


class ErrorSerializer(serializers.Serializer):
    error = RefusalSerializer()


class PackageSerializer(serializers.Serializer):
    """``extadmin.documents.package_summary``."""

    name = serializers.CharField()
    version = serializers.CharField()
    checksum = serializers.CharField(help_text="SHA-256 of the zip, hex")
    size = serializers.IntegerField()
    vendor = serializers.CharField()
    state = serializers.ChoiceField(choices=["active", "removing"])
    ha_compatible = serializers.BooleanField(allow_null=True)
    depends_on = serializers.CharField(help_text="dependsOn as written in metadata.xml")
    imported_at = serializers.DateTimeField()
    imported_on_node = serializers.CharField()


class ImportedPackageSerializer(PackageSerializer):
    operation = serializers.IntegerField(help_text="the audit record of this import")
    kind = serializers.CharField(help_text="import, upgrade or reimport")


class ImportDocumentSerializer(ImportedPackageSerializer):
    """One package: its fields at the top level. Several (a bundle): ``packages``, in import order."""

    packages = ImportedPackageSerializer(many=True, required=False)
    warnings = serializers.ListField(child=serializers.CharField())

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        for name, field in fields.items():
            if name != "warnings":
                field.required = False
        return fields


class ValidatedPackageSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    checksum = serializers.CharField()
    kind = serializers.CharField(help_text="what importing would do: import, upgrade or reimport")


class ValidationDocumentSerializer(ValidatedPackageSerializer):
    packages = ValidatedPackageSerializer(many=True, required=False)
    validated = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField())

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        for name, field in fields.items():
            if name not in {"validated", "warnings"}:
                field.required = False
        return fields


class OperationStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = OperationStep
        fields = ["number", "name", "outcome", "started_at", "duration_ms", "error"]


class OperationSerializer(serializers.ModelSerializer):
    """One audit record: who did what, when, from which address, through which door, and the outcome."""

    package = serializers.CharField(source="package_name")
    checksum = serializers.CharField(source="sha256")
    user = serializers.CharField(source="username", help_text="kept when the user is deleted")
    warnings = serializers.SerializerMethodField()
    steps = OperationStepSerializer(many=True, read_only=True)

    class Meta:
        model = Operation
        fields = [
            "id", "kind", "package", "version", "previous_version", "checksum", "node", "user",
            "remote_addr", "via", "started_at", "finished_at", "outcome", "error_step", "error",
            "warnings", "steps",
        ]

    def get_warnings(self, op: Operation) -> list[str]:
        return [w for w in op.warnings.splitlines() if w]


class NodePackageStateSerializer(serializers.Serializer):
    node = serializers.CharField(source="node.name")
    online = serializers.BooleanField()
    last_heartbeat = serializers.DateTimeField(source="node.last_heartbeat", allow_null=True)
    state = serializers.SerializerMethodField()
    up_to_date = serializers.BooleanField(help_text="installed, with this package's checksum proven on disk")
    installed_version = serializers.SerializerMethodField()
    installed_checksum = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    changed_at = serializers.SerializerMethodField()
    duration_ms = serializers.SerializerMethodField()

    def get_state(self, row: NodePackageState) -> str:
        return row.state.state if row.state else "pending"

    def get_installed_version(self, row: NodePackageState) -> str:
        return row.state.installed_version if row.state else ""

    def get_installed_checksum(self, row: NodePackageState) -> str:
        return row.state.installed_sha256 if row.state else ""

    def get_error(self, row: NodePackageState) -> str:
        return row.state.error if row.state else ""

    def get_changed_at(self, row: NodePackageState) -> str | None:
        return row.state.changed_at.isoformat() if row.state else None

    def get_duration_ms(self, row: NodePackageState) -> float | None:
        return row.state.duration_ms if row.state else None


class EntitySerializer(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()


class PackageDetailSerializer(PackageSerializer):
    entity_count = serializers.IntegerField(help_text="how many entities metadata.xml declares")
    entities = EntitySerializer(many=True, help_text="the first page of them (ordered by type, then name)")
    entities_next = serializers.URLField(
        allow_null=True, help_text="the next page, from GET /api/extensions/<name>/entities/; null when none"
    )
    nodes = NodePackageStateSerializer(many=True)
    operations = OperationSerializer(many=True)


class RemovedSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    checksum = serializers.CharField()
    removed = serializers.BooleanField()
    operation = serializers.IntegerField()


class ClusterSyncSerializer(serializers.Serializer):
    sync_paused = serializers.BooleanField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.CharField(allow_null=True, help_text="who paused syncing")
    operation = serializers.IntegerField(help_text="the audit record of this pause or resume")
