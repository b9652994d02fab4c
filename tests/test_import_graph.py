"""The import graph, read from the code: the web side (spacedock/) reaches the builder and the
runner only by task name and through files they write, never by importing their internals, and no
two modules import each other at load time."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.fast

PACKAGES = ("spacedock", "runner", "builder")
# The interfaces spacedock/ may import from the other two. None is needed today: builds are sent
# by task name (spaces/models.py), the runner is nudged through spaces/notify.py, and its reports
# are files that spacedock/health owns.
INTERFACES: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imported(path: Path, load_time_only: bool) -> set[str]:
    """The modules `path` imports: all of them, or only those imported when it is loaded (its
    top level; an import inside a function runs when called and cannot make a load-time cycle)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if load_time_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def package_of(name: str) -> str:
    return name.split(".")[0]


def test_the_web_side_imports_no_builder_or_runner_internals():
    crossings = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if package_of(name) == "spacedock"
        for target in imported(path, load_time_only=False)
        if package_of(target) in ("runner", "builder") and target not in INTERFACES
    ]
    assert crossings == []


def test_the_builder_and_the_runner_do_not_import_each_other():
    crossings = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if package_of(name) in ("runner", "builder")
        for target in imported(path, load_time_only=False)
        if package_of(target) in ("runner", "builder") and package_of(target) != package_of(name)
    ]
    assert crossings == []


def load_time_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a cycle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            if group:
                cycles.append(sorted([node, *group]))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_modules_import_each_other_at_load_time():
    found = modules()
    graph = {
        name: {target for target in imported(path, load_time_only=True) if target in found}
        for name, path in found.items()
    }
    assert load_time_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    """The check above would pass on any graph if the finder never found one."""
    assert load_time_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert load_time_cycles({"a": {"b"}, "b": set()}) == []
