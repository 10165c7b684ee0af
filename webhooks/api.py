"""``/api/webhooks/``: endpoints and their deliveries — the same services as the console's
Webhooks page and ``manage.py add_webhook``. A secret is accepted, never answered back (its hint is)."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api.serializers import ErrorSerializer
from extadmin.api.views import ERRORS, ApiView
from extadmin.packaging import Refusal
from webhooks.documents import delivery_document, endpoint_document
from webhooks.events import EVENTS
from webhooks.selectors import delivery_list, endpoint_list
from webhooks.services import delivery_resend, endpoint_create, endpoint_delete, endpoint_get

NOT_FOUND = {404: ErrorSerializer}


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS))
    description = serializers.CharField()
    active = serializers.BooleanField()
    secret_hint = serializers.CharField(help_text="the secret's last 4 characters; the secret itself is never shown")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(required=False, help_text="only when generated: shown this once")


class EndpointRequestSerializer(serializers.Serializer):
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS))
    secret = serializers.CharField(required=False, help_text="16 to 256 characters; generated when left out")
    description = serializers.CharField(required=False)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.IntegerField()
    event = serializers.CharField()
    event_id = serializers.UUIDField(help_text="the delivered document's id (the same on a resend)")
    status = serializers.ChoiceField(choices=["pending", "sending", "delivered", "failed"])
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    resent_from = serializers.IntegerField(allow_null=True)


class EndpointDetailSerializer(EndpointSerializer):
    deliveries = DeliverySerializer(many=True)


def _text(data: Any, key: str, *, required: bool = True) -> str:
    value = data.get(key, "") if hasattr(data, "get") else ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refusal("webhook", f"'{key}' must be a text" + (" and is required" if required else ""))
    return value


def _events(data: Any) -> list[str]:
    """A JSON list of names, or one comma-separated text (as ``add_webhook --events``)."""
    value = data.get("events") if hasattr(data, "get") else None
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise Refusal("webhook", "'events' must be a list of event names: " + ", ".join(EVENTS))


class WebhookListView(ApiView):
    required_perms = {"POST": "webhooks.add_webhookendpoint"}

    @extend_schema(responses={200: EndpointSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response([endpoint_document(e) for e in endpoint_list()])

    @extend_schema(request=EndpointRequestSerializer, responses={201: EndpointCreatedSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        data = request.data
        endpoint, generated = endpoint_create(
            url=_text(data, "url"), events=_events(data), secret=_text(data, "secret", required=False) or None,
            description=_text(data, "description", required=False), by=request.user.get_username(),
        )
        document = endpoint_document(endpoint) | ({"secret": generated} if generated else {})
        return Response(document, status=status.HTTP_201_CREATED)


class WebhookDetailView(ApiView):
    required_perms = {"DELETE": "webhooks.delete_webhookendpoint"}

    @extend_schema(responses={200: EndpointDetailSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        endpoint = endpoint_get(endpoint_id=pk)
        deliveries = [delivery_document(d) for d in delivery_list(endpoint_id=pk, limit=20)]
        return Response(endpoint_document(endpoint) | {"deliveries": deliveries})

    @extend_schema(responses={200: EndpointSerializer, **ERRORS, **NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        return Response(endpoint_document(endpoint_delete(endpoint_id=pk)) | {"deleted": True})


class DeliveryListView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("endpoint", int, description="only this endpoint's deliveries"),
            OpenApiParameter("limit", int, description="at most this many, newest first (default 100, max 1000)"),
        ],
        responses={200: DeliverySerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        try:
            endpoint = int(request.query_params["endpoint"]) if request.query_params.get("endpoint") else None
            limit = int(request.query_params.get("limit", 100))
        except ValueError:
            raise Refusal("request", "endpoint and limit must be whole numbers") from None
        return Response([delivery_document(d) for d in delivery_list(endpoint_id=endpoint, limit=limit)])


class DeliveryResendView(ApiView):
    required_perms = {"POST": "webhooks.change_webhookendpoint"}

    @extend_schema(
        request=None,
        responses={202: OpenApiResponse(DeliverySerializer, description="the new delivery"), **ERRORS, **NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        return Response(delivery_document(delivery_resend(delivery_id=pk)), status=status.HTTP_202_ACCEPTED)
