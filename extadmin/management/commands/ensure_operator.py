from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "On a fresh installation, create the first operator (superuser 'admin') and print its password."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        path = settings.VAR_DIR / "admin-password.txt"
        path.write_text(password + "\n")
        path.chmod(0o600)
        self.stdout.write(f"created operator 'admin' with password {password} (also in {path})")
