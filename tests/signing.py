"""Real OpenSSH keys for the signature tests: generated with ssh-keygen in the test's folder.

``Keys.sign(path)`` writes ``path.sig`` exactly as an operator would (``ssh-keygen -Y sign -n
extadmin``); ``trust`` writes an allowed_signers file naming only the keys the test asked for.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Keys:
    folder: Path

    def key(self, name: str) -> Path:
        path = self.folder / name
        if not path.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                check=True, stdin=subprocess.DEVNULL,
            )
        return path

    def fingerprint(self, name: str) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(self.key(name).with_suffix(".pub"))],
            check=True, capture_output=True, text=True,
        ).stdout
        return out.split()[1]

    def trust(self, *entries: tuple[str, str], file: str = "allowed_signers") -> Path:
        """An allowed_signers file: one line per (principal, key name)."""
        path = self.folder / file
        lines = []
        for principal, name in entries:
            kind, blob = self.key(name).with_suffix(".pub").read_text().split()[:2]
            lines.append(f"{principal} {kind} {blob}\n")
        path.write_text("".join(lines))
        return path

    def sign(self, path: Path, *, key: str = "alice", namespace: str = "extadmin", to: Path | None = None) -> Path:
        """``ssh-keygen -Y sign``: writes ``path.sig`` (moved to ``to`` when given)."""
        sig = path.with_name(path.name + ".sig")
        sig.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(self.key(key)), str(path)],
            check=True, stdin=subprocess.DEVNULL, capture_output=True,
        )
        if to is not None:
            sig.replace(to)
            return to
        return sig


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    folder = tmp_path / "keys"
    folder.mkdir()
    return Keys(folder)


@pytest.fixture
def trusted(keys: Keys, settings) -> Path:  # type: ignore[no-untyped-def]
    """alice@example.com's key trusted (mallory's made, not trusted); EXTADMIN_SIGNATURES=require."""
    keys.key("mallory")
    allowed = keys.trust(("alice@example.com", "alice"))
    settings.EXTADMIN_ALLOWED_SIGNERS = allowed
    settings.EXTADMIN_SIGNATURES = "require"
    return allowed
