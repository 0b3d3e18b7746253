"""The stable exit codes of ``eyriectl``, and how a command ends with one without click.

The commands that answer at once (``ps``, ``list``, ``status``) run without click (`supervisor.cli._front`):
they raise `Failure`, which click's group maps to the same exit code and message when it runs them.
"""

from __future__ import annotations

__all__ = ["EXIT_DAEMON_DOWN", "EXIT_DEGRADED", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Failure"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DAEMON_DOWN = 3
EXIT_DEGRADED = 4


class Failure(Exception):
    """A command ends with ``exit_code``, after printing ``message`` (when not empty) as ``eyriectl: …`` on
    stderr; what is wrong may be in its output already (``status`` of a degraded fleet)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
