"""The ``Dockerfile``'s image, checked without a container engine.

hadolint (.ci/run) checks how the file is written, not what the image holds: the image once lacked
the ``rollouts`` app (added after the file was written), and its console would not have started.
Both stages must copy every package pyproject.toml installs. The image's ``/app`` (where its
``manage.py`` and gunicorn run, and which comes first on their path) is built from the file's own
``COPY`` lines, as the engine would build it; then ``manage.py check --deploy`` and the classes the
``CMD`` names run from it alone, with the image's environment: no file of this checkout is on the
path, and neither is this checkout's own (editable) install of extadmin.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments and parser directives dropped."""
    lines, joined = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if not joined and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        joined += raw.rstrip().removesuffix("\\") + (" " if raw.rstrip().endswith("\\") else "")
        if not raw.rstrip().endswith("\\"):
            lines.append(joined.strip())
            joined = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for op, args in instructions():
        if op == "FROM":
            found.append([])
        found[-1].append((op, args))
    return found


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """Each ``COPY`` from the build context: its sources and its destination, relative to WORKDIR."""
    out, workdir = [], "/"
    for op, args in stage:
        if op == "WORKDIR":
            workdir = args
        if op == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--chown") and not w.startswith("--chmod")]
            if any(w.startswith("--from") for w in words):
                continue
            *sources, dest = words
            out.append((sources, dest if dest.startswith("/") else f"{workdir}/{dest}"))
    return out


def build(stage: list[tuple[str, str]], root: Path) -> None:
    for sources, dest in copies(stage):
        for source in sources:
            target = root / dest.lstrip("/")
            if dest.endswith("/"):
                target = target / Path(source).name
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)


def local_packages() -> list[str]:
    """The packages pyproject.toml installs (its ``packages.find`` patterns), as folders of this checkout."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                  and any(p.name == pattern.rstrip("*") for pattern in include))


def image_env(stage: list[tuple[str, str]], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_", "DATABASE_", "CELERY_"))}
    for op, args in stage:
        if op == "ENV":
            env.update(dict(word.split("=", 1) for word in shlex.split(args) if not word.startswith("PATH=")))
    env.update(EXTADMIN_VAR=str(tmp / "data"), DJANGO_STATIC_ROOT=str(tmp / "staticfiles"),
               DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="extadmin.example.com")
    return env


def test_both_stages_copy_every_package_pyproject_installs() -> None:
    build_stage, final = stages()
    packages = local_packages()
    assert "rollouts" in packages  # the one the image lacked
    for stage in (build_stage, final):
        copied = {Path(source).name for sources, _ in copies(stage) for source in sources}
        assert set(packages) <= copied, f"not copied: {sorted(set(packages) - copied)}"


def test_the_images_console_passes_its_deploy_checks_from_the_images_own_files(tmp_path: Path) -> None:
    _, final = stages()
    build(final, tmp_path / "image")
    app = tmp_path / "image" / "app"
    env = image_env(final, tmp_path)
    # -S: no .pth file runs, so this checkout's editable install of extadmin is not on the path; the
    # third-party packages are (the image installs them from the same pyproject.toml).
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-S", *args], cwd=app, env=env, capture_output=True, text=True,
                              timeout=300)

    where = python("-c", "import extadmin, rollouts; print(extadmin.__file__, rollouts.__file__)")
    assert where.returncode == 0, where.stderr
    assert str(ROOT) not in where.stdout, where.stdout

    collect = python("manage.py", "collectstatic", "--noinput", "-v0")  # the image's build step
    assert collect.returncode == 0, collect.stdout + collect.stderr
    check = python("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stdout + check.stderr

    cmd = json.loads(next(args for op, args in final if op == "CMD"))
    classes = [cmd[i + 1] for i, word in enumerate(cmd) if word in ("--worker-class", "--logger-class")]
    assert classes, cmd
    imported = python("-c", "import importlib, sys\nfor path in sys.argv[1:]:\n"
                            "    module, name = path.rsplit('.', 1); getattr(importlib.import_module(module), name)",
                      *classes)
    assert imported.returncode == 0, imported.stderr


def test_the_images_console_opens_no_control_socket() -> None:
    """The ``CMD`` as gunicorn's own parser reads it: no control socket (see
    ``tests/cluster/test_run_command.py::test_its_console_opens_no_control_socket``)."""
    from gunicorn.config import Config

    cmd = json.loads(next(args for op, args in stages()[-1] if op == "CMD"))
    assert cmd[0] == "gunicorn", cmd
    parsed = Config().parser().parse_args(cmd[1:])
    assert parsed.control_socket_disable is True, cmd
