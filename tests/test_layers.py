"""Package dependencies point one way: no two of Herald's packages import each other,
directly or around a loop.

The graph is read from the source (every ``import`` statement, at the top of a module or
inside a function, under ``TYPE_CHECKING`` or not), one node per package of ``herald``
(``core``, ``users``...) or top-level module (``worker``, ``app``...).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import herald

SOURCE = Path(herald.__file__).parent

# Imports that close a cycle and that another branch removes: importer -> imported, and
# where they are. The lead empties this at merge; each entry must still close a cycle,
# so one that is gone cannot linger here. Empty: no cycle is excepted.
PENDING_EDGES: dict[tuple[str, str], str] = {}

# importer -> imported -> where ("core/deps.py:14"), for the message.
Graph = dict[str, dict[str, list[str]]]


def package_of(module: str, source: Path) -> str | None:
    """The node of ``herald.<name>...``: its package or top-level module, if it is one."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "herald":
        return None
    name = parts[1]
    if (source / name / "__init__.py").is_file() or (source / f"{name}.py").is_file():
        return name
    return None  # a name from herald/__init__.py, such as __version__


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """What one import statement names: modules, or a module and its names (which may be
    submodules: ``from herald.core import db``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolved from the importing module's package
        base = module.split(".")[: len(module.split(".")) - node.level + is_package]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return [origin, *(f"{origin}.{alias.name}" for alias in node.names)]


def import_graph(source: Path) -> Graph:
    graph: Graph = {}
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source.parent).with_suffix("")
        is_package = relative.name == "__init__"
        module = ".".join(relative.parts[:-1] if is_package else relative.parts)
        importer = package_of(module, source)
        if importer is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in imported_modules(node, module, is_package):
                imported = package_of(name, source)
                if imported is not None and imported != importer:
                    where = f"{path.relative_to(source)}:{node.lineno}"
                    places = graph.setdefault(importer, {}).setdefault(imported, [])
                    if where not in places:
                        places.append(where)
    return graph


def strongly_connected(graph: Graph) -> list[set[str]]:
    """Groups of packages that reach each other (Tarjan's algorithm), two or more each."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(package: str) -> None:
        order[package] = lowest[package] = len(order)
        stack.append(package)
        for imported in graph.get(package, {}):
            if imported not in order:
                visit(imported)
                lowest[package] = min(lowest[package], lowest[imported])
            elif imported in stack:
                lowest[package] = min(lowest[package], order[imported])
        if lowest[package] == order[package]:
            group = {stack.pop()}
            while package not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for package in sorted(graph):
        if package not in order:
            visit(package)
    return groups


def one_cycle(graph: Graph, group: set[str]) -> Iterator[str]:
    """A loop through ``group`` (breadth first, so the shortest from its first package),
    as lines "a -> b  (where a imports b)"."""
    start = min(group)
    came_from: dict[str, str] = {}  # package -> the one it was first reached from
    frontier = [start]
    while start not in came_from:
        reached = []
        for package in frontier:
            for imported in sorted(graph.get(package, {})):
                if imported in group and imported not in came_from:
                    came_from[imported] = package
                    reached.append(imported)
        frontier = reached
    path = [start, came_from[start]]
    while path[-1] != start:
        path.append(came_from[path[-1]])
    path.reverse()
    for importer, imported in pairwise(path):
        yield f"{importer} -> {imported}  ({', '.join(graph[importer][imported])})"


def without(graph: Graph, edges: set[tuple[str, str]]) -> Graph:
    return {
        importer: {
            imported: where for imported, where in out.items() if (importer, imported) not in edges
        }
        for importer, out in graph.items()
    }


def cycles_message(graph: Graph) -> str:
    return "\n\n".join(
        "packages that import each other:\n" + "\n".join(one_cycle(graph, group))
        for group in strongly_connected(graph)
    )


def test_packages_import_each_other_one_way_only() -> None:
    graph = without(import_graph(SOURCE), set(PENDING_EDGES))
    assert not strongly_connected(graph), cycles_message(graph)


def test_a_pending_import_still_closes_a_cycle() -> None:
    # One test over the dict, not one per entry: an empty dict passes rather than skips.
    groups = strongly_connected(import_graph(SOURCE))
    stale = [
        f"{importer} -> {imported}"
        for importer, imported in sorted(PENDING_EDGES)
        if not any({importer, imported} <= group for group in groups)
    ]
    assert not stale, f"no longer closing a cycle, remove from PENDING_EDGES: {stale}"


def test_an_import_inside_a_function_makes_a_cycle(tmp_path: Path) -> None:
    source = tmp_path / "herald"
    for package in ("core", "users"):
        (source / package).mkdir(parents=True)
        (source / package / "__init__.py").write_text("")
    (source / "core" / "deps.py").write_text(
        "def get_principal():\n    from herald.users.service import authenticate\n"
    )
    (source / "users" / "service.py").write_text("from herald.core import deps\n")
    graph = import_graph(source)
    assert strongly_connected(graph) == [{"core", "users"}]
    assert cycles_message(graph) == (
        "packages that import each other:\n"
        "core -> users  (core/deps.py:2)\n"
        "users -> core  (users/service.py:1)"
    )
