"""pydantic's plugin loader, stood in for while plugins are off.

pydantic asks its loader for plugins whenever it builds a validator; the loader's module imports
``importlib.metadata`` (with ``email``, ``zipfile``, ``csv``: ~15 ms and ~40 modules) to scan entry points,
and with ``PYDANTIC_DISABLE_PLUGINS`` set to one of `OFF` it returns none without scanning anything. The
daemon turns plugins off for itself (`supervisor.daemon.main`), so the stand-in answers the same, none,
without the import. Any other setting (an operator's own list of plugins to skip) keeps pydantic's loader.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["LOADER", "OFF", "skip_plugin_scan"]

LOADER = "pydantic.plugin._loader"
OFF = ("__all__", "1", "true")
"""The values of ``PYDANTIC_DISABLE_PLUGINS`` for which pydantic's loader returns no plugin at all."""


def _get_plugins() -> Iterable[Any]:
    """No plugin: what pydantic's `get_plugins` returns with plugins off."""
    return ()


def skip_plugin_scan() -> None:
    """With plugins off and pydantic's loader not loaded yet, put the stand-in in its place."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in OFF or LOADER in sys.modules:
        return
    loader = types.ModuleType(LOADER, "pydantic's plugin loader with plugins off: no plugin, no scan.")
    loader.get_plugins = _get_plugins  # type: ignore[attr-defined]
    sys.modules[LOADER] = loader
