"""Who signed in through the provider, as whom, with which IdP groups: read only (a sign-in writes it).
To lock someone out, deactivate the user; to unlink, delete the user (a next sign-in makes a new one)."""
from __future__ import annotations

from django.contrib import admin

from extadmin.admin import ReadOnlyAdmin
from extadmin.sso.models import OidcIdentity


@admin.register(OidcIdentity)
class OidcIdentityAdmin(ReadOnlyAdmin):
    list_display = ["user", "subject", "issuer", "last_groups", "created_at"]
    search_fields = ["user__username", "subject"]
