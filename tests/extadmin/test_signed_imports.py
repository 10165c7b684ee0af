"""Signed packages through every door (CLI, API, upload form) under EXTADMIN_SIGNATURES=require,
warn and off, with real ssh-keygen keys: refused at ``signature`` with nothing written, or imported
with the signer stored and shown (API, ``list_extensions --json``, the package page)."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from extadmin.models import ExtensionPackage, Operation
from extadmin.packaging import Refusal
from extadmin.services import signatures_matched
from extadmin.storage import NodeStorage
from tests.extadmin.doors import REFUSED, NothingWritten
from tests.packages import build_bundle, build_package
from tests.processes import child_env, manage, run_command
from tests.semantics.support import OPERATOR_PERMS, make_user, token_client
from tests.signing import Keys, keys, trusted

__all__ = ["keys", "trusted"]
pytestmark = pytest.mark.django_db

UNSIGNED = "the package is not signed (no detached signature came with it)"


@pytest.fixture
def operator() -> User:
    return make_user("operator", *OPERATOR_PERMS)


def cli(path: Path, sig: Path | None, operator: User) -> tuple[int, str]:
    """``import_extension PATH`` (the signature beside it as PATH.sig, else ``--signature``)."""
    args = ["import_extension", str(path)]
    if sig is not None and sig != path.with_name(path.name + ".sig"):
        args += ["--signature", str(sig)]
    code, out, err = run_command(*args)
    if code == 0:
        return 0, out
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    return code, line.removeprefix("error: ")


def api(path: Path, sig: Path | None, operator: User) -> tuple[int, str]:
    with path.open("rb") as f:
        parts: dict = {"file": [f]}
        if sig is not None:
            parts["signature"] = [sig.open("rb")]
        response = token_client(operator).post("/api/extensions/", parts, format="multipart")
        for h in parts.get("signature", []):
            h.close()
    if response.status_code == 201:
        return 0, response.content.decode()
    error = response.json()["error"]
    return response.status_code, ": ".join(p for p in (error.get("file"), error["step"], error["reason"]) if p)


def form(path: Path, sig: Path | None, operator: User) -> tuple[int, str]:
    client = Client()
    client.force_login(operator)
    with path.open("rb") as f:
        data: dict = {"file": f, "action": "import"}
        if sig is not None:
            data["signature"] = sig.open("rb")
        response = client.post("/extensions/upload/", data)
        if sig is not None:
            data["signature"].close()
    if response.status_code == 302:
        page = client.get(response["Location"]).content.decode()
        return 0, html.unescape(re.sub(r"<[^>]+>", "", page))
    (reason,) = re.findall(r'<p class="reason">(.*?)</p>', response.content.decode(), re.S)
    return response.status_code, html.unescape(re.sub(r"<[^>]+>", "", reason))


SignedDoor = Callable[[Path, "Path | None", User], tuple[int, str]]
DOORS: dict[str, SignedDoor] = {"cli": cli, "api": api, "form": form}


def _unsigned(path: Path, keys: Keys) -> Path | None:
    return None


def _unknown_key(path: Path, keys: Keys) -> Path | None:
    return keys.sign(path, key="mallory")


def _wrong_signature(path: Path, keys: Keys) -> Path | None:
    """alice's signature of another zip, given for this one."""
    other = build_package(path.parent, "Other", filename="Other.zip")
    return keys.sign(other, to=path.with_name(path.name + ".sig"))


BAD = {"unsigned": _unsigned, "unknown key": _unknown_key, "wrong signature": _wrong_signature}


def expected_reason(case: str, keys: Keys) -> str:
    return {
        "unsigned": UNSIGNED,
        "unknown key": f"signed by a key that is not in the allowed signers ({keys.fingerprint('mallory')})",
        "wrong signature": "the signature does not match the zip (signed by alice@example.com, "
        f"{keys.fingerprint('alice')})",
    }[case]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("case", list(BAD))
def test_it_refuses_under_require_at_the_signature_step_with_nothing_written(
    door: str, case: str, trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path,
    private_tempdir: Path, operator: User,
) -> None:
    path = build_package(pkgdir, "Pkg")
    sig = BAD[case](path, keys)
    before = NothingWritten(node_storage.root, private_tempdir)

    code, said = DOORS[door](path, sig, operator)

    assert code == REFUSED[door], said
    assert said == f"signature: {expected_reason(case, keys)}"
    before.check()


@pytest.mark.parametrize("door", list(DOORS))
def test_it_imports_a_signed_package_under_require_and_shows_its_signer(
    door: str, trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path, operator: User,
) -> None:
    path = build_package(pkgdir, "Pkg")
    sig = keys.sign(path)

    code, said = DOORS[door](path, sig, operator)

    assert code == 0, said
    fingerprint = keys.fingerprint("alice")
    package = ExtensionPackage.objects.get(name="Pkg")
    assert (package.signer, package.signer_key) == ("alice@example.com", fingerprint)
    assert package.signature == sig.read_text()
    signer = {"principal": "alice@example.com", "key": fingerprint}
    if door == "cli":
        assert f"signed by alice@example.com {fingerprint}" in said
    if door == "api":
        assert json.loads(said)["signer"] == signer
    if door == "form":
        assert f"alice@example.com {fingerprint}" in " ".join(said.split())
    assert token_client(operator).get("/api/extensions/Pkg/").json()["signer"] == signer
    _, out, _ = run_command("list_extensions", "--json")
    assert json.loads(out)[0]["signer"] == signer


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("case", list(BAD))
def test_it_imports_with_a_warning_naming_the_problem_under_warn(
    door: str, case: str, trusted: Path, keys: Keys, settings, node_storage: NodeStorage,  # type: ignore[no-untyped-def]
    pkgdir: Path, operator: User,
) -> None:
    settings.EXTADMIN_SIGNATURES = "warn"
    path = build_package(pkgdir, "Pkg")
    sig = BAD[case](path, keys)

    code, said = DOORS[door](path, sig, operator)

    assert code == 0, said
    warning = f"Pkg: {expected_reason(case, keys)}; it was imported because EXTADMIN_SIGNATURES is warn"
    assert warning in " ".join(said.split())
    assert warning in Operation.objects.get(package_name="Pkg").warnings
    assert ExtensionPackage.objects.get(name="Pkg").signer == ""


@pytest.mark.parametrize("door", list(DOORS))
def test_it_ignores_signatures_when_off(
    door: str, keys: Keys, settings, node_storage: NodeStorage, pkgdir: Path, operator: User  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_SIGNATURES = "off"
    path = build_package(pkgdir, "Pkg")
    garbage = path.with_name("Pkg.zip.sig")
    garbage.write_text("not a signature")

    code, said = DOORS[door](path, garbage, operator)

    assert code == 0, said
    package = ExtensionPackage.objects.get(name="Pkg")
    assert (package.signature, package.signer) == ("", "")
    assert Operation.objects.get(package_name="Pkg").warnings == ""


def test_it_finds_the_signature_beside_the_zip_and_refuses_a_missing_one_named(
    trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path
) -> None:
    path = build_package(pkgdir, "Pkg", filename="Pkg.zip")
    keys.sign(path)  # Pkg.zip.sig, beside it

    code, out, _ = run_command("import_extension", str(path), "--validate-only")
    assert code == 0 and "valid Pkg 1.0.0 sha256:" in out and "signed by alice@example.com" in out

    code, _, err = run_command("import_extension", str(path), "--signature", str(pkgdir / "nope.sig"))
    assert code == 1 and err.strip() == f"error: signature: {pkgdir / 'nope.sig'} is not a file"
    assert not ExtensionPackage.objects.exists()


def test_it_matches_uploaded_signatures_by_name_or_else_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert signatures_matched(names=["X.zip", "Y.zip"], signatures=[("Y.zip.sig", b), ("X.zip.sig", a)]) == [a, b]
    assert signatures_matched(names=["X.zip", "Y.zip"], signatures=[("Y.zip.sig", b)]) == [None, b]
    assert signatures_matched(names=["X.zip", "Y.zip"], signatures=[("one", a), ("two", b)]) == [a, b]
    assert signatures_matched(names=["X.zip", "Y.zip"], signatures=[("one", a)]) == [a, None]
    with pytest.raises(Refusal) as refused:
        signatures_matched(names=["X.zip"], signatures=[("one", a), ("two", b)])
    assert refused.value.as_dict()["step"] == "signature"


def test_it_imports_several_files_each_with_its_named_signature_through_the_api(
    trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path, operator: User
) -> None:
    x, y = build_package(pkgdir, "X", filename="X.zip"), build_package(pkgdir, "Y", filename="Y.zip")
    sx, sy = keys.sign(x), keys.sign(y)
    handles = [x.open("rb"), y.open("rb"), sy.open("rb"), sx.open("rb")]
    try:
        response = token_client(operator).post(
            "/api/extensions/", {"file": handles[:2], "signature": handles[2:]}, format="multipart"
        )
    finally:
        for h in handles:
            h.close()

    assert response.status_code == 201, response.content
    assert set(ExtensionPackage.objects.values_list("name", "signer")) == {
        ("X", "alice@example.com"), ("Y", "alice@example.com")
    }


def signed_bundle(pkgdir: Path, keys: Keys, *, unsigned: tuple[str, ...] = (), name: str = "Both") -> Path:
    """A bundle of A.zip and B.zip, each with its own ``X.zip.sig`` beside it inside (but ``unsigned``)."""
    entries = []
    for member in ("A", "B"):
        path = build_package(pkgdir, member, filename=f"{member}.zip")
        entries += [path] if member in unsigned else [path, keys.sign(path)]
    return build_bundle(pkgdir, name, entries)


@pytest.mark.parametrize("door", list(DOORS))
def test_it_imports_a_bundle_whose_members_are_signed_inside_it_under_require(
    door: str, trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path, operator: User
) -> None:
    bundle = signed_bundle(pkgdir, keys)

    code, said = DOORS[door](bundle, None, operator)

    assert code == 0, said
    for name in ("A", "B"):
        package = ExtensionPackage.objects.get(name=name)
        assert (package.signer, package.signer_key) == ("alice@example.com", keys.fingerprint("alice"))
        assert package.signature == (pkgdir / f"{name}.zip.sig").read_text()  # the member's own


def _member_unsigned(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    return signed_bundle(pkgdir, keys, unsigned=("B",)), f"B.zip: signature: {UNSIGNED}"


def _member_not_matching(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    a, b = build_package(pkgdir, "A", filename="A.zip"), build_package(pkgdir, "B", filename="B.zip")
    other = build_package(pkgdir, "Other", filename="Other.zip")
    bundle = build_bundle(pkgdir, "Both", [a, keys.sign(a), b, keys.sign(other, to=pkgdir / "B.zip.sig")])
    return bundle, f"B.zip: signature: {expected_reason('wrong signature', keys)}"


def _bundle_signed_by_unknown_key(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    bundle = signed_bundle(pkgdir, keys)
    keys.sign(bundle, key="mallory")  # Both.zip.sig beside it: the bundle's own signature is checked too
    return bundle, f"Both.zip: signature: {expected_reason('unknown key', keys)}"


def _only_the_bundle_signed(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    """Strict: the bundle's good signature does not stand for its members (nodes never see the bundle)."""
    bundle = signed_bundle(pkgdir, keys, unsigned=("A", "B"))
    keys.sign(bundle)
    return bundle, f"A.zip: signature: {UNSIGNED}"


def _stray_signature(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    a = build_package(pkgdir, "A", filename="A.zip")
    c = build_package(pkgdir, "C", filename="C.zip")
    bundle = build_bundle(pkgdir, "Both", [a, keys.sign(a), keys.sign(c)])
    return bundle, "validate: entry 'C.zip.sig' is a signature with no 'C.zip' beside it in the bundle"


def _second_signature(pkgdir: Path, keys: Keys) -> tuple[Path, str]:
    a = build_package(pkgdir, "A", filename="A.zip")
    sig = keys.sign(a)
    second = pkgdir / "A.zip.SIG"
    second.write_bytes(sig.read_bytes())
    bundle = build_bundle(pkgdir, "Both", [a, sig, second])
    return bundle, "validate: entry 'A.zip.SIG' is a second signature of 'A.zip'"


BAD_BUNDLES = {
    "a member unsigned": _member_unsigned,
    "a member's signature not matching": _member_not_matching,
    "the bundle's own signature by an unknown key": _bundle_signed_by_unknown_key,
    "only the bundle signed": _only_the_bundle_signed,
    "a signature without its zip": _stray_signature,
    "two signatures of one zip": _second_signature,
}


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_it_refuses_a_bundle_under_require_naming_the_member_with_nothing_written(
    door: str, case: str, trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path,
    private_tempdir: Path, operator: User,
) -> None:
    bundle, expected = BAD_BUNDLES[case](pkgdir, keys)
    before = NothingWritten(node_storage.root, private_tempdir)

    own = bundle.with_name("Both.zip.sig")
    code, said = DOORS[door](bundle, own if own.exists() else None, operator)

    assert code == REFUSED[door], said
    assert said == expected
    before.check()


def test_it_names_the_bundle_and_its_member_among_several_files(
    trusted: Path, keys: Keys, node_storage: NodeStorage, pkgdir: Path, operator: User
) -> None:
    bundle = signed_bundle(pkgdir, keys, unsigned=("B",))
    lone = build_package(pkgdir, "Lone", filename="Lone.zip")
    handles = [bundle.open("rb"), lone.open("rb"), keys.sign(lone).open("rb")]
    try:
        response = token_client(operator).post(
            "/api/extensions/", {"file": handles[:2], "signature": handles[2:]}, format="multipart"
        )
    finally:
        for h in handles:
            h.close()

    assert response.status_code == 400, response.content
    assert response.json()["error"] == {"file": "Both.zip/B.zip", "step": "signature", "reason": UNSIGNED}
    assert not ExtensionPackage.objects.exists()


@pytest.mark.parametrize("door", list(DOORS))
def test_it_imports_unsigned_members_with_a_warning_naming_them_under_warn(
    door: str, trusted: Path, keys: Keys, settings, node_storage: NodeStorage, pkgdir: Path,  # type: ignore[no-untyped-def]
    operator: User,
) -> None:
    settings.EXTADMIN_SIGNATURES = "warn"
    bundle = signed_bundle(pkgdir, keys, unsigned=("B",))

    code, said = DOORS[door](bundle, None, operator)

    assert code == 0, said
    warning = f"B: {UNSIGNED}; it was imported because EXTADMIN_SIGNATURES is warn"
    assert warning in " ".join(said.split())
    assert Operation.objects.get(package_name="A").warnings == ""
    assert dict(ExtensionPackage.objects.values_list("name", "signer")) == {"A": "alice@example.com", "B": ""}


def test_it_ignores_the_signatures_inside_a_bundle_when_off(
    keys: Keys, settings, node_storage: NodeStorage, pkgdir: Path  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_SIGNATURES = "off"
    a = build_package(pkgdir, "A", filename="A.zip")
    garbage = pkgdir / "A.zip.sig"
    garbage.write_text("not a signature")
    code, _, err = run_command("import_extension", str(build_bundle(pkgdir, "Both", [a, garbage])))

    assert code == 0, err
    assert list(ExtensionPackage.objects.values_list("name", "signature", "signer")) == [("A", "", "")]


@pytest.mark.parametrize(
    ("env", "said"),
    [({"EXTADMIN_SIGNATURES": "maybe"}, "EXTADMIN_SIGNATURES must be 'off', 'warn' or 'require', not 'maybe'"),
     ({"EXTADMIN_SIGNATURES": "require"}, "EXTADMIN_SIGNATURES=require needs EXTADMIN_ALLOWED_SIGNERS")],
)
def test_it_refuses_to_start_on_a_setting_it_does_not_have(env: dict[str, str], said: str) -> None:
    environment = child_env(**env)
    environment.pop("EXTADMIN_ALLOWED_SIGNERS", None)
    done = manage("check", env=environment)
    assert done.returncode != 0
    assert said in done.stderr


@pytest.mark.parametrize(("allowed", "mode"), [("", "off"), ("/etc/extadmin/allowed_signers", "warn")])
def test_it_defaults_to_warn_once_keys_are_trusted_and_to_off_otherwise(allowed: str, mode: str) -> None:
    environment = child_env(EXTADMIN_ALLOWED_SIGNERS=allowed)
    environment.pop("EXTADMIN_SIGNATURES", None)
    code = "from django.conf import settings; print(settings.EXTADMIN_SIGNATURES)"
    done = manage("shell", "-c", code, env=environment)
    assert done.stdout.strip().splitlines()[-1] == mode, done.stderr
