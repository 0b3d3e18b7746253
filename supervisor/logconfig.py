"""structlog set-up, done once in ``main()``: JSON lines for journald, console rendering in ``--dev``.

A redaction processor runs last before rendering, so no secret reaches a log line even by accident.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["SECRET_KEYS", "configure_logging", "redact_secrets", "set_log_level"]

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


def configure_logging(*, dev: bool = False, level: str = "info") -> None:
    """Console output in dev mode or on a terminal; one JSON object per line otherwise."""
    set_log_level(level)
    renderer: structlog.typing.Processor
    if dev or sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
