from __future__ import annotations

from django.urls import path

from rollouts import views

urlpatterns = [
    path("progress/", views.progress, name="rollouts-progress"),
    path("", views.policy, name="rollout-policy"),
    path("<str:name>/<str:action>/", views.control, name="rollout-control"),
]
