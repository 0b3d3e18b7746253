"""The ``sandbox:`` paths of one instance, expanded: the command's placeholders, ``{uid}`` and ``~``."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.frameworks.expand import PlaceholderValues, expand
from supervisor.sandbox.setting import SandboxSetting

__all__ = ["expand_sandbox_paths"]


def expand_sandbox_paths(
    setting: SandboxSetting, values: PlaceholderValues
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``read`` and ``write`` paths, absolute; `ValueError` naming the one that is not."""
    mapping = {**values.as_mapping(), "uid": str(os.getuid())}

    def one(key: str, i: int, template: str) -> str:
        where = f"sandbox.{key}[{i}]"
        path = os.path.expanduser(expand(template, mapping, where=where))
        if not Path(path).is_absolute() or "\0" in path:
            raise ValueError(f"{where} {template!r}: expands to {path!r}, not an absolute path")
        return os.path.normpath(path)

    read = tuple(one("read", i, p) for i, p in enumerate(setting.read))
    write = tuple(one("write", i, p) for i, p in enumerate(setting.write))
    return read, write
