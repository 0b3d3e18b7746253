"""Print the package's import graph, folded to one node per top-level module or subpackage, as Mermaid.

Type-only imports count. docs/architecture.md shows its output: ``.venv/bin/python scripts/import_graph.py``.
"""

from __future__ import annotations

import grimp


def _component(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def main() -> None:
    graph = grimp.build_graph("supervisor", exclude_type_checking_imports=False, cache_dir=None)
    edges: set[tuple[str, str]] = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = _component(module), _component(imported)
            if a != b and a != "supervisor" and b != "supervisor":
                edges.add((a, b))
    # Show only edges not implied by a longer path, so the picture stays readable.
    reach: dict[str, set[str]] = {}
    for a, b in edges:
        reach.setdefault(a, set()).add(b)

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [n for n in reach.get(start, ()) if (start, n) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(reach.get(node, ()))
        return seen

    print("graph TD")
    for a, b in sorted(edges):
        if b not in reachable(a, (a, b)):
            print(f"    {a.removeprefix('supervisor.')} --> {b.removeprefix('supervisor.')}")


if __name__ == "__main__":
    main()
