"""``/api/webhooks/…`` (included by ``extadmin.api.urls``, names in its ``api`` namespace)."""
from __future__ import annotations

from django.urls import path

from webhooks import api

urlpatterns = [
    path("", api.WebhookListView.as_view(), name="webhooks"),
    path("<int:pk>/", api.WebhookDetailView.as_view(), name="webhook"),
    path("deliveries/", api.DeliveryListView.as_view(), name="webhook-deliveries"),
    path("deliveries/<int:pk>/resend/", api.DeliveryResendView.as_view(), name="webhook-delivery-resend"),
]
