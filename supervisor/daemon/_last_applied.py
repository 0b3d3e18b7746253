"""The fleet last applied, kept in ``run/``: an eyried that starts with an invalid fleet file supervises by it
instead of exiting (under systemd an exit is a crash loop with every agent unsupervised).

It is kept as the validated fleet (JSON), not as the file's text, so it is exactly what was applied even if
the file changed meanwhile, and it is read back through the same schema.
"""

from __future__ import annotations

import json
import os
import stat
from typing import TYPE_CHECKING

from pydantic import ValidationError

from supervisor._fs import atomic_write
from supervisor.errors import FleetFileError
from supervisor.fleet import FleetFile

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["APPLIED_FILE", "load_applied", "save_applied"]

APPLIED_FILE = "fleet.applied.json"
_MAX_BYTES = 16 * 1024 * 1024


def save_applied(run_dir: Path, fleet: FleetFile) -> None:
    """Keep ``fleet`` as the last applied (atomically, owner-only); a file that holds it already, owner-only,
    is left as it is (a restart on an unchanged fleet file writes and syncs nothing)."""
    data = fleet.model_dump(mode="json", exclude_unset=True)
    text = (json.dumps(data, sort_keys=True) + "\n").encode()
    path = run_dir / APPLIED_FILE
    if _holds(path, text):
        return
    atomic_write(path, text, mode=0o600)


def _holds(path: Path, text: bytes) -> bool:
    """Whether ``path`` is a regular owner-only file of exactly ``text`` (not followed through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != 0o600 or info.st_size != len(text):
            return False
        return file.read(len(text) + 1) == text


def load_applied(run_dir: Path) -> FleetFile | None:
    """The fleet last applied; None when none was kept. `FleetFileError` when it cannot be read back
    (hand-edited, truncated, a symlink, a FIFO, or too big)."""
    path = run_dir / APPLIED_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetFileError(f"cannot open: {exc.strerror or exc}", path=str(path)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
            raise FleetFileError(f"not a regular file of at most {_MAX_BYTES} bytes", path=str(path))
        raw = file.read(_MAX_BYTES + 1)
    try:
        return FleetFile.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise FleetFileError(f"cannot be read back: {exc}", path=str(path)) from None
