"""Plain-dict views of packages, shared by the CLI's --json, the API and the cluster document."""
from __future__ import annotations

from typing import Any

from extadmin.importing import ImportPlan, ImportResult
from extadmin.models import ExtensionPackage


def package_summary(p: ExtensionPackage) -> dict[str, Any]:
    return {
        "name": p.name,
        "version": p.version,
        "checksum": p.sha256,
        "size": p.size,
        "vendor": p.vendor,
        "state": p.state,
        "ha_compatible": p.ha_compatible,
        "depends_on": p.depends_on,
        "imported_at": p.imported_at.isoformat(),
        "imported_on_node": p.imported_on_node,
        "signer": package_signer(p),
    }


def package_signer(p: ExtensionPackage) -> dict[str, str] | None:
    """Who the import proved signed the zip (``EXTADMIN_SIGNATURES``), or None when nobody did."""
    return {"principal": p.signer, "key": p.signer_key} if p.signer else None


def import_results_document(results: list[ImportResult]) -> dict[str, Any]:
    """One package: its summary at the top level (name, version, checksum); a bundle: ``packages``.

    Each package carries its own ``warnings`` and, when it was one of several, the ``file`` it came
    in (``File.zip``, ``Bundle.zip/Member.zip``, or a lone bundle's ``Member.zip``)."""
    packages = [
        {**package_summary(r.package), "operation": r.operation.pk if r.operation else None, "kind": r.plan.kind,
         "warnings": list(r.plan.warnings), **({"file": r.label} if r.label else {})}
        for r in results
        if r.package is not None
    ]
    warnings = [w for r in results for w in r.plan.warnings]
    doc: dict[str, Any] = dict(packages[0]) if len(packages) == 1 else {"packages": packages}
    doc["warnings"] = warnings
    return doc


def validation_document(plans: list[ImportPlan], checksums: list[str]) -> dict[str, Any]:
    packages = [
        {"name": p.metadata.name, "version": p.metadata.version, "checksum": c, "kind": p.kind,
         "signer": {"principal": p.signer.principal, "key": p.signer.fingerprint} if p.signer else None}
        for p, c in zip(plans, checksums, strict=True)
    ]
    doc: dict[str, Any] = dict(packages[0]) if len(packages) == 1 else {"packages": packages}
    doc["validated"] = True
    doc["warnings"] = [w for p in plans for w in p.warnings]
    return doc
