"""``compose.yaml``: a whole cluster in one file, checked without a container engine.

``docker-compose config`` (Debian's package, 1.29) resolves the file with the example environment
as Compose itself would; the test reads what it resolved: three agents with volumes of their own,
migrations once before anything else, health checks, production settings, secrets only from ``.env``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import ROOT

COMPOSE = shutil.which("docker-compose")
pytestmark = [
    pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)"),
    pytest.mark.dbless,  # no database, no broker: .ci/run runs it once
]
AGENTS = ["node-1", "node-2", "node-3"]
EXTADMIN = ["migrate", "console", "webhooks", *AGENTS]


def compose(*args: str, env_file: str = ".env.example") -> subprocess.CompletedProcess[str]:
    given = ["--env-file", env_file]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_", "POSTGRES_", "REDIS_"))}
    return subprocess.run(
        [str(COMPOSE), *given, "-f", "compose.yaml", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    resolved = compose("config")
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)  # type: ignore[no-any-return]


def test_it_starts_postgres_redis_the_console_and_three_agents(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"postgres", "redis", *EXTADMIN}
    for name in AGENTS:
        assert config["services"][name]["command"] == ["python", "manage.py", "run_node", "--name", name,
                                                        "--storage", "/data"]


def test_it_gives_every_agent_its_own_volume(config: dict[str, Any]) -> None:
    def volumes(service: str) -> list[str]:
        return [str(v).split(":")[0] if isinstance(v, str) else v["source"]
                for v in config["services"][service].get("volumes", [])]

    agent_volumes = [volumes(name) for name in AGENTS]
    assert all(len(v) == 1 for v in agent_volumes)
    flat = [v[0] for v in agent_volumes]
    assert len(set(flat)) == 3 and set(flat) <= set(config["volumes"])  # named volumes, one each
    # The console imports as node-1, on node-1's storage (as scripts/run does), and on no other.
    assert config["services"]["console"]["environment"]["EXTADMIN_NODE"] == "node-1"
    assert volumes("console") == volumes("node-1")


def test_it_migrates_once_before_the_console_and_the_agents(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ["console", *AGENTS]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"] and services["redis"]["healthcheck"]["test"]


def test_it_runs_everything_with_production_settings(config: dict[str, Any]) -> None:
    for name in EXTADMIN:
        env = config["services"][name]["environment"]
        assert env["EXTADMIN_PRODUCTION"] == "1"
        assert re.fullmatch(r"postgres://extadmin:[^@]+@postgres:5432/extadmin", env["DATABASE_URL"])
        assert re.fullmatch(r"redis://:[^@]+@redis:6379/0", env["CELERY_BROKER_URL"])
        assert env["DJANGO_SECRET_KEY"] and env["DJANGO_ALLOWED_HOSTS"]


def test_it_passes_check_deploy_with_the_consoles_environment(config: dict[str, Any]) -> None:
    # Only the service's environment: nothing of this process's (the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_"))}
    env.update(config["services"]["console"]["environment"], DJANGO_STATIC_ROOT=str(ROOT / "var"))
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_it_takes_every_secret_from_the_environment_file(tmp_path: Path) -> None:
    text = (ROOT / "compose.yaml").read_text()
    for secret in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert f"${{{secret}:?" in text  # required: no default a real cluster could start with
    assert not re.search(r"(?i)(password|secret)[^$\n]*:\s*['\"]?[A-Za-z0-9]{12,}", text)  # none written in
    assert ".env\n" in (ROOT / ".gitignore").read_text()

    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = compose("config", "-q", env_file=str(empty))  # never a developer's own .env
    assert missing.returncode != 0
    assert "set DJANGO_SECRET_KEY in .env" in missing.stderr or "set POSTGRES_PASSWORD in .env" in missing.stderr
