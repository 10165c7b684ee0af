"""Test-only fault injection: make a real process fail or die at a named step.

``EXTADMIN_FAULTS="import.after_unzip=kill"`` makes the process SIGKILL itself when it reaches
that checkpoint; ``=raise`` raises ``InjectedFault`` instead; ``=hang`` stops there for ever;
``=wait:<file>`` creates ``<file>.reached`` and waits there until ``<file>`` exists, so a test can
run a competing process at exactly that point and then let this one go on.

``EXTADMIN_FAULTS_ARMED=<folder>`` lets a test arm a checkpoint while the processes run: it writes
one of those actions into ``<folder>/<point>``, and the first process to reach that point takes it
(renames it to ``<point>.<pid>``: of several processes, one rename wins) and acts on it; every
other process, and every later visit, goes on. So a cluster of long-running agents and consoles can
have one process killed at each step in turn, and the test knows which one it was.

Both are ignored in production settings. This is how the test suite proves the backout and crash
recovery on real processes, not mocks.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.conf import settings


class InjectedFault(RuntimeError):
    pass


def _faults() -> dict[str, str]:
    # Read from the environment each time so a test can switch faults inside one process.
    raw = os.environ.get("EXTADMIN_FAULTS", settings.EXTADMIN_FAULTS) if not settings.PRODUCTION else ""
    faults: dict[str, str] = {}
    for item in raw.split(","):
        if "=" in item:
            point, action = item.split("=", 1)
            faults[point.strip()] = action.strip()
    return faults


def _armed(point: str) -> str | None:
    """The action armed at ``point`` for the first process that reaches it, taken by this one; or None."""
    folder = os.environ.get("EXTADMIN_FAULTS_ARMED", "") if not settings.PRODUCTION else ""
    if not folder:
        return None
    armed = Path(folder) / point
    taken = armed.with_name(f"{point}.{os.getpid()}")
    try:
        os.rename(armed, taken)
    except FileNotFoundError:  # not armed, or another process took it first
        return None
    return taken.read_text().strip() or "kill"


def checkpoint(point: str) -> None:
    action = _faults().get(point) or _armed(point)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(f"fault injected at {point}")
    elif action == "hang":
        signal.pause()
    elif action is not None and action.startswith("wait:"):
        _wait_for(Path(action.removeprefix("wait:")))


def _wait_for(release: Path) -> None:
    release.with_name(release.name + ".reached").touch()
    while not release.exists():
        time.sleep(0.05)
