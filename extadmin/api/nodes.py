"""``/api/nodes/<name>/``: read a node (is it alive, where), and forget it — the same service as
``manage.py forget_node`` and the console's "Forget this node…" page. ``POST …/sync/`` and
``POST …/retry/`` (``{"package": NAME}`` optional): the node page's "Sync now" and "Retry now"
(``nodes.actions``)."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api.selectors import node_get
from extadmin.api.serializers import ErrorSerializer
from extadmin.api.views import ERRORS, ApiView, api_actor
from extadmin.packaging import Refusal
from nodes.actions import node_retry, node_sync_now
from nodes.models import Node
from nodes.services import node_forget, node_online


class NodeSerializer(serializers.Serializer):
    name = serializers.CharField()
    online = serializers.BooleanField()
    last_seen = serializers.DateTimeField(allow_null=True, help_text="its agent's last heartbeat")
    host = serializers.CharField()
    storage = serializers.CharField(help_text="the node's own storage folder")


class NodeForgottenSerializer(serializers.Serializer):
    name = serializers.CharField()
    forgotten = serializers.BooleanField()
    was_online = serializers.BooleanField(help_text="forced: it was online when it was forgotten")
    states = serializers.IntegerField(help_text="package states removed with it")
    runs = serializers.IntegerField(help_text="sync runs removed with it")
    operation = serializers.IntegerField(help_text="the audit record")
    note = serializers.CharField()


def node_document(node: Node) -> dict[str, Any]:
    return {
        "name": node.name, "online": node_online(node), "last_seen": node.last_heartbeat,
        "host": node.host, "storage": node.storage_path,
    }


class NodeDetailView(ApiView):
    required_perms = {"DELETE": "nodes.delete_node"}

    @extend_schema(responses={200: NodeSerializer, **ERRORS, 404: ErrorSerializer})
    def get(self, request: Request, name: str) -> Response:
        node = node_get(name=name)
        if node is None:
            raise exceptions.NotFound(f"no node named {name!r}")
        return Response(NodeSerializer(node_document(node)).data)

    @extend_schema(
        parameters=[OpenApiParameter("force", bool, description="forget it even though it is online")],
        responses={
            200: NodeForgottenSerializer, **ERRORS, 404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="the node is online (its agent would register it again)"),
        },
    )
    def delete(self, request: Request, name: str) -> Response:
        force = request.query_params.get("force", "").lower() in {"1", "true", "yes"}
        forgotten = node_forget(name=name, force=force, actor=api_actor(request))
        return Response(NodeForgottenSerializer(forgotten.as_dict()).data)


class NodeActedSerializer(serializers.Serializer):
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["sync_now", "retry"])
    online = serializers.BooleanField()
    nudged = serializers.BooleanField(help_text="the nudge reached the broker; else the node acts at its periodic pass")
    packages = serializers.ListField(child=serializers.CharField(), help_text="retry: the failed packages now due")
    operation = serializers.IntegerField(help_text="the audit record")
    message = serializers.CharField(help_text="what happens, in the console's words")


class NodeRetryRequestSerializer(serializers.Serializer):
    package = serializers.CharField(
        required=False, help_text="only this package; all the node's failed ones if left out"
    )


class NodeSyncView(ApiView):
    """Ask the node's agent to sync now (audited as ``sync_now``); refused while it is offline."""

    required_perms = {"POST": "nodes.change_node"}

    @extend_schema(request=None, responses={
        200: NodeActedSerializer, **ERRORS, 404: ErrorSerializer,
        409: OpenApiResponse(ErrorSerializer, description="the node is offline: no agent to ask"),
    })
    def post(self, request: Request, name: str) -> Response:
        return Response(NodeActedSerializer(node_sync_now(name=name, actor=api_actor(request)).as_dict()).data)


class NodeRetryView(ApiView):
    """Retry the node's failed packages now, their retry count started over (audited as ``retry``)."""

    required_perms = {"POST": "nodes.change_node"}

    @extend_schema(request=NodeRetryRequestSerializer, responses={
        200: NodeActedSerializer, **ERRORS, 404: ErrorSerializer,
        409: OpenApiResponse(ErrorSerializer, description="nothing failed there: nothing to retry"),
    })
    def post(self, request: Request, name: str) -> Response:
        package = request.data.get("package") if hasattr(request.data, "get") else None
        if package is not None and not isinstance(package, str):
            raise Refusal("retry", "package must be a package's name (a string)")
        acted = node_retry(name=name, actor=api_actor(request), package=package or None)
        return Response(NodeActedSerializer(acted.as_dict()).data)
