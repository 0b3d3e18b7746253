"""What talking to eyried can go wrong with, in the words both clients use: the async `ControlClient` and
eyriectl's quick synchronous reader. One place, so that a script sees the same message and exception class
whichever client asked."""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from pathlib import Path

from supervisor.control._error_answer import error_from_answer
from supervisor.errors import EyrieError

__all__ = [
    "closed_without_answer",
    "connect_failed",
    "error_answer",
    "no_answer_in_time",
    "not_json",
]

_NOT_RUNNING = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK}


def connect_failed(socket: Path, cause: OSError | None) -> EyrieError | None:
    """The error for a connection to ``socket`` that could not be made (``cause`` None when the reason is
    unknown); None when it means that no daemon is there (the caller raises its `DaemonNotRunning`)."""
    if cause is None or cause.errno in _NOT_RUNNING:
        return None
    if cause.errno in (errno.EACCES, errno.EPERM):
        return EyrieError(f"permission denied on {socket}: it belongs to another user")
    return EyrieError(f"cannot connect to {socket}: {cause.strerror or cause}")


def closed_without_answer(socket: Path, exc: BaseException) -> EyrieError:
    return EyrieError(
        f"eyried closed the connection on {socket} without answering ({exc}); it accepts only its owner's uid"
    )


def no_answer_in_time(socket: Path) -> EyrieError:
    return EyrieError(f"eyried did not answer on {socket} in time")


def not_json(method: str, path: str) -> EyrieError:
    return EyrieError(f"eyried sent an answer that is not JSON for {method} {path}")


def error_answer(status: int, reason: str, content: bytes, headers: Mapping[str, str]) -> EyrieError:
    """The exception an error answer stands for (see `error_from_answer`)."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    error = error_from_answer(body, headers)
    return error or EyrieError(f"eyried answered {status} {reason}")
