"""Account pages that differ from Django's own."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpResponse


class PasswordResetView(auth_views.PasswordResetView):
    """Reset links point at ``EXTADMIN_PUBLIC_URL``. Django's own view builds them from the request's
    Host header, which the client writes: a forged one would send the operator's reset token to a
    host of the attacker's choosing."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # The mail's context takes these last, so they replace whatever the request's host said.
        public = urlsplit(settings.EXTADMIN_PUBLIC_URL)
        self.extra_email_context = {"protocol": public.scheme, "domain": public.netloc, "site_name": public.netloc}
        return super().form_valid(form)
