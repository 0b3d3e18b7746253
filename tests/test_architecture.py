"""The import graph has no circle, type-only imports included (import-linter checks the layers)."""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


class TestImportGraph:
    def test_cycle_finder_sees_a_circle(self) -> None:
        """The finder reports a circle when there is one (so an empty answer below means something)."""
        graph = grimp.ImportGraph()
        for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
            graph.add_import(importer=a, imported=b)
        assert _cycles(graph) == [["p.a", "p.b", "p.c"]]

    def test_no_module_imports_itself_back(self) -> None:
        """No chain of imports, including those under ``TYPE_CHECKING``, leads a module back to itself."""
        graph = grimp.build_graph("supervisor", exclude_type_checking_imports=False, cache_dir=None)
        assert _cycles(graph) == []
