from __future__ import annotations

from django.urls import path

from rollouts import api

urlpatterns = [
    path("rollouts/", api.RolloutListView.as_view(), name="rollouts"),
    path("rollouts/<str:name>/", api.RolloutDetailView.as_view(), name="rollout"),
    path("rollouts/<str:name>/pause/", api.RolloutPauseView.as_view(), name="rollout-pause"),
    path("rollouts/<str:name>/resume/", api.RolloutResumeView.as_view(), name="rollout-resume"),
    path("rollouts/<str:name>/abort/", api.RolloutAbortView.as_view(), name="rollout-abort"),
    path("rollout-policy/", api.RolloutPolicyView.as_view(), name="rollout-policy"),
]
