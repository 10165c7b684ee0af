"""A signing key rotated while the agents run: each agent reads its own allowed_signers at every
check, so the new key is trusted without a restart, and a retired key is refused from then on —
on the console and on every node — while what a node already proved stays in place.

Real agents (``run_node``) under EXTADMIN_SIGNATURES=require with their own allowed_signers files,
real ``ssh-keygen`` keys and signatures, the real broker and database.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.services import package_import_file
from nodes.models import SyncState
from tests.cluster.conftest import Cluster
from tests.packages import build_package
from tests.processes import wait_for
from tests.reliability.world import rows
from tests.signing import Keys, keys

__all__ = ["keys"]
pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

ALICE, BOB = ("alice@example.com", "alice"), ("bob@example.com", "bob")
UNTRUSTED = "signature: signed by a key that is not in the allowed signers"


def _signed(pkgdir: Path, keys: Keys, name: str, version: str, key: str) -> ExtensionPackage:
    path = build_package(pkgdir, name, version, filename=f"{name}-{version}.zip")
    package_import_file(path=path, actor=Actor(via="cli"), signature=keys.sign(path, key=key))
    return ExtensionPackage.objects.get(name=name)


def _trust(keys: Keys, files: list[Path], *entries: tuple[str, str]) -> None:
    """Rewrite each allowed_signers file in place, the way an operator's config management would."""
    for f in files:
        tmp = f.with_suffix(".new")
        tmp.write_text(keys.trust(*entries, file=f"{f.parent.name}-{len(entries)}").read_text())
        tmp.replace(f)


def test_a_key_rotated_while_agents_run_is_trusted_at_once_and_the_retired_one_refused(
    cluster: Cluster, keys: Keys, pkgdir: Path, node_storage: object, settings, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    console = tmp_path / "console" / "allowed_signers"
    names = [cluster.name(1), cluster.name(2)]
    files = [tmp_path / n / "allowed_signers" for n in names]
    for f in [console, *files]:
        f.parent.mkdir(parents=True)
    _trust(keys, [console, *files], ALICE)
    settings.EXTADMIN_SIGNATURES, settings.EXTADMIN_ALLOWED_SIGNERS = "require", console
    for name, f in zip(names, files, strict=True):
        cluster.agent(name, EXTADMIN_SIGNATURES="require", EXTADMIN_ALLOWED_SIGNERS=str(f),
                      EXTADMIN_SYNC_INTERVAL="2").start()
    for name in names:
        cluster.wait_started(name)
    legacy = _signed(pkgdir, keys, "Legacy", "1.0.0", "alice")
    cluster.wait_converged(names, [legacy])

    # 1. overlap: both keys trusted everywhere, without restarting anything; bob signs the new version.
    _trust(keys, [console, *files], ALICE, BOB)
    pkg = _signed(pkgdir, keys, "Pkg", "1.0.0", "bob")
    cluster.wait_converged(names, [legacy, pkg])
    assert pkg.signer == "bob@example.com"

    # 2. alice retired: the console refuses her signature, writing nothing ...
    _trust(keys, [console, *files], BOB)
    before = rows()
    late = build_package(pkgdir, "Late", "1.0.0", filename="Late-1.0.0.zip")
    with pytest.raises(Refusal) as refused:
        package_import_file(path=late, actor=Actor(via="cli"), signature=keys.sign(late, key="alice"))
    assert str(refused.value).startswith("signature: signed by a key that is not in the allowed signers")
    assert rows() == before

    # ... a node that must fetch alice's Legacy again refuses it and keeps nothing of it, while the
    # node that proved it earlier keeps its copy; bob's package is repaired as usual.
    lost = cluster.storage(names[1])
    shutil.rmtree(lost.package_dir("Legacy"))
    shutil.rmtree(lost.package_dir("Pkg"))

    def refused_legacy() -> bool:
        s = SyncState.objects.filter(node__name=names[1], package_name="Legacy").first()
        return s is not None and s.state == "failed"

    wait_for(refused_legacy, timeout=30, what="the retired key's package refused on the node")
    state = SyncState.objects.get(node__name=names[1], package_name="Legacy")
    assert state.error.startswith(UNTRUSTED), state.error
    assert not lost.package_dir("Legacy").exists()
    cluster.wait_converged([names[1]], [pkg])
    assert cluster.holds(names[0], legacy)  # proved before the rotation: never taken away
    assert [a.alive for a in cluster.agents.values()] == [True, True]
