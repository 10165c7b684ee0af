from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from extadmin.management.base import OperatorCommand
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.services import package_import_file, package_validate_file


class Command(OperatorCommand):
    help = "Import an extension package (or a bundle of them) on this node, in the ordered steps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the package's zip file")
        parser.add_argument("--validate-only", action="store_true", help="run every check, change nothing")
        parser.add_argument(
            "--signature", type=Path, help="its detached OpenSSH signature (default: PATH.sig beside it, when present)"
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> Any:
        path: Path = options["path"]
        if not path.is_file():
            raise Refusal("validate", f"{path} is not a file")
        signature: Path | None = options["signature"]
        if signature is not None and not signature.is_file():
            raise Refusal("signature", f"{signature} is not a file")
        beside = path.with_name(path.name + ".sig")
        if signature is None and beside.is_file():
            signature = beside
        if options["validate_only"]:
            return package_validate_file(path=path, signature=signature)
        return package_import_file(path=path, actor=Actor(via="cli"), signature=signature)

    def render(self, result: Any) -> str:
        packages = result.get("packages", [result])
        verb = "valid" if result.get("validated") else "imported"
        lines = [f"{verb} {p['name']} {p['version']} sha256:{p['checksum']}" + _signed_by(p) for p in packages]
        lines += [f"warning: {w}" for w in result.get("warnings", [])]
        return "\n".join(lines)


def _signed_by(package: dict[str, Any]) -> str:
    signer = package.get("signer")
    return f" signed by {signer['principal']} {signer['key']}" if signer else ""
