"""The health probe (``nodes.probe``, issue 12 item 5): a real command run by a real sync pass.

After the swap and before ``installed`` the node runs EXTADMIN_HEALTH_PROBE; a non-zero exit or a
timeout puts the previous version back byte for byte (a first install leaves no folder) and the
node reports the probe's words as a failure of the new checksum, on every surface.
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from nodes.status import cluster_document, render_table
from tests.nodes.conftest import Importer, Syncer
from tests.processes import ROOT, child_env, pid_alive
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db

FAILS_FOR_2 = """#!/bin/sh
echo "probing $EXTADMIN_PACKAGE $EXTADMIN_VERSION" >> "{log}"
if [ "$EXTADMIN_VERSION" = "2.0.0" ]; then
  echo "checking the platform log" >&2
  echo "second line, never reported" >&2
  exit 1
fi
exit 0
"""


def probe(tmp_path: Path, body: str, name: str = "probe.sh") -> Path:
    """An executable probe script under tmp_path; ``{log}`` in ``body`` becomes its log file."""
    path = tmp_path / name
    path.write_text(body.replace("{log}", str(tmp_path / "probe.log")))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def probes_run(tmp_path: Path) -> list[str]:
    log = tmp_path / "probe.log"
    return log.read_text().splitlines() if log.exists() else []


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the .chk included), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def leftovers(storage: NodeStorage) -> list[str]:
    return [str(p) for kind in ("staging", "retired") for p in (storage.work / kind).glob("*")]


@pytest.fixture
def failing_probe(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    path = probe(tmp_path, FAILS_FOR_2)
    settings.EXTADMIN_HEALTH_PROBE = [str(path)]
    return path


def test_it_puts_the_previous_version_back_byte_identical_when_the_probe_fails(
    failing_probe: Path, tmp_path: Path, import_package: Importer, sync: Syncer, n1: NodeStorage,
) -> None:
    v1 = import_package("Alpha", "1.0.0")
    assert sync().ok  # the probe passes for 1.0.0
    before = file_hashes(n1.package_dir("Alpha"))
    assert before["Alpha.chk"] == hashlib.sha256(f"{v1.sha256}\n".encode()).hexdigest()

    v2 = import_package("Alpha", "2.0.0")
    result = sync()

    words = "health probe exit 1: checking the platform log"
    assert not result.ok and result.failures == {"Alpha": words}
    assert file_hashes(n1.package_dir("Alpha")) == before  # every file, byte for byte
    assert n1.read_chk("Alpha") == v1.sha256 and leftovers(n1) == []
    assert probes_run(tmp_path) == ["probing Alpha 1.0.0", "probing Alpha 2.0.0"]
    state = SyncState.objects.get(node__name="n1", package_name="Alpha")
    # The failure is the new checksum's (a rollout counts it); the node still holds the old one.
    assert (state.state, state.error, state.desired_sha256, state.desired_version) == (
        "failed", words, v2.sha256, "2.0.0",
    )
    assert (state.installed_sha256, state.installed_version) == (v1.sha256, "1.0.0")
    assert f"failed Alpha 2.0.0: {words}" in result.actions


def test_it_says_the_probes_words_on_every_surface(
    failing_probe: Path, import_package: Importer, sync: Syncer, client: Client,
) -> None:
    import_package("Alpha", "1.0.0")
    sync()
    import_package("Alpha", "2.0.0")
    sync()
    words = "health probe exit 1: checking the platform log"

    cell = cluster_document()["extensions"][0]["nodes"]["n1"]
    assert (cell["state"], cell["error"], cell["version"]) == ("failed", words, "1.0.0")
    assert cell["retry"].startswith("retry 1/5 at ")
    assert f"n1: {words} (retry 1/5 at " in render_table(cluster_document())

    api = token_client(make_user("reader")).get("/api/extensions/Alpha/").json()
    [entry] = [n for n in api["nodes"] if n["node"] == "n1"]
    assert (entry["state"], entry["error"]) == ("failed", words) and entry["retry"] == cell["retry"]

    client.force_login(make_user("viewer"))
    node_page = client.get("/nodes/n1/").content.decode()
    assert f"sync failed: {words}; {cell['retry']}" in node_page
    package_page = client.get("/extensions/Alpha/").content.decode()
    assert words in package_page and cell["retry"] in package_page


def test_it_leaves_no_folder_when_a_first_install_fails_its_probe(
    tmp_path: Path, settings, import_package: Importer, sync: Syncer, n1: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_HEALTH_PROBE = [str(probe(tmp_path, "#!/bin/sh\necho 'no platform here' >&2\nexit 3\n"))]
    alpha = import_package("Alpha", "1.0.0")
    result = sync()
    assert result.failures == {"Alpha": "health probe exit 3: no platform here"}
    assert not n1.package_dir("Alpha").exists() and n1.installed_names() == [] and leftovers(n1) == []
    state = SyncState.objects.get(node__name="n1", package_name="Alpha")
    assert (state.state, state.desired_sha256, state.installed_sha256) == ("failed", alpha.sha256, "")


def test_it_kills_the_probes_process_group_on_timeout(
    tmp_path: Path, settings, import_package: Importer, sync: Syncer, n1: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    # The probe starts a child of its own and waits: both must be gone after the timeout.
    body = f"#!/bin/sh\nsleep 60 &\necho $! > {tmp_path / 'child.pid'}\nwait\n"
    settings.EXTADMIN_HEALTH_PROBE = [str(probe(tmp_path, body))]
    settings.EXTADMIN_HEALTH_PROBE_TIMEOUT = 1.0
    import_package("Alpha", "1.0.0")
    t0 = time.monotonic()
    result = sync()
    assert time.monotonic() - t0 < 20
    assert result.failures == {"Alpha": "health probe timed out after 1 s"}
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)
    assert not n1.package_dir("Alpha").exists() and leftovers(n1) == []


def test_it_gives_the_probe_the_package_version_and_folder_of_the_new_version(
    tmp_path: Path, settings, import_package: Importer, sync: Syncer, n1: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    seen = tmp_path / "seen"
    body = (
        f'#!/bin/sh\necho "$EXTADMIN_PACKAGE|$EXTADMIN_VERSION|$EXTADMIN_PACKAGE_DIR|$EXTADMIN_NODE|$(pwd)" > {seen}\n'
        f'echo "$#:$1" >> {seen}\ncat "$EXTADMIN_PACKAGE_DIR/$EXTADMIN_PACKAGE.chk" >> {seen}\n'
    )
    # Split like a shell's words, run without a shell: the quoted argument stays one word.
    settings.EXTADMIN_HEALTH_PROBE = ["sh", str(probe(tmp_path, body)), "an argument with spaces"]
    alpha = import_package("Alpha", "1.0.0")
    assert sync().ok
    folder = str(n1.package_dir("Alpha"))
    assert seen.read_text().splitlines() == [
        f"Alpha|1.0.0|{folder}|n1|{folder}", "1:an argument with spaces", alpha.sha256,
    ]
    assert SyncState.objects.get(node__name="n1", package_name="Alpha").state == "installed"


def test_it_fails_the_install_when_the_probe_cannot_start(
    tmp_path: Path, settings, import_package: Importer, sync: Syncer, n1: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    missing = tmp_path / "no-such-probe"
    settings.EXTADMIN_HEALTH_PROBE = [str(missing)]
    import_package("Alpha", "1.0.0")
    result = sync()
    assert result.failures == {"Alpha": f"health probe could not start: No such file or directory ({missing})"}
    assert not n1.package_dir("Alpha").exists()


def test_it_installs_as_before_without_a_probe(
    settings, import_package: Importer, sync: Syncer, n1: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_HEALTH_PROBE = []
    alpha = import_package("Alpha", "1.0.0")
    assert sync().ok and n1.read_chk("Alpha") == alpha.sha256
    assert ExtensionPackage.objects.count() == 1


def test_it_refuses_to_start_with_a_probe_that_is_not_a_command_line() -> None:
    env = child_env(EXTADMIN_HEALTH_PROBE="/opt/probe.sh 'unclosed")
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "EXTADMIN_HEALTH_PROBE is not a command line: No closing quotation" in done.stderr
    assert os.environ.get("EXTADMIN_HEALTH_PROBE") is None
