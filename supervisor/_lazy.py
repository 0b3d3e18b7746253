"""Package attributes imported on first use, so a light import does not pay for the whole package.

A lazy package names each export once, in its ``if TYPE_CHECKING:`` block (which is also what type checkers
read); the name → submodule map is read from that block, so it cannot drift from what the checkers see.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "type_checking_imports"]


def type_checking_imports(source_path: str) -> dict[str, str]:
    """Name → absolute module of every ``from M import N`` inside an ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(Path(source_path).read_text(encoding="utf-8"), filename=source_path)
    homes: dict[str, str] = {}
    for node in tree.body:
        if not (
            isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        ):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                for alias in stmt.names:
                    homes[alias.asname or alias.name] = stmt.module
    return homes


def lazy_exports(namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for the package whose globals are ``namespace``."""
    package = namespace["__name__"]
    homes = type_checking_imports(namespace["__file__"])

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
