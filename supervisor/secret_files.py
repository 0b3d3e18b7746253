"""Provider secrets: one file per secret under ``$EYRIE_HOME/secrets/``, named from the fleet file.

A fleet file says ``secrets: {OPENAI_API_KEY: openai}``: the agent gets the variable ``OPENAI_API_KEY`` with
the content of ``secrets/openai`` in its environment, and nothing else sees the value. The directory is 0700
and each file 0600, written atomically; a file is read without following a symlink, and only if it is a
regular file of a sane size. Names are checked like instance ids before they touch a path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from supervisor._fs import atomic_write
from supervisor._safe_read import read_bytes
from supervisor.errors import ConfigurationError, InvalidRequest, NotFound
from supervisor.paths import ID_PATTERN, Home

__all__ = ["MAX_SECRET_BYTES", "SecretFiles", "check_secret_name"]

MAX_SECRET_BYTES = 64 * 1024
"""The largest secret read or written (an API key is well under 1 KiB)."""
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def check_secret_name(name: str) -> str:
    """Return ``name`` if it is safe as a file name under ``secrets/``, else raise `InvalidRequest`."""
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise InvalidRequest(f"invalid secret name {name!r}: use only letters, digits, '_' and '-'")
    return name


class SecretFiles:
    """The home's provider secrets."""

    def __init__(self, home: Home) -> None:
        self.root = home.secrets_dir

    def path(self, name: str) -> Path:
        return self.root / check_secret_name(name)

    def names(self) -> list[str]:
        """Every secret stored, sorted (temp files of an unfinished write left out)."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(name for name in entries if ID_PATTERN.fullmatch(name) and not name.startswith("."))

    def exists(self, name: str) -> bool:
        path = self.path(name)
        return path.is_file() and not path.is_symlink()

    def read(self, name: str) -> str:
        """The secret's value, without a trailing newline; `NotFound` when it is missing, and
        `ConfigurationError` when it cannot be used (a symlink, a FIFO, too big, not UTF-8)."""
        path = self.path(name)
        try:
            data = read_bytes(path, limit=MAX_SECRET_BYTES, follow_symlinks=False)
            value = data.decode("utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise NotFound(f"secret {name!r} is missing: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigurationError(f"secret {name!r} cannot be read from {path}: {reason}") from None
        if "\0" in value:
            raise ConfigurationError(f"secret {name!r} in {path} contains a NUL byte")
        return value

    def write(self, name: str, value: str) -> Path:
        """Store ``value`` as the secret ``name`` (0600, atomically, replacing any earlier one)."""
        path = self.path(name)
        if not value or "\0" in value:
            raise InvalidRequest(f"secret {name!r}: the value must be non-empty text without NUL bytes")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise InvalidRequest(f"secret {name!r}: larger than {MAX_SECRET_BYTES} bytes")
        self.ensure_dir()
        atomic_write(path, value + "\n", mode=_FILE_MODE)
        return path

    def remove(self, name: str) -> bool:
        """Delete the secret; False when there was none."""
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return False
        return True

    def ensure_dir(self) -> None:
        """Create ``secrets/`` owner-only, tightening it if it exists; a symlink there is refused."""
        if self.root.is_symlink():
            raise ConfigurationError(f"{self.root} is a symlink; move it away")
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            self.root.chmod(_DIR_MODE)

    def values(self, uses: Mapping[str, str]) -> dict[str, str]:
        """Variable → value for ``uses`` (variable → secret name); the first missing or unusable secret
        raises, naming the secret and the variable, never a value."""
        found: dict[str, str] = {}
        for var, name in uses.items():
            try:
                found[var] = self.read(name)
            except (NotFound, ConfigurationError) as exc:
                raise ConfigurationError(f"{exc} (needed for {var})") from None
        return found

    def missing(self, uses: Mapping[str, Mapping[str, str]]) -> list[str]:
        """For each instance (name → its variable → secret mapping), the secrets it names and the home
        lacks, each ``instance: secret 'x' is missing (for VAR)``."""
        return [
            f"{instance}: secret {name!r} is missing (for {var}; set it with: eyriectl secret set {name})"
            for instance, mapping in uses.items()
            for var, name in mapping.items()
            if not self.exists(name)
        ]
