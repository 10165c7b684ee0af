"""The one write of a sign-in: the user found by issuer and subject (created at its first sign-in),
its details and its groups set from the claims, in one transaction."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from extadmin.packaging import Refusal
from extadmin.sso.config import OidcConfig
from extadmin.sso.models import OidcIdentity
from extadmin.sso.roles import roles_apply

log = logging.getLogger(__name__)
STEP = "sign in"
_NOT_USERNAME = re.compile(r"[^\w.@+-]")


def claimed_groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The IdP's groups: a list of strings, or one string of names separated by spaces or commas."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [g for g in re.split(r"[\s,]+", value) if g]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []


def sso_user_sign_in(*, config: OidcConfig, issuer: str, claims: Mapping[str, Any]) -> User:
    """1. find the user by (issuer, sub), or create one with no usable password (it signs in only
    through the provider); 2. copy e-mail and name; 3. set its groups to the roles its IdP groups map
    to, and to none if no group maps: logged in, no permission."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Refusal(STEP, "the identity provider's answer names no subject (sub)")
    groups = claimed_groups(claims, config.groups_claim)
    roles = config.roles_of(groups)
    with transaction.atomic():
        identity = OidcIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if identity is None:
            identity = OidcIdentity(issuer=issuer, subject=subject, user=_user_create(claims))
        user = identity.user
        user.email = str(claims.get("email") or user.email)[:254]
        user.first_name = str(claims.get("given_name") or claims.get("name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save(update_fields=["email", "first_name", "last_name"])
        identity.last_groups = groups
        identity.save()
        user.groups.set(_role_groups(roles))
    log.info("sso: %s signed in (subject %s), roles: %s", user.username, subject, ", ".join(roles) or "none")
    return user


def _user_create(claims: Mapping[str, Any]) -> User:
    user = User(username=_free_username(claims))
    user.set_unusable_password()
    user.save()
    return user


def _free_username(claims: Mapping[str, Any]) -> str:
    """The provider's user name where it is free; a local account keeps its own name (``alice`` stays
    the local one, the provider's alice becomes ``alice-sso``)."""
    wanted = str(claims.get("preferred_username") or str(claims.get("email") or "").split("@")[0] or "sso-user")
    base = _NOT_USERNAME.sub("-", wanted)[:140] or "sso-user"
    taken = set(User.objects.filter(username__startswith=base).values_list("username", flat=True))
    for candidate in [base, f"{base}-sso", *(f"{base}-sso{n}" for n in range(2, 1000))]:
        if candidate not in taken:
            return candidate
    raise Refusal(STEP, f"no free user name for {base!r}")


def _role_groups(roles: list[str]) -> list[Group]:
    groups = list(Group.objects.filter(name__in=roles))
    if len(groups) < len(roles) or any(not g.permissions.exists() for g in groups):
        # Migrated before the roles existed, or deleted in the admin: made again, as the code says.
        roles_apply(group_model=Group, permission_model=Permission)
        groups = list(Group.objects.filter(name__in=roles))
    return groups
