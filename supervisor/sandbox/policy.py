"""What one agent may reach, as data: its instance's working areas, the system, its install prefix, the
paths its fleet file adds, its port. Pure: `grants` turns a policy and the resolved prefixes into the
Landlock rules that `supervisor.sandbox.confine` opens and adds.

| path | access |
|---|---|
| workspace, ``state/``, ``tmp/`` | read, write, execute, create, remove |
| config file, ``secrets/token`` | read |
| ``/usr /bin /sbin /lib* /etc /opt``, the install prefix | read, execute |
| ``/proc``, ``/sys`` | read (another process's files stay behind ptrace rules) |
| ``/dev/null /dev/zero /dev/full`` | read, write |
| ``/dev/random /dev/urandom`` | read |
| ``sandbox.read`` | read, execute |
| ``sandbox.write`` | read, write, execute, create, remove |
| TCP bind | the instance's port, and port 0 (a port the kernel picks) |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from supervisor.sandbox._landlock import READ, READ_EXEC, READ_FILE, WRITE_FILE

__all__ = ["AREAS", "DEVICES", "FULL", "SYSTEM_READ", "SYSTEM_READ_EXEC", "Grant", "SandboxPolicy", "grants"]

FULL = -1
"""Every right the kernel handles."""

AREAS = ("state", "tmp")
"""The instance directory's subdirectories an agent works in, beside its workspace."""
SYSTEM_READ_EXEC = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SYSTEM_READ = ("/proc", "/sys")
DEVICES = {
    "/dev/null": READ_FILE | WRITE_FILE,
    "/dev/zero": READ_FILE | WRITE_FILE,
    "/dev/full": READ_FILE | WRITE_FILE,
    "/dev/random": READ_FILE,
    "/dev/urandom": READ_FILE,
}


@dataclass(frozen=True, slots=True)
class Grant:
    """One rule: ``access`` beneath ``path`` (``FULL`` for every right). ``create`` makes a missing
    directory first; otherwise a missing path is left out (``warn``: and said so)."""

    path: str
    access: int
    create: bool = False
    warn: bool = False


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """One instance's confinement. ``read`` and ``write`` are the fleet file's extra paths, expanded;
    ``argv`` and ``search_path`` locate the program whose install prefix is readable."""

    instance_dir: str
    workspace: str
    config: str
    token: str
    port: int
    argv: tuple[str, ...]
    search_path: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    @property
    def areas(self) -> tuple[str, ...]:
        """The directories the agent works in (created when missing)."""
        return (self.workspace, *(str(Path(self.instance_dir) / a) for a in AREAS))


def grants(policy: SandboxPolicy, prefixes: tuple[str, ...]) -> list[Grant]:
    """Every rule of ``policy``, its program's install ``prefixes`` included."""
    out = [Grant(p, READ_EXEC) for p in SYSTEM_READ_EXEC]
    out += [Grant(p, READ) for p in SYSTEM_READ]
    out += [Grant(p, access) for p, access in DEVICES.items()]
    out += [Grant(p, READ_EXEC) for p in prefixes]
    out += [Grant(p, FULL, create=True) for p in policy.areas]
    out += [Grant(p, READ_FILE) for p in (policy.config, policy.token) if p]
    out += [Grant(p, READ_EXEC, warn=True) for p in policy.read]
    out += [Grant(p, FULL, create=True) for p in policy.write]
    return out
