"""Access: production settings pass Django's deployment checks; the agents' fault switch is off there.

Promise (reliability.md, Access): ``manage.py check --deploy`` is clean under production settings.
"""
from __future__ import annotations

import os

from tests.processes import manage

PRODUCTION = {
    "EXTADMIN_PRODUCTION": "1",
    "DJANGO_SECRET_KEY": "k" + os.urandom(32).hex() + "-Zq!9",
    "DJANGO_ALLOWED_HOSTS": "extadmin.example.com",
    "DJANGO_DEBUG": "",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "extadmin.settings", **PRODUCTION, **extra}


def test_it_passes_check_deploy_under_production_settings(tmp_path):
    r = manage("check", "--deploy", "--fail-level", "WARNING", env=_env(EXTADMIN_VAR=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues" in r.stdout, r.stdout + r.stderr


def test_it_refuses_to_start_in_production_without_a_secret_key(tmp_path):
    env = _env(EXTADMIN_VAR=str(tmp_path))
    del env["DJANGO_SECRET_KEY"]
    r = manage("check", env=env)
    assert r.returncode != 0 and "DJANGO_SECRET_KEY" in r.stderr


def test_it_ignores_the_fault_switch_in_production(tmp_path):
    """The test-only fault injection can never kill a production process."""
    code = (
        "import django; django.setup();"
        "from extadmin import faults; faults.checkpoint('import.after_unzip'); print('alive')"
    )
    import subprocess
    import sys

    from tests.processes import ROOT

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=_env(EXTADMIN_VAR=str(tmp_path), EXTADMIN_FAULTS="import.after_unzip=kill"))
    assert r.returncode == 0 and r.stdout.strip() == "alive", r.stderr
