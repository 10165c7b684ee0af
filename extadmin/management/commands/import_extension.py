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
        parser.add_argument("--canary", help="rollout: the node(s) that install first, comma separated")
        parser.add_argument("--batch", help="rollout: at most this many nodes change at once")
        parser.add_argument("--max-failures", help="rollout: halt when this many nodes failed")
        parser.add_argument("--activation", help="rollout: 'each' (as each installs) or 'together'")
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
        rollout = {k: options[k] for k in ("canary", "batch", "max_failures", "activation")}
        if options["validate_only"]:
            return package_validate_file(path=path, signature=signature, rollout=rollout)
        return package_import_file(path=path, actor=Actor(via="cli"), signature=signature, rollout=rollout)

    def render(self, result: Any) -> str:
        packages = result.get("packages", [result])
        verb = "valid" if result.get("validated") else "imported"
        lines = [f"{verb} {p['name']} {p['version']} sha256:{p['checksum']}" + _signed_by(p) for p in packages]
        lines += [f"warning: {w}" for w in result.get("warnings", [])]
        return "\n".join(lines)


def _signed_by(package: dict[str, Any]) -> str:
    signer = package.get("signer")
    return f" signed by {signer['principal']} {signer['key']}" if signer else ""
