"""Read a fleet file: YAML, then the schema, then the hierarchy rules; any failure names file, line and key.

The valid path is the fast one (ruamel.yaml's C parser, then pydantic) because a reload runs on every
SIGHUP; only a file with an error is parsed a second time, round-trip, to find the line of the offending key.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from supervisor._safe_read import read_text
from supervisor.errors import FleetFileError, HierarchyError
from supervisor.fleet._yaml import YamlSyntaxError, fast_load
from supervisor.fleet.hierarchy import check_hierarchy
from supervisor.fleet.schema import FleetFile

__all__ = ["MAX_FLEET_BYTES", "load_fleet", "parse_fleet"]

MAX_FLEET_BYTES = 4 * 1024 * 1024
"""The largest fleet file read (a fleet of 1,000 instances is about 200 KiB)."""


def parse_fleet(text: str, *, path: str | os.PathLike[str] = "<fleet>") -> FleetFile:
    """Validate fleet-file text; ``path`` only names the file in errors."""
    where = os.fspath(path)
    try:
        data = fast_load(text)
    except YamlSyntaxError as exc:
        raise FleetFileError(f"not valid YAML: {exc.message}", path=where, line=exc.line) from None
    except RecursionError:
        raise FleetFileError("nested too deeply to be a fleet file", path=where) from None
    if data is None:
        raise FleetFileError(
            "the file is empty; a fleet file needs at least 'version: 1'", path=where, line=1
        )
    if not isinstance(data, dict):
        raise FleetFileError(
            "expected a mapping at the top level (version, daemon, defaults, frameworks, instances)",
            path=where,
            line=1,
        )
    try:
        fleet = FleetFile.model_validate(data)
    except ValidationError as exc:
        from supervisor.fleet._locate import fleet_error  # difflib and a second parse: for errors only

        raise fleet_error(exc, text, where, FleetFile) from None
    except RecursionError:
        raise FleetFileError("nested too deeply to be a fleet file", path=where) from None
    try:
        check_hierarchy(fleet.instances)
    except HierarchyError as exc:
        raise HierarchyError(f"{where}: {exc}") from None
    return fleet


def load_fleet(path: str | os.PathLike[str]) -> FleetFile:
    """Read and validate the fleet file at ``path``; every way the file can be unreadable is a
    `FleetFileError` (a FIFO, a device, a symlink loop, more than `MAX_FLEET_BYTES`)."""
    file = Path(path)
    try:
        text = read_text(file, limit=MAX_FLEET_BYTES)
    except FileNotFoundError:
        raise FleetFileError(
            "fleet file not found; create one with 'eyriectl init'", path=str(file)
        ) from None
    except IsADirectoryError:
        raise FleetFileError("is a directory, not a fleet file", path=str(file)) from None
    except PermissionError:
        raise FleetFileError("permission denied reading the fleet file", path=str(file)) from None
    except UnicodeDecodeError as exc:
        raise FleetFileError(f"not UTF-8 text (bad byte at offset {exc.start})", path=str(file)) from None
    except OSError as exc:
        raise FleetFileError(f"cannot be read: {exc.strerror or exc}", path=str(file)) from None
    return parse_fleet(text, path=file)
