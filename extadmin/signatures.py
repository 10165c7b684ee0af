"""Detached OpenSSH signatures of package zips: who signed, and whether the zip is what they signed.

Operators sign with the tool they already have (``ssh-keygen -Y sign -n extadmin -f KEY X.zip``
writes ``X.zip.sig``); the console and every node check with ``ssh-keygen -Y verify`` against an
OpenSSH ``allowed_signers`` file (``EXTADMIN_ALLOWED_SIGNERS``). The zip is streamed to
ssh-keygen's standard input straight from its file, never read into this process's memory.

Pure: no Django. ``signature_check`` is the one rule of what ``EXTADMIN_SIGNATURES`` means
(``off`` ignores signatures, ``warn`` says what is wrong, ``require`` refuses), for the import on
the console and the install on a node alike.
"""
from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from extadmin.packaging import Refusal

NAMESPACE = "extadmin"
MODES = ("off", "warn", "require")
# An OpenSSH signature is under 2 KB even with an RSA-8192 key; anything much larger is not one,
# and is never read further than this.
MAX_SIGNATURE_BYTES = 16 * 1024
_ARMOR_BEGIN, _ARMOR_END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
_SSH_KEYGEN_SECONDS = 600  # a 4 GiB zip hashed by ssh-keygen on a slow disk


@dataclass(frozen=True)
class Signer:
    """Who signed: the principal ``allowed_signers`` names for the key, and the key's fingerprint."""

    principal: str
    fingerprint: str  # SHA256:… as ``ssh-keygen -l`` shows it

    def __str__(self) -> str:
        return f"{self.principal} ({self.fingerprint})"


@dataclass(frozen=True)
class Checked:
    """What ``signature_check`` found: the signer when the signature holds, else a warning (warn)."""

    signer: Signer | None
    warning: str = ""


def read_signature(path: Path) -> bytes:
    """A signature file's bytes, never more than one byte past the limit (``verify_signature`` refuses those)."""
    with path.open("rb") as f:
        return f.read(MAX_SIGNATURE_BYTES + 1)


def signature_check(
    *, mode: str, zip_path: Path, signature: bytes | None, allowed_signers: Path | None
) -> Checked:
    """``EXTADMIN_SIGNATURES``: off → nothing checked; warn → a problem becomes a warning; require → a refusal."""
    if mode == "off":
        return Checked(signer=None)
    try:
        return Checked(signer=verify_signature(zip_path=zip_path, signature=signature, allowed_signers=allowed_signers))
    except Refusal as refusal:
        if mode == "require":
            raise
        return Checked(signer=None, warning=refusal.reason)


def verify_signature(*, zip_path: Path, signature: bytes | None, allowed_signers: Path | None) -> Signer:
    """The signer of ``zip_path``, or ``Refusal("signature", …)`` saying plainly what is wrong.

    Unsigned, unreadable, made for another namespace, signed by a key ``allowed_signers`` does not
    list, or not matching the zip's bytes.
    """
    if not signature:
        raise Refusal("signature", "the package is not signed (no detached signature came with it)")
    key = _signing_key(signature)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(key).digest()).decode().rstrip("=")
    if allowed_signers is None:
        raise Refusal("signature", "no key is trusted: EXTADMIN_ALLOWED_SIGNERS names no allowed_signers file")
    if not allowed_signers.is_file():
        raise Refusal("signature", f"the allowed signers file {allowed_signers} cannot be read")
    with tempfile.TemporaryDirectory(prefix="extadmin-sig-") as tmp:
        sig_path = Path(tmp) / "package.zip.sig"
        sig_path.write_bytes(signature)
        principals = _ssh_keygen(["-Y", "find-principals", "-s", str(sig_path), "-f", str(allowed_signers)])
        if principals.returncode != 0 or not principals.stdout.strip():
            raise Refusal(
                "signature", f"signed by a key that is not in the allowed signers ({fingerprint})"
            )
        principal = principals.stdout.splitlines()[0].strip()
        with zip_path.open("rb") as zip_file:
            verified = _ssh_keygen(
                ["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", NAMESPACE, "-s", str(sig_path)],
                stdin=zip_file,
            )
    if verified.returncode != 0:
        raise Refusal(
            "signature", f"the signature does not match the zip (signed by {principal}, {fingerprint})"
        )
    return Signer(principal=principal, fingerprint=fingerprint)


def _ssh_keygen(args: list[str], stdin: object = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["ssh-keygen", *args], stdin=stdin, capture_output=True, text=True,  # type: ignore[call-overload]
            timeout=_SSH_KEYGEN_SECONDS, check=False,
        )
    except FileNotFoundError:
        raise Refusal(
            "signature", "ssh-keygen is not installed (Debian: openssh-client): no signature can be checked"
        ) from None
    except subprocess.TimeoutExpired:
        raise Refusal("signature", f"ssh-keygen did not finish within {_SSH_KEYGEN_SECONDS} s") from None


def _signing_key(signature: bytes) -> bytes:
    """The public key blob inside an armored SSHSIG, after checking it is one, for ``extadmin``.

    Read here (PROTOCOL.sshsig) so that a refusal says what is wrong in words ssh-keygen does not
    give, and names the key's fingerprint even when the key is unknown.
    """
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise Refusal(
            "signature", f"the signature is larger than {MAX_SIGNATURE_BYTES} bytes: not an OpenSSH signature"
        )
    unreadable = Refusal(
        "signature", f"the signature is not an OpenSSH signature ({_ARMOR_BEGIN} … made by ssh-keygen -Y sign)"
    )
    try:
        text = signature.decode("ascii").strip()
        if not (text.startswith(_ARMOR_BEGIN) and text.endswith(_ARMOR_END)):
            raise unreadable
        blob = base64.b64decode("".join(text[len(_ARMOR_BEGIN):-len(_ARMOR_END)].split()), validate=True)
        if blob[:6] != b"SSHSIG":
            raise unreadable
        fields, offset = [], 10  # magic, then a uint32 version
        for _ in range(2):  # the public key, then the namespace
            (length,) = struct.unpack_from(">I", blob, offset)
            fields.append(blob[offset + 4:offset + 4 + length])
            offset += 4 + length
    except (UnicodeDecodeError, ValueError, struct.error):
        raise unreadable from None
    key, namespace = fields
    if namespace != NAMESPACE.encode():
        shown = namespace.decode("ascii", "replace")[:40]
        raise Refusal(
            "signature",
            f"the signature was made for namespace '{shown}', not '{NAMESPACE}' (ssh-keygen -Y sign -n {NAMESPACE})",
        )
    return key
