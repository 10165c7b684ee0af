"""The signature figure (``bench/run.py --only signature``): ``verify_signature_ms_200mb``.

The time a node takes to check a package's detached OpenSSH signature before it installs it
(``extadmin.signatures.signature_check`` under ``EXTADMIN_SIGNATURES=require``, as
``nodes.reconcile`` calls it: ``ssh-keygen -Y find-principals`` then ``-Y verify`` with the zip
streamed from its file), against the floor: one raw ``ssh-keygen -Y verify`` of the same file with
the same key, run alternately in the same run (A B B A …), medians of each. A real ed25519 key made
with ``ssh-keygen`` for the run; the package is the bench's main one (200 MB; ``--quick``: 20 MB).

    python bench/signature.py probe ZIP SIG ALLOWED_SIGNERS   # one check as the node makes it: ms
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import MB, ROOT, median

RATIO_TARGET = 1.2  # two ssh-keygen runs where the floor has one; the second hashes the zip, as the raw one
PRINCIPAL = "bench@example.com"


def _keys(folder: Path) -> tuple[Path, Path]:
    key = folder / "bench_signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    allowed = folder / "allowed_signers"
    allowed.write_text(f"{PRINCIPAL} {kind} {blob}\n")
    return key, allowed


def _sign(key: Path, zip_path: Path) -> Path:
    sig = zip_path.with_name(zip_path.name + ".sig")
    sig.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "extadmin", "-f", str(key), str(zip_path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return sig


def _ours(zip_path: Path, sig: Path, allowed: Path) -> float:
    done = subprocess.run([sys.executable, __file__, "probe", str(zip_path), str(sig), str(allowed)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the signature probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1]) / 1000


def _raw(zip_path: Path, sig: Path, allowed: Path) -> float:
    t0 = time.perf_counter()
    with zip_path.open("rb") as stdin:
        done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", PRINCIPAL, "-n", "extadmin",
                               "-s", str(sig)], stdin=stdin, capture_output=True, timeout=600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ssh-keygen -Y verify failed: {done.stderr[-2000:]!r}")
    return seconds


def fig_signature(b: Any, *, zip_path: Path, alternate: Any) -> None:
    """``zip_path``: the bench's main package; ``alternate``: run.py's A B B A runner."""
    folder = b.work / "signature"
    folder.mkdir(parents=True, exist_ok=True)
    key, allowed = _keys(folder)
    sig = _sign(key, zip_path)
    size_mb, zip_mb = b.sizes.main // MB, zip_path.stat().st_size / MB
    _raw(zip_path, sig, allowed)  # warm: the zip in the page cache for both sides alike
    ours, raw = alternate(b.sizes.repeats, lambda: _ours(zip_path, sig, allowed), lambda: _raw(zip_path, sig, allowed))
    ms, raw_ms = median(ours) * 1000, median(raw) * 1000
    ratio = ms / raw_ms
    # --quick: at 20 MB the check's fixed cost (one more ssh-keygen run) is a large share: a smoke check only.
    target = f"≤ {RATIO_TARGET:g} × raw ssh-keygen -Y verify" if not b.quick else "(quick: 20 MB, informational)"
    b.add(f"verify_signature_ms_{size_mb}mb", round(ms, 1), target, None if b.quick else ratio <= RATIO_TARGET,
          f"raw ssh-keygen -Y verify of the same {zip_mb:.0f} MB zip {raw_ms:.0f} ms: {ratio:.2f}× "
          f"(medians of {len(ours)} each, alternated)")


def _probe(zip_path: str, sig: str, allowed: str) -> None:
    sys.path.insert(0, str(ROOT))
    from extadmin.signatures import read_signature, signature_check  # a probe process of its own: the path first

    signature = read_signature(Path(sig))
    t0 = time.perf_counter()
    checked = signature_check(mode="require", zip_path=Path(zip_path), signature=signature,
                              allowed_signers=Path(allowed))
    ms = (time.perf_counter() - t0) * 1000
    assert checked.signer is not None and checked.signer.principal == PRINCIPAL, checked
    print(f"{ms:.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"] and len(sys.argv) == 5:
        _probe(*sys.argv[2:])
    else:
        sys.exit(__doc__)
