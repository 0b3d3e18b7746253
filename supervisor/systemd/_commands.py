"""Run ``systemctl --user`` and ``loginctl`` as argv lists (never a shell) and keep what they said.

A missing program or a hung call becomes a failed `CommandResult` with a readable message, so install,
uninstall and doctor report it as a step instead of raising.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LINGER_DIR",
    "CommandResult",
    "linger_enabled",
    "run",
    "systemctl",
    "unit_dir",
    "user_name",
]

LINGER_DIR = Path("/var/lib/systemd/linger")
"""Where logind records lingering users; read directly when logind itself cannot be asked."""

DEFAULT_TIMEOUT = 120.0
"""``enable --now`` waits for the daemon's READY=1, which may take as long as the fleet takes to start."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def message(self) -> str:
        """What the command said, for a report line."""
        text = self.stderr.strip() or self.stdout.strip()
        return " ".join(text.split()) if text else f"exit status {self.code}"


def run(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
    """Run ``argv`` with ``env``; the program is looked up on ``env``'s PATH."""
    args = tuple(argv)
    try:
        done = subprocess.run(
            args,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return CommandResult(args, 127, "", f"{args[0]}: command not found on PATH")
    except subprocess.TimeoutExpired:
        return CommandResult(args, 124, "", f"{' '.join(args)} did not finish within {timeout:g}s")
    return CommandResult(args, done.returncode, done.stdout, done.stderr)


def systemctl(env: Mapping[str, str], *args: str, timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
    return run(["systemctl", "--user", *args], env, timeout=timeout)


def user_name() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def unit_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user``, default ``~/.config/systemd/user`` (systemd.unit(5))."""
    config = env.get("XDG_CONFIG_HOME", "")
    if not config or not os.path.isabs(config):
        config = os.path.join(env.get("HOME") or str(Path.home()), ".config")
    return Path(config) / "systemd" / "user"


def linger_enabled(env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the user lingers, and how that was learnt (logind, or its state file when logind is away)."""
    user = user_name()
    asked = run(["loginctl", "show-user", user, "--property=Linger", "--value"], env, timeout=15)
    if asked.ok:
        return asked.stdout.strip() == "yes", "logind"
    return (LINGER_DIR / user).exists(), f"{LINGER_DIR / user} (logind: {asked.message})"
