"""No import circles in ``src/semigrad``.

The import graph is read from the source (``ast``), not by importing: every ``import`` and
``from ... import`` statement of every module, relative imports resolved, ``from pkg import
name`` counted as an import of the submodule ``pkg.name`` where there is one. An import inside
a function (or lambda) is *deferred*: it runs when the function is called, not when the module
is loaded. Importing ``a.b.c`` also runs ``a`` and ``a.b`` first; those implicit edges to the
parent packages are not counted (a submodule being loaded finds its parent in ``sys.modules``
already, so only names taken from the parent explicitly can be missing).

Two rules, for every module:

- no cycle among module-level imports: such a cycle works, if at all, only by the order in
  which the modules of the cycle happen to be imported first;
- no cycle at all, deferred imports included: no module imports a module that (directly or
  through others) imports it back. A deferred import is for loading something heavy or
  optional (numba, gymnasium) late, not for breaking a circle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "semigrad"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``; ``deferred``: inside a function."""

    source: str
    target: str
    path: str
    line: int
    deferred: bool

    def __str__(self) -> str:
        kind = " (inside a function)" if self.deferred else ""
        return f"{self.source} -> {self.target}  [{self.path}:{self.line}{kind}]"


def module_names(root: Path = SRC / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imports(tree: ast.AST):
    """``(node, deferred)`` for every import statement in ``tree`` that can run (not those
    under ``if TYPE_CHECKING:``)."""
    def walk(node: ast.AST, deferred: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, deferred
            elif _type_checking_only(child):  # never runs: only its ``else`` is walked
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), deferred)
                continue
            inner = deferred or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(child, inner)

    yield from walk(tree, False)


def _type_checking_only(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations only."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is one of ``modules``; None outside them."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(modules: dict[str, Path] | None = None,
                 relative_to: Path = SRC.parent) -> list[Edge]:
    """Every import of one of ``modules`` by one of ``modules`` (default: all of semigrad);
    files are named relative to ``relative_to``."""
    modules = module_names() if modules is None else modules
    edges = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = str(path.relative_to(relative_to))
        for node, deferred in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the package containing ``source``
                    package = source.split(".")
                    if not is_package:
                        package.pop()
                    package = package[:len(package) - (node.level - 1)]
                    base = ".".join(package + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for name in dict.fromkeys(targets):
                target = _known(name, modules)
                if target is not None and target != source:
                    edges.append(Edge(source, target, where, node.lineno, deferred))
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """Cycles (each as its edges, in order) covering every strongly connected component of the
    graph that has more than one module: a shortest cycle through each of its modules, each
    cycle once."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    # Tarjan's strongly connected components, iteratively
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for edge in children:
                child = edge.target
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    cycles = {}
    for component in components:
        for start in sorted(component):
            cycle = _cycle_through(start, component, graph)
            cycles.setdefault(frozenset(cycle), cycle)
    return list(cycles.values())


def _cycle_through(start: str, members: set[str], graph: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest cycle through ``start`` within its strongly connected component."""
    paths = {start: []}  # breadth-first: module -> edges from start
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    return paths[node] + [edge]
                if edge.target in members and edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def describe(cycles: list[list[Edge]]) -> str:
    return "\n".join(
        f"cycle {i + 1}: " + " -> ".join([cycle[0].source] + [e.target for e in cycle]) + "\n"
        + "\n".join(f"    {edge}" for edge in cycle)
        for i, cycle in enumerate(cycles))


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph()


def test_the_graph_is_read_from_the_source(edges):
    """Guards against a checker that finds no cycle because it finds no imports."""
    found = {(e.source, e.target, e.deferred) for e in edges}
    assert ("semigrad.envs", "semigrad.envs.registry", False) in found
    assert ("semigrad.envs.agents", "semigrad.envs.registry", False) in found
    assert ("semigrad.envs.cartpole", "semigrad.envs.cartpole_kernel", True) in found  # deferred


def test_cycles_are_found_and_printed(tmp_path):
    """The checker itself: a circle of module-level imports, and one closed by an import
    inside a function (an import under ``if TYPE_CHECKING:`` is not one)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "__init__.py": "from pkg.a import f\n",
        "a.py": "from . import b\n\ndef f():\n    return b\n",
        "b.py": "from .a import f\n",
        "c.py": "import pkg.d\n",
        "d.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:  # not counted\n"
                 "    from pkg.c import C\n\ndef g():\n    from pkg import c\n    return c\n"),
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(module_names(pkg), relative_to=tmp_path)
    eager = find_cycles([edge for edge in graph if not edge.deferred])
    assert [[(e.source, e.target) for e in cycle] for cycle in eager] == [
        [("pkg.a", "pkg.b"), ("pkg.b", "pkg.a")]]
    every = sorted(find_cycles(graph), key=lambda cycle: cycle[0].source)
    assert [[(e.source, e.target, e.deferred) for e in cycle] for cycle in every] == [
        [("pkg.a", "pkg.b", False), ("pkg.b", "pkg.a", False)],
        [("pkg.c", "pkg.d", False), ("pkg.d", "pkg.c", True)]]
    text = describe(every)
    assert "cycle 2: pkg.c -> pkg.d -> pkg.c" in text
    assert f"[{Path('pkg', 'd.py')}:7 (inside a function)]" in text


def test_no_cycle_among_module_level_imports(edges):
    cycles = find_cycles([edge for edge in edges if not edge.deferred])
    assert not cycles, "import cycles among module-level imports:\n" + describe(cycles)


def test_no_cycle_even_through_imports_inside_functions(edges):
    cycles = find_cycles(edges)
    assert not cycles, "import cycles (deferred imports included):\n" + describe(cycles)
