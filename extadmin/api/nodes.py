"""``/api/nodes/<name>/``: read a node (is it alive, where), and forget it — the same service as
``manage.py forget_node`` and the console's "Forget this node…" page."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api.selectors import node_get
from extadmin.api.serializers import ErrorSerializer
from extadmin.api.views import ERRORS, ApiView, api_actor
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
