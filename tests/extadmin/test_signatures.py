"""extadmin.signatures against real ssh-keygen keys and real files: who signed, or why not."""
from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from extadmin.packaging import Refusal
from extadmin.signatures import MAX_SIGNATURE_BYTES, Signer, read_signature, signature_check, verify_signature
from tests.signing import Keys, keys

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

__all__ = ["keys"]


@pytest.fixture
def zip_path(tmp_path: Path) -> Path:
    path = tmp_path / "Pkg.zip"
    path.write_bytes(os.urandom(50_000))
    return path


@pytest.fixture
def allowed(keys: Keys) -> Path:
    keys.key("mallory")
    return keys.trust(("alice@example.com", "alice"))


def refusal(zip_path: Path, signature: bytes | None, allowed: Path | None) -> str:
    with pytest.raises(Refusal) as refused:
        verify_signature(zip_path=zip_path, signature=signature, allowed_signers=allowed)
    assert refused.value.step == "signature"
    return refused.value.reason


def test_it_names_the_principal_and_the_key_of_a_good_signature(keys: Keys, zip_path: Path, allowed: Path) -> None:
    signature = keys.sign(zip_path).read_bytes()

    signer = verify_signature(zip_path=zip_path, signature=signature, allowed_signers=allowed)

    assert signer == Signer(principal="alice@example.com", fingerprint=keys.fingerprint("alice"))


def test_it_refuses_an_unsigned_package(zip_path: Path, allowed: Path) -> None:
    assert refusal(zip_path, None, allowed) == "the package is not signed (no detached signature came with it)"
    assert refusal(zip_path, b"", allowed).startswith("the package is not signed")


def test_it_refuses_a_key_not_in_allowed_signers_naming_its_fingerprint(
    keys: Keys, zip_path: Path, allowed: Path
) -> None:
    signature = keys.sign(zip_path, key="mallory").read_bytes()

    reason = refusal(zip_path, signature, allowed)

    assert reason == f"signed by a key that is not in the allowed signers ({keys.fingerprint('mallory')})"


def test_it_refuses_a_signature_that_does_not_match_the_zip(keys: Keys, zip_path: Path, allowed: Path) -> None:
    signature = keys.sign(zip_path).read_bytes()
    data = bytearray(zip_path.read_bytes())
    data[1000] ^= 0x01
    zip_path.write_bytes(bytes(data))

    reason = refusal(zip_path, signature, allowed)

    assert reason == (
        f"the signature does not match the zip (signed by alice@example.com, {keys.fingerprint('alice')})"
    )


@pytest.mark.parametrize(
    "signature",
    [b"not a signature", b"-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n",
     b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n", b"\xff\xfe\x00"],
    ids=["text", "bad base64", "truncated", "binary"],
)
def test_it_refuses_an_unreadable_signature(zip_path: Path, allowed: Path, signature: bytes) -> None:
    assert refusal(zip_path, signature, allowed).startswith("the signature is not an OpenSSH signature")


def test_it_refuses_a_signature_made_for_another_namespace(keys: Keys, zip_path: Path, allowed: Path) -> None:
    signature = keys.sign(zip_path, namespace="file").read_bytes()

    assert refusal(zip_path, signature, allowed) == (
        "the signature was made for namespace 'file', not 'extadmin' (ssh-keygen -Y sign -n extadmin)"
    )


def test_it_reads_no_more_of_a_signature_file_than_the_limit_and_refuses_it(
    tmp_path: Path, zip_path: Path, allowed: Path
) -> None:
    big = tmp_path / "big.sig"
    big.write_bytes(b"A" * (10 * 1024 * 1024))

    signature = read_signature(big)

    assert len(signature) == MAX_SIGNATURE_BYTES + 1
    assert refusal(zip_path, signature, allowed) == (
        f"the signature is larger than {MAX_SIGNATURE_BYTES} bytes: not an OpenSSH signature"
    )


def test_it_refuses_when_no_allowed_signers_file_is_there(keys: Keys, zip_path: Path, tmp_path: Path) -> None:
    signature = keys.sign(zip_path).read_bytes()

    assert refusal(zip_path, signature, None).startswith("no key is trusted: EXTADMIN_ALLOWED_SIGNERS")
    assert refusal(zip_path, signature, tmp_path / "missing") == (
        f"the allowed signers file {tmp_path / 'missing'} cannot be read"
    )


def test_it_streams_a_large_zip_without_reading_it_into_memory(keys: Keys, tmp_path: Path, allowed: Path) -> None:
    big = tmp_path / "Big.zip"
    with big.open("wb") as f:
        for _ in range(200):
            f.write(os.urandom(1024 * 1024))
    signature = keys.sign(big).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    verify_signature(zip_path=big, signature=signature, allowed_signers=allowed)

    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024  # 200 MiB verified; this process grew by far less


def test_it_warns_instead_of_refusing_under_warn_and_checks_nothing_when_off(
    keys: Keys, zip_path: Path, allowed: Path
) -> None:
    warned = signature_check(mode="warn", zip_path=zip_path, signature=None, allowed_signers=allowed)
    assert warned.signer is None and warned.warning.startswith("the package is not signed")

    signature = keys.sign(zip_path).read_bytes()
    good = signature_check(mode="warn", zip_path=zip_path, signature=signature, allowed_signers=allowed)
    assert good.signer is not None and good.warning == ""

    off = signature_check(mode="off", zip_path=zip_path, signature=b"garbage", allowed_signers=None)
    assert off.signer is None and off.warning == ""
    with pytest.raises(Refusal):
        signature_check(mode="require", zip_path=zip_path, signature=None, allowed_signers=allowed)
