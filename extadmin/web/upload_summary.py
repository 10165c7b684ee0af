"""Several files uploaded at once: what became of each, for the upload page's summary.

An upload of several files is imported all or nothing (``services.package_import_files``): when one
file is refused, the summary names it with the step and the reason, and says of every other file
that it was held back, so the operator can take the refused one out of the selection and send the
rest again. When they all went in, each file lists its packages (imported, upgraded, re-imported),
with each package's warnings.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.urls import reverse

from extadmin.packaging import Refusal
from extadmin.packaging.errors import shown

IMPORTED, REFUSED, HELD_BACK = "imported", "refused", "not imported"


@dataclass
class FilePackage:
    name: str
    version: str
    kind: str
    url: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class FileOutcome:
    file: str
    outcome: str  # IMPORTED, REFUSED or HELD_BACK
    step: str = ""
    reason: str = ""
    member: str = ""  # the bundle member or the entity the refusal names, beyond the file
    packages: list[FilePackage] = field(default_factory=list)


def _came_from(label: str | None, name: str) -> bool:
    return label is not None and (label == name or label.startswith(f"{name}/"))


def upload_imported_summary(*, names: list[str], document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file, and the packages it brought in (a bundle brings several)."""
    packages = document.get("packages", [document])
    outcomes = []
    for raw in names:
        name = shown(raw)
        mine = [
            FilePackage(name=p["name"], version=p["version"], kind=p["kind"],
                        url=reverse("package", args=[p["name"]]), warnings=p.get("warnings", []))
            for p in packages if _came_from(p.get("file"), name)
        ]
        outcomes.append(FileOutcome(file=name, outcome=IMPORTED, packages=mine))
    return [asdict(o) for o in outcomes]


def upload_refused_summary(*, names: list[str], refusal: Refusal) -> list[dict[str, Any]]:
    """The refused file with its step and reason; every other file held back (all or nothing)."""
    outcomes = []
    for raw in names:
        name = shown(raw)
        if _came_from(refusal.file, name):
            member = (refusal.file or "")[len(name) + 1:]
            outcomes.append(FileOutcome(file=name, outcome=REFUSED, step=refusal.step, reason=refusal.reason,
                                        member=member))
        else:
            outcomes.append(FileOutcome(file=name, outcome=HELD_BACK))
    return [asdict(o) for o in outcomes]
