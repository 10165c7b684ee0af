from __future__ import annotations

from django.urls import path

from webhooks import views

urlpatterns = [
    path("", views.webhooks_page, name="webhooks"),
    path("add/", views.webhook_add, name="webhook-add"),
    path("<int:pk>/edit/", views.webhook_edit, name="webhook-edit"),
    path("<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("deliveries/<int:pk>/resend/", views.delivery_resend_page, name="webhook-resend"),
]
