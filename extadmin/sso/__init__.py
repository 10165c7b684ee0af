"""Single sign-on through OpenID Connect (mozilla-django-oidc), off unless ``EXTADMIN_OIDC_ISSUER`` is set.

``config`` reads the settings (pure), ``discovery`` the provider's metadata, ``roles`` the two role
groups, ``services`` the one write of a sign-in (the user found by issuer and subject, its groups
set from the claim), ``backend`` and ``views`` adapt mozilla-django-oidc to them.
"""
