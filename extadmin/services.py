"""The doors' entry points: one file (a package or a bundle of packages) in, a document out.

Views, the API and the commands call these, so a refusal reads the same through each.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from extadmin.documents import import_results_document, validation_document
from extadmin.importing import (
    ImportItem,
    SignedFile,
    file_sha256,
    import_plans,
    limits_from_settings,
    package_import,
    refusing_as,
    signatures_check,
)
from extadmin.operations import Actor
from extadmin.packaging import Refusal, extract_zip, inspect_zip
from extadmin.packaging.errors import shown
from rollouts.services import import_policy


@contextmanager
def unpacked_items(
    paths: list[tuple[Path, str | None]], names: list[str] | None = None,
    signatures: list[Path | None] | None = None,
) -> Iterator[list[ImportItem]]:
    """The packages in these files: a plain package is itself; a bundle (zip of zips) yields its members.

    ``names`` are the files' names as the operator knows them (an upload's client file name: its
    temp path is random); by default each path's own name. A refusal names the file or member
    that failed whenever there are several: ``Member.zip`` in a lone bundle, ``Bundle.zip/Member.zip``
    or ``File.zip`` among several files.

    Bundle members are written to a temporary folder that is removed whatever happens. A bundle is
    unpacked in one pass (with every check of a package's unzip): one member at a time would
    re-read the whole directory for each, n² work that a bundle of many small members turns
    into a denial of service.

    ``signatures``: the detached signature file that came with each file (same order), or None.
    A bundle's members are signed one by one, ``A.zip.sig`` beside ``A.zip`` inside the bundle
    (``ZipPlan.bundle_signatures``): that is the signature stored with A and checked by every node.
    A signature of the bundle file itself is checked too, when one came with it (``ImportItem.bundle``).
    """
    limits = limits_from_settings()
    several = len(paths) > 1
    with tempfile.TemporaryDirectory(prefix="extadmin-bundle-") as tmp:
        items: list[ImportItem] = []
        for i, (path, sha256) in enumerate(paths):
            name = shown(names[i] if names else path.name)  # a client's name may carry control characters
            signature = signatures[i] if signatures else None
            signed = SignedFile(path=path, signature=signature, label=name if several else None)
            with refusing_as(name if several else None):
                plan = inspect_zip(path, limits=limits)
                if not plan.is_bundle():
                    items.append(ImportItem(path=path, sha256=sha256, label=name if several else None, signed=signed))
                    continue
                member_signatures = plan.bundle_signatures()
                folder = Path(tmp) / f"{i:05d}"
                folder.mkdir()
                extract_zip(path, folder, plan=plan, limits=limits)
            bundle = SignedFile(path=path, signature=signature, label=name)
            items += [
                ImportItem(
                    path=folder / m.name, label=f"{name}/{m.name}" if several else m.name, bundle=bundle,
                    signed=SignedFile(path=folder / m.name, signature=_inside(folder, member_signatures.get(m.name))),
                )
                for m in plan.members
                if not m.is_dir and m.name.lower().endswith(".zip")
            ]
        if not items:
            raise Refusal("validate", "no package to import")
        yield items


def _inside(folder: Path, name: str | None) -> Path | None:
    return folder / name if name is not None else None


def package_import_files(
    *, files: list[tuple[Path, str | None]], actor: Actor, names: list[str] | None = None,
    signatures: list[Path | None] | None = None, rollout: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import one or more files (each a package or a bundle) as one all-or-nothing operation.

    ``names``: the files' names as the operator gave them, for refusals (see ``unpacked_items``);
    ``signatures``: each file's signature file or None (``signatures_matched`` pairs uploads);
    ``rollout``: the import's own rollout fields (``rollouts.policy``), over the cluster's default.
    """
    import_policy(rollout)  # a bad field is refused before a byte of any file is read
    with unpacked_items(files, names, signatures) as items:
        return import_results_document(package_import(items=items, actor=actor, rollout=rollout))


def package_validate_files(
    *, files: list[tuple[Path, str | None]], names: list[str] | None = None,
    signatures: list[Path | None] | None = None, rollout: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every check of the import, no side effect at all."""
    import_policy(rollout)
    with unpacked_items(files, names, signatures) as items:
        plans = import_plans(items=items, validate_only=True)
        signatures_check(plans, validate_only=True)
        return validation_document([p for _, p in plans], [i.sha256 or file_sha256(i.path) for i, _ in plans])


def package_import_file(
    *, path: Path, actor: Actor, sha256: str | None = None, signature: Path | None = None,
    rollout: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return package_import_files(files=[(path, sha256)], actor=actor, signatures=[signature], rollout=rollout)


def package_validate_file(
    *, path: Path, signature: Path | None = None, rollout: dict[str, Any] | None = None
) -> dict[str, Any]:
    return package_validate_files(files=[(path, None)], signatures=[signature], rollout=rollout)


def signatures_matched(*, names: list[str], signatures: list[tuple[str, Path]]) -> list[Path | None]:
    """Which uploaded signature goes with which uploaded file (``names``: the files' client names).

    By name when every signature is named ``<a file's name>.sig`` (``X.zip.sig`` for ``X.zip``),
    each for a different file; otherwise in order, the i-th signature for the i-th file. A file
    with no signature is unsigned; more signatures than files are refused.
    """
    by_name = {name: path for name, path in signatures}
    if signatures and len(by_name) == len(signatures) and all(
        n.endswith(".sig") and n[:-4] in names for n in by_name
    ):
        return [by_name.get(f"{name}.sig") for name in names]
    if len(signatures) > len(names):
        raise Refusal(
            "signature", f"{len(signatures)} signatures came with {len(names)} files: send one 'signature' "
            "per 'file', in the same order or named after it (X.zip.sig for X.zip)",
        )
    return [path for _, path in signatures] + [None] * (len(names) - len(signatures))
