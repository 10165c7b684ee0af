"""What the API reads and writes, as DRF serializers: the OpenAPI schema is generated from these.

Package documents come from ``extadmin.documents`` so that the API and the CLI's ``--json``
answer with the same fields; the serializers for them describe that shape for the schema.
"""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from extadmin.models import Operation, OperationStep


class UploadSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(),
        help_text="one or more package zips (or bundles: zips of package zips), imported all or nothing",
    )
    signature = serializers.ListField(
        child=serializers.FileField(), required=False,
        help_text="detached OpenSSH signatures (ssh-keygen -Y sign -n extadmin): X.zip.sig for the file X.zip, "
        "or the i-th for the i-th file; a bundle's covers the bundle file",
    )
    canary = serializers.CharField(required=False, help_text="rollout: the node(s) that install first, comma separated")
    batch = serializers.IntegerField(required=False, help_text="rollout: at most this many nodes change at once")
    max_failures = serializers.IntegerField(required=False, help_text="rollout: halt when this many nodes failed")
    activation = serializers.ChoiceField(choices=["each", "together"], required=False,
                                         help_text="rollout: each node as it installs, or all together")


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


class SignerSerializer(serializers.Serializer):
    principal = serializers.CharField(help_text="the allowed_signers principal of the signing key")
    key = serializers.CharField(help_text="the signing key's SHA256 fingerprint")


class TamperingSerializer(serializers.Serializer):
    node = serializers.CharField()
    reason = serializers.CharField(help_text="the archive in the database does not match its signature (or checksum)")
    at = serializers.DateTimeField(allow_null=True)


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
    signer = SignerSerializer(allow_null=True, help_text="who signed the zip, as its import verified; null: unverified")


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
    signer = SignerSerializer(allow_null=True, help_text="who signed the zip; null when unverified")


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
    """``nodes.status.package_nodes_document``: one node's cell, the same as in ``/api/cluster/``."""

    node = serializers.CharField()
    name = serializers.CharField()
    online = serializers.BooleanField()
    last_seen = serializers.DateTimeField(allow_null=True, help_text="the node's last proof of life")
    last_heartbeat = serializers.DateTimeField(allow_null=True, help_text="the same as last_seen")
    state = serializers.CharField(
        help_text="installed, pending, syncing, failed, removing, removed or offline (whatever an offline node "
        "last reported)",
    )
    reported = serializers.CharField(help_text="for an offline node: the state it last reported; else empty")
    up_to_date = serializers.BooleanField(help_text="online, and this package's checksum proven on disk")
    degraded = serializers.BooleanField(
        help_text="online, yet not converged within EXTADMIN_DEGRADED_AFTER of the import (as in /api/cluster/)"
    )
    version = serializers.CharField(help_text="the version the node last reported holding")
    checksum = serializers.CharField(help_text="the checksum the node last reported holding")
    installed_version = serializers.CharField()
    installed_checksum = serializers.CharField()
    error = serializers.CharField()
    retry = serializers.CharField(
        help_text="a failed checksum's next retry ('retry 3/5 at 14:05:10 UTC') or 'gave up after 5 retries'; "
        "else empty"
    )
    failures = serializers.IntegerField(help_text="failed tries of the desired checksum in a row")
    next_retry_at = serializers.DateTimeField(allow_null=True, help_text="when the node tries it again; null: no retry")
    changed_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)


class EntitySerializer(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()


class PackageDetailSerializer(PackageSerializer):
    entity_count = serializers.IntegerField(help_text="how many entities metadata.xml declares")
    entities = EntitySerializer(many=True, help_text="the first page of them (ordered by type, then name)")
    entities_next = serializers.URLField(
        allow_null=True, help_text="the next page, from GET /api/extensions/<name>/entities/; null when none"
    )
    converged = serializers.BooleanField(help_text="every online node proved the checksum (and one is online)")
    online = serializers.IntegerField(help_text="how many nodes are online")
    offline = serializers.IntegerField(help_text="how many nodes are offline (not counted in converged)")
    nodes = NodePackageStateSerializer(many=True)
    tampered = TamperingSerializer(many=True, help_text="nodes that refused the archive in the database")
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
