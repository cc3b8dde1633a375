"""The import cycles between the modules of Autopilot's packages, from the static import graph.

Every ``import`` counts, also those inside functions and under ``if TYPE_CHECKING``: a cycle that only
holds because an import is deferred is still a cycle. ``plugins/`` is the package ``autopilot_plugin``.

    python scripts/import_cycles.py [ROOT]      # ROOT: the checkout (default: this one)

Prints each group of modules that import each other in a circle, one import path of the circle, and
exits 1 if there is one. ``make lint`` and tests/test_architecture.py run it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = {"autopilot_provider": "autopilot_provider", "dag_factory": "dag_factory", "plugins": "autopilot_plugin"}


def modules(root: Path) -> dict[str, Path]:
    """Module name → file, for every ``.py`` file of the packages."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if "node_modules" in parts or "ui_dist" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules ``name`` imports (the longest known prefix of each imported name)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for imported in names:
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def circle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One import path around the component: a → b → … → a."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return component


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent)
    known = modules(root)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = cycles(graph)
    for component in sorted(found, key=len, reverse=True):
        print(f"import cycle of {len(component)} modules: {' -> '.join(circle(graph, component))}")
    edges = sum(map(len, graph.values()))
    print(f"{len(known)} modules, {edges} imports, {len(found)} cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
