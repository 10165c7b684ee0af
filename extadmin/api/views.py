"""The JSON HTTP API: adapters from HTTP to the same services the console and the CLI call.

Every error answers in one shape, ``{"error": {"step": …, "reason": …}}``, with the status the
refusal carries (400 refused, 409 conflict, 413 too large, 507 upload folder full) or DRF's own (401, 403, 404, 415).
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import StopUpload
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from extadmin.api import serializers as s
from extadmin.api.selectors import operation_list, package_entities, package_get
from extadmin.documents import package_summary
from extadmin.models import Entity
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal, TooLarge
from extadmin.removal import package_remove
from extadmin.selectors import package_dependents, package_list, package_operations
from extadmin.services import package_import_files, package_validate_files, signatures_matched
from extadmin.uploads import UNREADABLE_BODY, body_refusal, upload_folder_full
from nodes.cluster import cluster_pause, cluster_resume
from nodes.status import cluster_document, package_nodes_document

ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="refused: the step and the reason"),
    401: OpenApiResponse(s.ErrorSerializer, description="no or a wrong token"),
    403: OpenApiResponse(s.ErrorSerializer, description="the user lacks the permission"),
}
_DRF_STEPS = {
    exceptions.NotAuthenticated: "authenticate",
    exceptions.AuthenticationFailed: "authenticate",
    exceptions.PermissionDenied: "permission",
    exceptions.NotFound: "lookup",
}


class MethodPermission(BasePermission):
    """An authenticated user; for the methods in the view's ``required_perms``, that Django permission."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        perm = getattr(view, "required_perms", {}).get(request.method)
        return perm is None or user.has_perm(perm)


class CanPauseSyncing(BasePermission):
    """Pausing the cluster's syncing is for staff, or for whoever may change the cluster settings."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm("nodes.change_clustersettings")))


def api_actor(request: Request) -> Actor:
    return Actor(user=request.user, remote_addr=client_address(request), via="api")


def client_address(request: Request) -> str | None:
    """REMOTE_ADDR; X-Forwarded-For only when a setting says a proxy in front appends it."""
    addr = request.META.get("REMOTE_ADDR") or None
    if settings.EXTADMIN_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        addr = forwarded or addr
    try:
        return str(ipaddress.ip_address(addr)) if addr else None
    except ValueError:
        return None  # not an address (a unix socket, a garbled header): record none rather than junk


def error_response(exc: Refusal, **extra: Any) -> Response:
    return Response({"error": {**exc.as_dict(), **extra}}, status=exc.status)


class ApiView(APIView):
    permission_classes = [MethodPermission]
    required_perms: dict[str, str] = {}

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, UNREADABLE_BODY):
            exc = body_refusal(exc)  # Django's own answer would be an HTML page
        if isinstance(exc, Refusal):
            return error_response(exc)
        if isinstance(exc, Http404):
            exc = exceptions.NotFound()
        response = super().handle_exception(exc)
        if isinstance(exc, exceptions.APIException):
            step = next((v for k, v in _DRF_STEPS.items() if isinstance(exc, k)), "request")
            response.data = {"error": {"step": step, "reason": str(exc.detail)}}
        return response


def uploaded_files(request: Request) -> list[tuple[Path, str | None]]:
    """The uploaded files (streamed to disk and hashed on the way by ``HashingUploadHandler``).

    Their client names, for refusals, come from ``uploaded_names`` (same order).
    """
    try:
        uploads = request.FILES.getlist("file")
    except StopUpload:
        uploads = []
    if getattr(request, "upload_too_large", False):
        raise TooLarge(
            "upload", f"the upload is larger than the limit of {settings.EXTADMIN_MAX_UPLOAD_BYTES} bytes"
        )
    if getattr(request, "upload_folder_full", False):
        raise upload_folder_full()
    if not uploads:
        raise Refusal("upload", "no file: send the package zip as the multipart field 'file'")
    return [(Path(f.temporary_file_path()), getattr(f, "sha256", None)) for f in uploads]


def uploaded_names(request: Request) -> list[str]:
    """The uploaded files' names as the client sent them (a basename: Django drops any folder)."""
    return [f.name or "upload" for f in request.FILES.getlist("file")]


def uploaded_signatures(request: Request, names: list[str]) -> list[Path | None]:
    """The multipart ``signature`` parts, paired with the files (``services.signatures_matched``)."""
    parts = [(f.name or "", Path(f.temporary_file_path())) for f in request.FILES.getlist("signature")]
    return signatures_matched(names=names, signatures=parts)


class ExtensionListView(ApiView):
    parser_classes = [MultiPartParser]
    required_perms = {"POST": "extadmin.add_extensionpackage"}

    @extend_schema(responses={200: s.PackageSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response([package_summary(p) for p in package_list()])

    @extend_schema(
        request={"multipart/form-data": s.UploadSerializer},
        parameters=[OpenApiParameter("validate", bool, description="every check, no side effect")],
        responses={
            200: OpenApiResponse(s.ValidationDocumentSerializer, description="?validate=true: would import"),
            201: s.ImportDocumentSerializer,
            **ERRORS,
            409: OpenApiResponse(s.ErrorSerializer, description="a downgrade, or another import finished first"),
            413: OpenApiResponse(s.ErrorSerializer, description="over EXTADMIN_MAX_UPLOAD_BYTES"),
            507: OpenApiResponse(s.ErrorSerializer, description="the upload folder is full; nothing was kept"),
        },
    )
    def post(self, request: Request) -> Response:
        files, names = uploaded_files(request), uploaded_names(request)
        signatures = uploaded_signatures(request, names)
        rollout = {k: request.data.get(k) for k in ("canary", "batch", "max_failures", "activation")}
        if request.query_params.get("validate", "").lower() in {"1", "true", "yes"}:
            return Response(package_validate_files(files=files, names=names, signatures=signatures, rollout=rollout))
        document = package_import_files(
            files=files, actor=api_actor(request), names=names, signatures=signatures, rollout=rollout
        )
        return Response(document, status=status.HTTP_201_CREATED)


class ExtensionDetailView(ApiView):
    required_perms = {"DELETE": "extadmin.delete_extensionpackage"}

    @extend_schema(responses={200: s.PackageDetailSerializer, **ERRORS, 404: s.ErrorSerializer})
    def get(self, request: Request, name: str) -> Response:
        package = package_get(name=name)
        if package is None:
            raise exceptions.NotFound(f"no extension package named {name!r}")
        entities = package_entities(package=package)
        count = entities.count()
        next_page = reverse("api:extension-entities", args=[name]) + "?page=2"
        detail = {
            **package_summary(package),
            "entity_count": count,
            "entities": s.EntitySerializer(entities[: EntityPagination.page_size], many=True).data,
            "entities_next": request.build_absolute_uri(next_page) if count > EntityPagination.page_size else None,
            **package_nodes_document(package=package),
            "operations": s.OperationSerializer(package_operations(name=name), many=True).data,
        }
        return Response(detail)

    @extend_schema(
        responses={
            200: s.RemovedSerializer, **ERRORS, 404: s.ErrorSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="other packages depend on it (listed)"),
        }
    )
    def delete(self, request: Request, name: str) -> Response:
        if not package_list().filter(name=name).exists():
            raise exceptions.NotFound(f"no extension package named {name!r}")
        try:
            op = package_remove(name=name, actor=api_actor(request))
        except Conflict as exc:
            dependents = [f"{p.name}:{p.version}" for p in package_dependents(name=name)]
            return error_response(exc, **({"dependents": dependents} if dependents else {}))
        return Response(
            {"name": op.package_name, "version": op.version, "checksum": op.sha256, "removed": True,
             "operation": op.pk}
        )


class EntityPagination(PageNumberPagination):
    page_size = 100


class ExtensionEntityListView(ApiView, generics.ListAPIView):
    """A package's entities, a page at a time (a package may declare up to EXTADMIN_MAX_ENTITIES)."""

    serializer_class = s.EntitySerializer
    pagination_class = EntityPagination

    def get_queryset(self) -> QuerySet[Entity]:
        package = package_get(name=self.kwargs["name"])
        if package is None:
            raise exceptions.NotFound(f"no extension package named {self.kwargs['name']!r}")
        return package_entities(package=package)

    @extend_schema(responses={200: s.EntitySerializer(many=True), **ERRORS, 404: s.ErrorSerializer})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class OperationListView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("package", str, description="only this package's operations"),
            OpenApiParameter("limit", int, description="at most this many, newest first (default 100, max 1000)"),
        ],
        responses={200: s.OperationSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", 100))
        except ValueError:
            raise Refusal("request", "limit must be a whole number") from None
        ops = operation_list(package=request.query_params.get("package") or None, limit=limit)
        return Response(s.OperationSerializer(ops, many=True).data)


class ClusterView(ApiView):
    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="the same document as cluster_status --json")}
    )
    def get(self, request: Request) -> Response:
        return Response(cluster_document())


class _SyncSwitchView(ApiView):
    permission_classes = [IsAuthenticated, CanPauseSyncing]
    service: Any

    @extend_schema(request=None, responses={200: s.ClusterSyncSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        row, op = self.service(actor=api_actor(request))
        return Response(
            {"sync_paused": row.sync_paused, "paused_at": row.paused_at,
             "paused_by": row.paused_by.username if row.paused_by else None, "operation": op.pk}
        )


class ClusterPauseView(_SyncSwitchView):
    """Pause syncing on every node (before a bulk import)."""

    service = staticmethod(cluster_pause)


class ClusterResumeView(_SyncSwitchView):
    """Resume syncing; every node is nudged and syncs the batch once."""

    service = staticmethod(cluster_resume)
