"""One unit per home: the default home (``~/.eyrie``) keeps ``eyried.service``, any other home gets
``eyried@<escaped home>.service``, escaped by ``systemd-escape --path`` rules, so installing, stopping or
removing one home's service never touches another's.

Each name is a concrete unit file of its own (systemd reads ``eyried@x.service`` before any template), so
every home carries its own program path, stop timeout and environment.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path

from supervisor.errors import UnitValueError
from supervisor.systemd.unit import UNIT_NAME

__all__ = ["UNIT_PREFIX", "default_home", "escape_path", "is_default_home", "unit_name"]

UNIT_PREFIX = "eyried@"

_KEPT = frozenset(string.ascii_letters + string.digits + ":_.")
_NAME_MAX = 255  # systemd's UNIT_NAME_MAX, without the terminating NUL


def escape_path(path: str) -> str:
    """``systemd-escape --path``: slashes become ``-``, anything but ``[A-Za-z0-9:_.]`` (and a leading
    ``.``) becomes ``\\xNN`` per UTF-8 byte; ``/`` alone is ``-``."""
    trimmed = os.path.normpath(path).strip("/")
    if not trimmed:
        return "-"
    out = []
    for i, byte in enumerate(trimmed.encode("utf-8", "surrogateescape")):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif char in _KEPT and not (i == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def default_home(env: Mapping[str, str]) -> Path:
    """``~/.eyrie`` for the user ``env`` belongs to (``$HOME``, as the user manager sees it)."""
    return Path(env.get("HOME") or Path.home()) / ".eyrie"


def is_default_home(home: Path, env: Mapping[str, str]) -> bool:
    return os.path.normpath(home) == os.path.normpath(default_home(env))


def unit_name(home: Path, env: Mapping[str, str]) -> str:
    """The unit that runs eyried for ``home``; `UnitValueError` when the path is too long for a name."""
    if is_default_home(home, env):
        return UNIT_NAME
    name = f"{UNIT_PREFIX}{escape_path(str(home))}.service"
    if len(name) > _NAME_MAX:
        raise UnitValueError(
            f"home {str(home)!r} is too long for a unit name ({len(name)} > {_NAME_MAX} characters once"
            " escaped); use a shorter path, e.g. a symlink to it"
        )
    return name
