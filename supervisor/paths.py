"""Where everything lives under ``$EYRIE_HOME`` (default ``~/.eyrie``); one variable isolates a test."""

from __future__ import annotations

import os
import re
from pathlib import Path

from supervisor.errors import InvalidID

__all__ = ["ID_PATTERN", "STATE_DIR", "TMP_DIR", "Home", "check_id"]

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")

STATE_DIR = "state"
"""In an instance directory: the framework's own state, which the agent may write (docs/layout.md)."""
TMP_DIR = "tmp"
"""In an instance directory: the agent's private temp directory, its ``TMPDIR``."""


def check_id(instance_id: str) -> str:
    """Return ``instance_id`` if it is safe as a single path component, else raise `InvalidID`."""
    if not isinstance(instance_id, str) or not ID_PATTERN.fullmatch(instance_id):
        raise InvalidID(f"invalid instance id {instance_id!r}: must match {ID_PATTERN.pattern}")
    return instance_id


def _sha256_hex(data: bytes) -> str:
    """SHA-256 by CPython's own implementation when it has one: `hashlib` loads OpenSSL's (libcrypto),
    whose loading was a thirtieth of the instructions of ``eyriectl ps``, for one digest of a path."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # 3.12 and later
        except ImportError:
            from hashlib import sha256
    digest: str = sha256(data).hexdigest()
    return digest


class Home:
    """The supervisor's home directory and the fixed layout below it; immutable, equal by ``root``.

    A plain class, not a dataclass: ``dataclasses`` loads ``inspect``, a tenth of ``eyriectl ps``'s start.
    """

    __slots__ = ("root",)
    root: Path

    def __init__(self, root: Path) -> None:
        object.__setattr__(self, "root", root)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a Home is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a Home is immutable")

    def __eq__(self, other: object) -> bool:
        return self.root == other.root if isinstance(other, Home) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Home(root={self.root!r})"

    @classmethod
    def resolve(cls, override: str | os.PathLike[str] | None = None) -> Home:
        """``override``, else ``$EYRIE_HOME``, else ``~/.eyrie``; always absolute."""
        raw = override or os.environ.get("EYRIE_HOME") or Path.home() / ".eyrie"
        return cls(Path(raw).expanduser().absolute())

    @property
    def instances_dir(self) -> Path:
        return self.root / "instances"

    @property
    def personas_dir(self) -> Path:
        return self.root / "personas"

    @property
    def fleet_file(self) -> Path:
        return self.root / "fleet.yaml"

    @property
    def secrets_dir(self) -> Path:
        """Provider secrets (API keys) the fleet file names, one file each (directory 0700, files 0600)."""
        return self.root / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "eyried.sock"

    @property
    def operator_socket(self) -> str:
        """The abstract Unix socket address of the operator API: ``\\0eyrie/<uid>/<hash>``.

        The hash is the first 16 hex digits of the SHA-256 of the home's real path, so two homes (or two
        users) never share a name, and a home reached through a symlink finds the same one. Abstract names
        live in the network namespace, not the file system: Landlock's scope keeps confined agents off it.
        """
        digest = _sha256_hex(os.fsencode(os.path.realpath(self.root)))[:16]
        return f"\0eyrie/{os.getuid()}/{digest}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "eyried.pid"

    @property
    def daemon_lock(self) -> Path:
        return self.run_dir / "eyried.lock"

    def instance_dir(self, instance_id: str) -> Path:
        return self.instances_dir / check_id(instance_id)

    def ensure_run_dir(self) -> Path:
        """Create ``run/`` owner-only (0700), tightening it if it already exists."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir.chmod(0o700)
        return self.run_dir
