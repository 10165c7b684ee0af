"""A package's version history, its rollback and its quarantine: the same services as the CLI and console.

- ``GET  /api/extensions/<name>/versions/`` — the current version, then the retained ones
- ``POST /api/extensions/<name>/rollback/`` ``{"to": VERSION}`` (optional: the newest good retained one)
- ``POST /api/extensions/<name>/versions/<version>/quarantine/`` ``{"reason": TEXT, "rollback": bool}``

Refusals answer ``{"error": {"step", "reason"}}`` with the refusal's status (409 for a conflict, such
as a dependent needing a higher version, or an already quarantined version).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api import serializers as s
from extadmin.api.views import ERRORS, ApiView, api_actor
from extadmin.packaging import Refusal
from extadmin.quarantine import package_quarantine
from extadmin.rollback import package_rollback
from extadmin.versions import versions_document

CHANGE = "extadmin.add_extensionpackage"  # a rollback is an import, a quarantine decides what is imported


class VersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    checksum = serializers.CharField(help_text="SHA-256 of the zip, hex")
    size = serializers.IntegerField()
    imported_at = serializers.DateTimeField()
    imported_by = serializers.CharField(help_text="the user who imported (or rolled back to) it; '' when unknown")
    imported_on_node = serializers.CharField()
    signer = serializers.CharField(allow_null=True, help_text="the allowed_signers principal, when signed")
    current = serializers.BooleanField(help_text="the version every node should hold")
    quarantined = serializers.BooleanField()
    quarantine_reason = serializers.CharField()


class VersionsSerializer(serializers.Serializer):
    name = serializers.CharField()
    keep = serializers.IntegerField(help_text="EXTADMIN_KEEP_VERSIONS: versions kept, the current one counted")
    versions = VersionSerializer(many=True)


class RollbackRequestSerializer(serializers.Serializer):
    to = serializers.CharField(required=False, help_text="a retained version; default: the newest good one")


class QuarantineRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="why no node may install this version again")
    rollback = serializers.BooleanField(required=False, help_text="then roll back to the last good version")


class QuarantineSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    checksums = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    quarantined = serializers.BooleanField()
    operation = serializers.IntegerField()
    rolled_back_to = serializers.CharField(allow_null=True)


def _text(request: Request, field: str) -> str | None:
    data = request.data if isinstance(request.data, dict) else {}
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refusal("validate", f"'{field}' must be a string")
    return value


def _flag(request: Request, field: str) -> bool:
    data = request.data if isinstance(request.data, dict) else {}
    value = data.get(field, False)
    if isinstance(value, str):
        return value.lower() in {"1", "true", "yes", "on"}
    if not isinstance(value, bool):
        raise Refusal("validate", f"'{field}' must be true or false")
    return value


class ExtensionVersionsView(ApiView):
    @extend_schema(responses={200: VersionsSerializer, **ERRORS, 404: s.ErrorSerializer})
    def get(self, request: Request, name: str) -> Response:
        return Response(versions_document(name=name))


class ExtensionRollbackView(ApiView):
    required_perms = {"POST": CHANGE}

    @extend_schema(
        request=RollbackRequestSerializer,
        responses={
            200: s.ImportDocumentSerializer, **ERRORS, 404: s.ErrorSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="a dependent needs a higher version, or quarantined"),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        document = package_rollback(name=name, to=_text(request, "to") or None, actor=api_actor(request))
        return Response(document, status=status.HTTP_200_OK)


class VersionQuarantineView(ApiView):
    required_perms = {"POST": CHANGE}

    @extend_schema(
        request=QuarantineRequestSerializer,
        responses={
            200: QuarantineSerializer, **ERRORS, 404: s.ErrorSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="already quarantined, or the rollback was refused"),
        },
    )
    def post(self, request: Request, name: str, version: str) -> Response:
        document = package_quarantine(
            name=name, version=version, reason=_text(request, "reason") or "", rollback=_flag(request, "rollback"),
            actor=api_actor(request),
        )
        return Response(document)
