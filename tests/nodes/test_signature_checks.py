"""Every node checks a package's signature again, against its own allowed_signers, before it swaps
the package in: an archive changed in the database after the import never reaches its disk.

``sync_node`` runs as a real process with the node's own environment (its EXTADMIN_SIGNATURES and
EXTADMIN_ALLOWED_SIGNERS); the archive is tampered with in the real database, the way someone
holding the console's credentials could: one byte of a chunk flipped, or chunks, checksum and
manifest replaced together by another zip that is valid in every other way.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from extadmin.archive import archive_write
from extadmin.importing import limits_from_settings
from extadmin.models import ArchiveChunk, ExtensionPackage
from extadmin.operations import Actor
from extadmin.packaging import validate_package
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from tests.dbroles import node_roles_drop
from tests.extadmin.conftest import sha256_of, snapshot
from tests.extadmin.test_signed_imports import DOORS, signed_bundle
from tests.packages import build_package
from tests.processes import child_env, manage, run_command
from tests.semantics.support import OPERATOR_PERMS, make_user, token_client
from tests.signing import Keys, keys, trusted

__all__ = ["keys", "trusted"]
pytestmark = pytest.mark.django_db(transaction=True)  # the sync_node child sees only what was committed

MISMATCH = "the archive in the database does not match its signature"


@pytest.fixture
def node_allowed(keys: Keys, tmp_path: Path) -> Path:
    """Node n1's own allowed_signers, in its own folder (not the console's file)."""
    folder = tmp_path / "n1-etc"
    folder.mkdir()
    path = folder / "allowed_signers"
    path.write_text(keys.trust(("alice@example.com", "alice"), file="n1-copy").read_text())
    return path


def signed_import(pkgdir: Path, keys: Keys, name: str, version: str, **kwargs: object) -> ExtensionPackage:
    path = build_package(pkgdir, name, version, filename=f"{name}-{version}.zip", **kwargs)  # type: ignore[arg-type]
    package_import_file(path=path, actor=Actor(via="cli"), signature=keys.sign(path))
    return ExtensionPackage.objects.get(name=name)


def sync_n1(n1: NodeStorage, allowed: Path | None, mode: str = "require") -> tuple[int, dict]:
    env = child_env(EXTADMIN_SIGNATURES=mode, EXTADMIN_ALLOWED_SIGNERS=str(allowed or ""), EXTADMIN_FAULTS="")
    done = manage("sync_node", "--name", "n1", "--storage", str(n1.root), "--json", env=env)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr}


def flip_one_byte(package: ExtensionPackage) -> None:
    chunk = ArchiveChunk.objects.get(package=package, seq=0)
    data = bytearray(chunk.data)
    data[len(data) // 2] ^= 0x01
    ArchiveChunk.objects.filter(pk=chunk.pk).update(data=bytes(data))


def replace_consistently(package: ExtensionPackage, evil: Path) -> None:
    """Another zip's chunks, checksum, size and manifest: every check but the signature's passes."""
    digest, size = sha256_of(evil), evil.stat().st_size
    manifest = validate_package(evil, limits=limits_from_settings()).plan.manifest()
    archive_write(package=package, path=evil, sha256=digest, size=size, manifest=manifest)
    ExtensionPackage.objects.filter(pk=package.pk).update(sha256=digest, size=size)


@pytest.fixture
def watcher() -> User:
    return make_user("watcher")


def assert_tampering_shown(name: str, reason: str, watcher: User) -> None:
    tampered = token_client(watcher).get(f"/api/extensions/{name}/").json()["tampered"]
    assert [(t["node"], t["reason"]) for t in tampered] == [("n1", reason)]
    client = Client()
    client.force_login(watcher)
    page = client.get(f"/extensions/{name}/").content.decode()
    assert f"<strong>tampering:</strong> {reason} (node n1, " in page


@pytest.mark.parametrize("tamper", ["one byte flipped", "chunks and checksum replaced"])
def test_it_keeps_the_old_version_byte_for_byte_when_the_new_archive_was_tampered_with(
    tamper: str, trusted: Path, node_allowed: Path, keys: Keys, node_storage: NodeStorage, n1: NodeStorage,
    pkgdir: Path, watcher: User,
) -> None:
    signed_import(pkgdir, keys, "Pkg", "1.0.0")
    assert sync_n1(n1, node_allowed)[0] == 0
    before = snapshot(n1)
    v2 = signed_import(pkgdir, keys, "Pkg", "2.0.0")
    if tamper == "one byte flipped":
        flip_one_byte(v2)
        said, reason = "checksum mismatch: ", "the archive in the database does not match its checksum"
    else:
        evil = build_package(pkgdir, "Pkg", "2.0.0", filename="evil.zip", files={"lib/evil.jar": b"planted"})
        replace_consistently(v2, evil)
        said, reason = "signature: the signature does not match the zip (signed by alice@example.com", MISMATCH

    code, result = sync_n1(n1, node_allowed)

    assert code == 1
    assert result["failures"]["Pkg"].startswith(said), result
    assert snapshot(n1) == before  # the old version, byte for byte, and nothing else
    state = SyncState.objects.get(node__name="n1", package_name="Pkg")
    assert (state.state, state.installed_version) == ("failed", "1.0.0")
    assert state.error.startswith(said)
    assert_tampering_shown("Pkg", reason, watcher)


@pytest.mark.parametrize(
    ("case", "said"),
    [("unsigned", "signature: the package is not signed"),
     ("key the node does not trust", "signature: signed by a key that is not in the allowed signers")],
)
def test_it_refuses_under_require_on_the_node_what_its_own_keys_do_not_prove(
    case: str, said: str, keys: Keys, settings, node_storage: NodeStorage, n1: NodeStorage, pkgdir: Path,  # type: ignore[no-untyped-def]
    watcher: User,
) -> None:
    """The console checked (warn) or trusts alice; the node does not: the node's own file decides."""
    settings.EXTADMIN_ALLOWED_SIGNERS = keys.trust(("alice@example.com", "alice"))
    settings.EXTADMIN_SIGNATURES = "warn"
    path = build_package(pkgdir, "Pkg", filename="Pkg.zip")
    signature = None if case == "unsigned" else keys.sign(path)
    package_import_file(path=path, actor=Actor(via="cli"), signature=signature)
    own = keys.trust(("bob@example.com", "bob"), file="n1-only-bob")

    code, result = sync_n1(n1, own)

    assert code == 1
    assert result["failures"]["Pkg"].startswith(said), result
    assert n1.installed_names() == []
    assert SyncState.objects.get(node__name="n1", package_name="Pkg").error.startswith(said)
    tampered = token_client(watcher).get("/api/extensions/Pkg/").json()["tampered"]
    assert [t["node"] for t in tampered] == ["n1"]


def test_it_installs_a_signed_package_on_a_node_that_trusts_its_key(
    trusted: Path, node_allowed: Path, keys: Keys, node_storage: NodeStorage, n1: NodeStorage, pkgdir: Path,
    watcher: User,
) -> None:
    package = signed_import(pkgdir, keys, "Pkg", "1.0.0")

    code, result = sync_n1(n1, node_allowed)

    assert code == 0, result
    assert result["actions"] == ["installed Pkg 1.0.0"]
    assert n1.read_chk("Pkg") == package.sha256
    assert token_client(watcher).get("/api/extensions/Pkg/").json()["tampered"] == []


def test_it_installs_with_a_warning_under_warn_and_checks_nothing_when_off(
    keys: Keys, node_storage: NodeStorage, n1: NodeStorage, pkgdir: Path, node_allowed: Path
) -> None:
    path = build_package(pkgdir, "Pkg", filename="Pkg.zip")
    package_import_file(path=path, actor=Actor(via="cli"))  # unsigned (the console's signatures are off)

    env = child_env(EXTADMIN_SIGNATURES="warn", EXTADMIN_ALLOWED_SIGNERS=str(node_allowed), EXTADMIN_FAULTS="")
    done = manage("sync_node", "--name", "n1", "--storage", str(n1.root), env=env)

    assert done.returncode == 0, done.stderr
    assert n1.read_chk("Pkg") == ExtensionPackage.objects.get(name="Pkg").sha256
    assert "n1: installing Pkg 1.0.0 although the package is not signed" in done.stderr
    assert "(EXTADMIN_SIGNATURES is warn)" in done.stderr
    n1.chk_path("Pkg").unlink()  # a repair under off: nothing is checked, nothing said
    off = manage("sync_node", "--name", "n1", "--storage", str(n1.root), env={**env, "EXTADMIN_SIGNATURES": "off"})
    assert off.returncode == 0 and "signed" not in off.stderr


@pytest.mark.parametrize("door", list(DOORS))
def test_it_installs_every_member_of_a_bundle_signed_inside_it_on_a_node_under_require(
    door: str, trusted: Path, node_allowed: Path, keys: Keys, node_storage: NodeStorage, n1: NodeStorage,
    pkgdir: Path, watcher: User,
) -> None:
    """Each member's own signature is stored with it, so the node proves the member's own archive."""
    operator = make_user("operator", *OPERATOR_PERMS)
    code, said = DOORS[door](signed_bundle(pkgdir, keys), None, operator)
    assert code == 0, said

    code, result = sync_n1(n1, node_allowed)

    assert code == 0, result
    assert sorted(result["actions"]) == ["installed A 1.0.0", "installed B 1.0.0"]
    for name in ("A", "B"):
        assert n1.read_chk(name) == ExtensionPackage.objects.get(name=name).sha256
        assert token_client(watcher).get(f"/api/extensions/{name}/").json()["tampered"] == []


@pytest.fixture
def own_credentials() -> Iterator[tuple[str, str]]:
    """A fresh node name and its own PostgreSQL role's DATABASE_URL; the role is dropped afterwards."""
    name = f"s{uuid.uuid4().hex[:6]}"
    status, out, err = run_command("node_credentials", name, "--json")
    assert status == 0, err
    yield name, json.loads(out)["DATABASE_URL"]
    node_roles_drop()


@pytest.mark.postgresql
def test_it_checks_signatures_on_a_node_that_holds_only_its_own_credentials(
    own_credentials: tuple[str, str], trusted: Path, node_allowed: Path, keys: Keys, node_storage: NodeStorage,
    tmp_path: Path, pkgdir: Path,
) -> None:
    """The node's role reads the stored signature, and records its refusal in its own rows."""
    name, url = own_credentials
    storage = NodeStorage(tmp_path / "storage" / name)
    env = child_env(DATABASE_URL=url, EXTADMIN_SIGNATURES="require", EXTADMIN_ALLOWED_SIGNERS=str(node_allowed))
    sync = ["sync_node", "--name", name, "--storage", str(storage.root), "--json"]
    signed_import(pkgdir, keys, "Pkg", "1.0.0")
    assert manage(*sync, env=env).returncode == 0
    v2 = signed_import(pkgdir, keys, "Pkg", "2.0.0")
    replace_consistently(v2, build_package(pkgdir, "Pkg", "2.0.0", filename="evil.zip", files={"lib/evil.jar": b"x"}))

    done = manage(*sync, env=env)

    assert done.returncode == 1
    assert json.loads(done.stdout)["failures"]["Pkg"].startswith("signature: the signature does not match the zip")
    assert SyncState.objects.get(node__name=name, package_name="Pkg").installed_version == "1.0.0"
    assert not (storage.package_dir("Pkg") / "lib" / "evil.jar").exists()
