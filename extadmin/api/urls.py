from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from extadmin.api import nodes, policy, versions, views
from extadmin.api.schema import SchemaView

app_name = "api"

urlpatterns = [
    path("extensions/", views.ExtensionListView.as_view(), name="extensions"),
    path("extensions/<str:name>/", views.ExtensionDetailView.as_view(), name="extension"),
    path("extensions/<str:name>/entities/", views.ExtensionEntityListView.as_view(), name="extension-entities"),
    path("extensions/<str:name>/versions/", versions.ExtensionVersionsView.as_view(), name="extension-versions"),
    path("extensions/<str:name>/rollback/", versions.ExtensionRollbackView.as_view(), name="extension-rollback"),
    path(
        "extensions/<str:name>/versions/<str:version>/quarantine/", versions.VersionQuarantineView.as_view(),
        name="extension-quarantine",
    ),
    path("operations/", views.OperationListView.as_view(), name="operations"),
    path("nodes/<str:name>/", nodes.NodeDetailView.as_view(), name="node"),
    path("nodes/<str:name>/sync/", nodes.NodeSyncView.as_view(), name="node-sync"),
    path("nodes/<str:name>/retry/", nodes.NodeRetryView.as_view(), name="node-retry"),
    path("cluster/", views.ClusterView.as_view(), name="cluster"),
    path("cluster/pause/", views.ClusterPauseView.as_view(), name="cluster-pause"),
    path("cluster/resume/", views.ClusterResumeView.as_view(), name="cluster-resume"),
    path("policy/", policy.ImportPolicyView.as_view(), name="policy"),
    path("webhooks/", include("webhooks.api_urls")),
    path("", include("rollouts.api_urls")),
    # The schema and its docs. Swagger UI comes from drf-spectacular-sidecar's static files, never a
    # CDN; Redoc is not offered because drf-spectacular's page for it loads Google Fonts.
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
