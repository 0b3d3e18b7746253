"""structlog set-up, done once in ``main()``: console rendering in ``--dev`` or on a terminal; otherwise
one JSON object per line, each carrying its syslog priority (``<3>``, ``<4>``, ``<6>``, ``<7>``,
sd-daemon(3)) when stderr is the journal, so that ``journalctl -p err`` filters eyried's lines.

A redaction processor runs last before rendering, so no secret reaches a log line even by accident.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = [
    "SECRET_KEYS",
    "JournalPriority",
    "configure_logging",
    "redact_secrets",
    "set_log_level",
    "stderr_is_journal",
]

SECRET_KEYS = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|authorization|credential)", re.IGNORECASE
)
_REDACTED = "[redacted]"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_REDACTED if SECRET_KEYS.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every key that names a secret, at any depth."""
    for key in list(event_dict):
        if SECRET_KEYS.search(key):
            event_dict[key] = _REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


class _LevelFilter:
    """Drops events below a level that can change while the daemon runs (the fleet file sets it, and a
    reload changes it); loggers cached before the change see it too."""

    def __init__(self) -> None:
        self.threshold = logging.INFO

    def __call__(
        self, _logger: object, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if _LEVELS.get(method, logging.INFO) < self.threshold:
            raise structlog.DropEvent
        return event_dict


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL}
_LEVELS |= {"fatal": logging.CRITICAL}
_level_filter = _LevelFilter()


def set_log_level(level: str) -> None:
    """Log events at ``level`` and above from now on (``debug``, ``info``, ``warning`` or ``error``)."""
    _level_filter.threshold = logging.getLevelNamesMapping()[level.upper()]


def stderr_is_journal() -> bool:
    """Whether stderr is connected to the journal: ``JOURNAL_STREAM`` names its device and inode
    (systemd.exec(5)), which a child that redirected stderr elsewhere no longer matches."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return (int(device), int(inode)) == (st.st_dev, st.st_ino)
    except (ValueError, OSError):
        return False


_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 3}
_PRIORITIES |= {"fatal": 3}


class JournalPriority:
    """Wraps a renderer: each line starts with its level's syslog priority, ``<3>{"event": ...}``, which
    journald strips and stores as the entry's PRIORITY."""

    def __init__(self, renderer: structlog.typing.Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        priority = _PRIORITIES.get(str(event_dict.get("level", method)), 6)
        line = self._renderer(logger, method, event_dict)
        return f"<{priority}>" + (line.decode() if isinstance(line, bytes) else str(line))


def configure_logging(*, dev: bool = False, level: str = "info") -> None:
    """Console output in dev mode or on a terminal; one JSON object per line otherwise, prefixed with its
    syslog priority when stderr is the journal."""
    set_log_level(level)
    renderer: structlog.typing.Processor
    if dev or sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    elif stderr_is_journal():
        renderer = JournalPriority(structlog.processors.JSONRenderer())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            _level_filter,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
