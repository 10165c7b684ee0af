"""The packaging layer's shape: pure (no Django), and no module importing another inside a function.

An import inside a function hides a cycle instead of breaking it; the cycle is broken by moving
code lower down (``names`` below ``dependencies`` below ``metadata``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import extadmin.packaging

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

MODULES = sorted(Path(extadmin.packaging.__file__).parent.glob("*.py"))


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_it_imports_only_at_the_top_of_each_module(module: Path) -> None:
    tree = ast.parse(module.read_text())
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    inner = [f"{module.name}:{node.lineno}" for node in _imports(tree) if id(node) not in top]
    assert inner == []


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_it_never_imports_django(module: Path) -> None:
    names: list[str] = []
    for node in _imports(ast.parse(module.read_text())):
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    assert [n for n in names if n.split(".")[0] in {"django", "rest_framework"}] == []
