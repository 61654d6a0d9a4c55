"""The project's import graph: no cycles (imports under TYPE_CHECKING included), and the app stands alone.

Read from the source with `ast`, so an import inside a function or an `if TYPE_CHECKING:` block counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("site_backup", "blueprints", "devhost", "backup_cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {"function_app": ROOT / "function_app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from package import module` names the module)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.append(top)
                if top == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_finder_sees_a_cycle_when_there_is_one():
    graph = _graph()
    graph["devhost.model"] = {*graph["devhost.model"], "devhost.engine"}  # engine reaches model, so: a loop
    assert any("devhost.engine" in c and "devhost.model" in c for c in _cycles(graph))


def test_imports_under_type_checking_and_inside_functions_count(tmp_path):
    module = tmp_path / "part.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .engine import Engine\n"
        "def later():\n    from . import store\n"
    )
    known = {"devhost.engine": module, "devhost.store": module, "devhost.part": module}
    assert _imports("devhost.part", module, known) == {"devhost.engine", "devhost.store"}


def test_the_app_depends_on_neither_devhost_nor_the_client():
    graph = _graph()
    app = [m for m in graph if m == "function_app" or m.split(".")[0] in ("site_backup", "blueprints")]
    for module in app:
        assert not {t for t in graph[module] if t.split(".")[0] in ("devhost", "backup_cli")}, module


def test_the_backup_logic_knows_nothing_about_functions():
    for name, path in _modules().items():
        if name.split(".")[0] != "site_backup":
            continue
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not {m for m in imported if m.startswith(("azure.functions", "azure.durable_functions", "blueprints"))}
