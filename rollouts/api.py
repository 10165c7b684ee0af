"""``/api/rollouts/``: the latest rollout of each package, its controls, and the cluster's default policy.

The same services as ``rollout_status``/``rollout_pause``/``rollout_resume``/``rollout_abort`` and the
console's buttons, so a refusal reads the same (``{"error": {"step": "rollout", "reason": …}}``).
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api.views import ERRORS, ApiView, api_actor
from rollouts.services import cluster_policy, cluster_policy_set, rollout_control, rollouts_status

CONFLICT = {409: OpenApiResponse(description="the rollout is not in a state that allows it")}
NOT_FOUND = {404: OpenApiResponse(description="no such package, or it has no rollout")}


class PolicySerializer(serializers.Serializer):
    canary = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="the nodes that install first (a list, or one comma-separated string)")
    batch = serializers.IntegerField(allow_null=True, required=False, help_text="at most this many nodes change "
                                     "at once; null: all")
    max_failures = serializers.IntegerField(allow_null=True, required=False,
                                            help_text="halt when this many nodes failed; null: never")
    activation = serializers.ChoiceField(choices=["each", "together"], required=False)


class RolloutListView(ApiView):
    @extend_schema(operation_id="rollouts_list",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="as rollout_status --json"),
                              **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(rollouts_status())


class RolloutDetailView(ApiView):
    @extend_schema(operation_id="rollout_retrieve",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="as rollout_status NAME --json"),
                              **ERRORS, **NOT_FOUND})
    def get(self, request: Request, name: str) -> Response:
        return Response(rollouts_status(name))


class _ControlView(ApiView):
    action = ""
    required_perms = {"POST": "rollouts.change_rollout"}

    @extend_schema(request=None, responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="the rollout now"),
                                            **ERRORS, **NOT_FOUND, **CONFLICT})
    def post(self, request: Request, name: str) -> Response:
        return Response(rollout_control(name=name, action=self.action, actor=api_actor(request)))


class RolloutPauseView(_ControlView):
    """Pause: nobody new is admitted; the nodes already admitted finish."""

    action = "pause"


class RolloutResumeView(_ControlView):
    """Resume a paused or halted rollout (a halted one's failed nodes try again)."""

    action = "resume"


class RolloutAbortView(_ControlView):
    """Abort: every node goes back to the previous version."""

    action = "abort"


class RolloutPolicyView(ApiView):
    """The cluster's default rollout policy, which an import's own fields override one by one."""

    required_perms = {"PUT": "rollouts.change_rolloutpolicy"}

    @extend_schema(responses={200: PolicySerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(cluster_policy().as_dict())

    @extend_schema(request=PolicySerializer, responses={200: PolicySerializer, **ERRORS})
    def put(self, request: Request) -> Response:
        data: Any = request.data if hasattr(request.data, "get") else {}
        fields = {k: data.get(k) for k in ("canary", "batch", "max_failures", "activation")}
        return Response(cluster_policy_set(fields=fields, actor=api_actor(request)).as_dict())
