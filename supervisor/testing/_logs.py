"""Log capture for asserting on what the supervisor logged (its loggers are structlog's)."""

from __future__ import annotations

from structlog.testing import capture_logs

__all__ = ["capture_logs"]
