"""eyriectl's logging, set up once and on stderr only, without making every command pay for structlog.

Library modules log through structlog, whose default configuration prints to stdout, where it would corrupt
``--json`` output. `configure_on_first_import` configures it (`supervisor.logconfig.configure_logging`, on
stderr) at the moment anything first imports structlog, so a command that never logs (``ps``, ``status``)
never loads it, and one that does can never log before it is configured.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from importlib.abc import Loader
    from typing import Any

__all__ = ["configure_on_first_import"]

_LEVEL = "warning"
"""The library's info lines are the daemon's business; eyriectl shows warnings and errors."""


class _ConfiguringLoader:
    """Loads structlog with its own loader, then configures it before anyone can log through it."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        from supervisor.logconfig import configure_logging

        configure_logging(level=_LEVEL)


class _StructlogWatch:
    """A meta path finder that only notices the first import of structlog, then steps aside."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "structlog":
            return None
        import importlib.util  # only once something imports structlog

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ConfiguringLoader(spec.loader)  # type: ignore[assignment]
        return spec


def configure_on_first_import() -> None:
    """Configure logging on stderr now if structlog is loaded already, else when it first is."""
    if "structlog" in sys.modules:
        from supervisor.logconfig import configure_logging

        configure_logging(level=_LEVEL)
        return
    sys.meta_path.insert(0, _StructlogWatch())
