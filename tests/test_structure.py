"""The code's shape, checked: the rules in house-style.md that a reader should never have to re-check.

* no module-level import cycle anywhere in ``extadmin`` and ``nodes`` (a cycle is broken by moving
  code, so no import hides inside a function either);
* no function longer than 50 lines;
* one writer of sync state: only ``nodes/sync_states.py`` writes ``SyncState`` rows.
"""
from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("extadmin", "nodes", "webhooks", "rollouts")
MAX_FUNCTION_LINES = 50
SYNC_STATE_WRITER = "nodes/sync_states.py"
WRITES = {"update", "update_or_create", "create", "bulk_create", "delete", "get_or_create", "bulk_update"}


def _sources() -> Iterator[tuple[str, Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module.removesuffix(".__init__"), path, ast.parse(path.read_text(), filename=str(path))


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not those only for the type checker)."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try) and not _is_type_checking(node):
            pending += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                pending += handler.body


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    base = node.module or ""
    found = {base} if base in modules else set()
    found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    sources = list(_sources())
    modules = {m for m, _, _ in sources}
    graph: dict[str, set[str]] = {}
    for module, _, tree in sources:
        deps: set[str] = set()
        for node in _top_level_imports(tree):
            deps |= _targets(node, modules)
        # Importing a submodule first imports its package.
        parts = module.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules}
        graph[module] = deps - {module}
    return graph


def test_it_has_no_import_cycle() -> None:
    graph = import_graph()
    # A package's __init__ importing its own submodules is how a package works, not a cycle.
    acyclic = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    try:
        list(graphlib.TopologicalSorter(acyclic).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_it_imports_nothing_inside_a_function() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{sub.lineno} in {fn.name}()"
        for _, path, tree in _sources()
        for fn in _functions(tree)
        for sub in ast.walk(fn)
        if isinstance(sub, ast.Import | ast.ImportFrom)
    ]
    assert found == []


def test_it_keeps_every_function_short() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}() has {fn.end_lineno - fn.lineno + 1} lines"
        for _, path, tree in _sources()
        for fn in _functions(tree)
        if fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert found == []


def _writes_sync_state(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
            continue
        chain = ast.unparse(node.func.value)
        if chain.startswith("SyncState.objects"):
            yield node.lineno


def test_it_has_one_writer_of_sync_state() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for _, path, tree in _sources()
        if path.relative_to(ROOT).as_posix() != SYNC_STATE_WRITER
        for line in _writes_sync_state(tree)
    ]
    assert found == []


def test_the_checks_see_what_they_check() -> None:
    # A check that read no file would pass for ever.
    graph = import_graph()
    assert "extadmin.importing" in graph and "nodes.reconcile" in graph
    assert "extadmin.models" in graph["extadmin.importing"]
