"""The operator's health probe: after a node swaps a package in, and before it reports it installed.

``EXTADMIN_HEALTH_PROBE`` is a command line, split like a shell splits words (``shlex``) but run
without a shell: ``/opt/probe.sh --quick``. For pipes or ``&&``, name a shell yourself
(``sh -c '…'``). It runs in the package's folder with ``EXTADMIN_PACKAGE``, ``EXTADMIN_VERSION``,
``EXTADMIN_PACKAGE_DIR`` and ``EXTADMIN_NODE`` added to the agent's environment, in a process group
of its own, for at most ``EXTADMIN_HEALTH_PROBE_TIMEOUT`` seconds; then the whole group is killed.

Exit 0 passes. Anything else (a non-zero exit, the timeout, a command that cannot start) raises
``HealthProbeFailed`` with the words the node reports: ``health probe exit 1: <first line of
stderr>``, ``health probe timed out after 60 s``. The sync then puts the previous version back
(``extadmin.storage.Swap.rollback``) and reports the package failed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

# How much of the probe's output is kept: its first stderr line is reported, the rest only logged.
OUTPUT_LIMIT = 64 * 1024
FIRST_LINE_LIMIT = 300


class HealthProbeFailed(Exception):
    """The probe said no (or could not say yes): the words the node reports."""


@dataclass(frozen=True)
class Probe:
    argv: list[str]
    timeout: float


def health_probe_run(*, node: str, name: str, version: str, folder: Path, probe: Probe | None = None) -> None:
    """Run the probe for ``name`` ``version`` swapped into ``folder``; raises ``HealthProbeFailed``.

    ``probe``: the configured one unless given. None configured: nothing runs, the package counts
    as healthy (the behaviour without probes).
    """
    probe = probe or configured_probe()
    if probe is None:
        return
    env = {
        **os.environ, "EXTADMIN_PACKAGE": name, "EXTADMIN_VERSION": version,
        "EXTADMIN_PACKAGE_DIR": str(folder), "EXTADMIN_NODE": node,
    }
    try:
        proc = subprocess.Popen(  # the operator's own command, no shell
            probe.argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        raise HealthProbeFailed(f"health probe could not start: {exc.strerror or exc} ({probe.argv[0]})") from exc
    try:
        _, err = proc.communicate(timeout=probe.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise HealthProbeFailed(f"health probe timed out after {probe.timeout:g} s") from None
    except BaseException:  # the agent is stopping: leave no probe behind
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        log.warning("%s: health probe of %s %s failed (exit %s): %s", node, name, version, proc.returncode,
                    err[:OUTPUT_LIMIT].decode(errors="replace").strip())
        raise HealthProbeFailed(_failure_words(proc.returncode, err))
    log.info("%s: health probe of %s %s passed", node, name, version)


def _failure_words(returncode: int, stderr: bytes) -> str:
    said = f"health probe killed by signal {-returncode}" if returncode < 0 else f"health probe exit {returncode}"
    first = next((line.strip() for line in stderr[:OUTPUT_LIMIT].decode(errors="replace").splitlines()
                  if line.strip()), "")
    if len(first) > FIRST_LINE_LIMIT:
        first = first[:FIRST_LINE_LIMIT] + "…"
    return f"{said}: {first}" if first else f"{said} (it wrote nothing on stderr)"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The probe and every process it started: a probe's children must not outlive its timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)  # reap it, and read its pipes to their end
    except subprocess.TimeoutExpired:  # a child that left the group still holds a pipe
        proc.kill()
        proc.wait()


def configured_probe() -> Probe | None:
    """The probe of ``EXTADMIN_HEALTH_PROBE`` (split and checked by the settings), or None when unset."""
    argv = list(settings.EXTADMIN_HEALTH_PROBE)
    return Probe(argv=argv, timeout=settings.EXTADMIN_HEALTH_PROBE_TIMEOUT) if argv else None
