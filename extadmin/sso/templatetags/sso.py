from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def sso_provider_name() -> str:
    """The configured provider's name for the login page's button, or "" while SSO is off. Only the
    name: the configuration holds the client secret, which no template may reach."""
    config = settings.EXTADMIN_OIDC
    return config.provider_name if config is not None else ""
