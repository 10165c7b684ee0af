from __future__ import annotations

from django.conf import settings
from django.db import models


class OidcIdentity(models.Model):
    """Who a user is at the identity provider: the issuer and its ``sub``, the only stable name.

    A sign-in finds its user by this pair, never by e-mail: an address can be reused or changed at
    the provider, and matching on it would hand a local account (the break-glass admin's) to whoever
    holds that address there.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    # The IdP groups of the last sign-in, to answer "why has she this role?" in the admin.
    last_groups = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique_subject")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
