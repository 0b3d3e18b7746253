"""Every error the supervisor raises on purpose.

Lower-layer errors (OSError, psutil, httpx, pydantic) are translated into these at the boundary, so callers
catch one tree, and a group where one answer fits all its members (the control API answers by group)::

    EyrieError
    ├── NotFound                   instance (or persona, profile, framework file) does not exist
    ├── InvalidRequest             the caller asked for something malformed; fixing the request fixes it
    │   ├── RequiredField          a required field is empty
    │   ├── UnsupportedFramework   framework name not in the definitions
    │   ├── InvalidName            a name is not a slug (the message says why)
    │   └── InvalidID              an instance id is not safe to use in a path
    ├── ConfigurationError         a file or setting the supervisor runs from is invalid
    │   ├── FleetFileError         fleet.yaml is invalid (file, line, key)
    │   ├── HierarchyError         the fleet breaks the hierarchy rules
    │   ├── PersonaError           a persona file or template is invalid
    │   ├── UnitValueError         a value cannot go into the systemd unit file
    │   └── NotifySocketError      NOTIFY_SOCKET is neither a socket path nor an abstract name
    ├── Conflict                   what is asked for clashes with what already exists
    │   ├── NameExists             an instance with that name already exists
    │   ├── DaemonRunning          another eyried owns this home
    │   └── StopIncomplete         a stop ended the tree, but a process outside it still holds the port
    ├── StoreError                 the instance store cannot hold what was asked
    │   ├── CorruptInstance        instance.json cannot be parsed
    │   ├── PortsExhausted         no free port in the instance range
    │   ├── PortClaimsUnusable     the machine-wide port claims directory cannot be used
    │   └── ProvisionError         provisioning failed part-way (everything was rolled back)
    ├── IllegalTransition          the engine tried a transition the state table forbids (a bug)
    ├── StartFailed                a process could not be started (binary missing, port held, exec failed)
    │   └── ProcessWatchUnavailable  the kernel refuses pidfds: nothing could be watched, so nothing starts
    └── DaemonNotRunning           eyriectl found no daemon on the control socket

An error raised in eyried is raised again in eyriectl as the same class: its class name, its message and its
``details()`` (what it carries beyond the message) cross the control socket, and ``from_details`` builds it
again.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "ConfigurationError",
    "Conflict",
    "CorruptInstance",
    "DaemonNotRunning",
    "DaemonRunning",
    "ErrorDetail",
    "EyrieError",
    "FleetFileError",
    "HierarchyError",
    "IllegalTransition",
    "InvalidID",
    "InvalidName",
    "InvalidRequest",
    "NameExists",
    "NotFound",
    "NotifySocketError",
    "PersonaError",
    "PortClaimsUnusable",
    "PortsExhausted",
    "ProcessWatchUnavailable",
    "ProvisionError",
    "RequiredField",
    "StartFailed",
    "StopIncomplete",
    "StoreError",
    "UnitValueError",
    "UnsupportedFramework",
]

ErrorDetail = str | int | None
"""One value an error carries beyond its message; JSON can hold it as it is."""


class EyrieError(Exception):
    """Base of every error raised by the supervisor on purpose."""

    def details(self) -> dict[str, ErrorDetail]:
        """What the error carries beyond its message, so that another process can build it again."""
        return {}

    @classmethod
    def from_details(cls, message: str, details: Mapping[str, object]) -> Self:
        """The error as it was raised in another process, from its message and `details`.

        Raises `TypeError` when the class cannot be built from these (a sender that left its details out).
        """
        return cls(message)


class NotFound(EyrieError):
    """The instance (or other named thing) does not exist on disk."""


class InvalidRequest(EyrieError, ValueError):
    """The request is malformed; the message names the field and what is wrong with it."""


class RequiredField(InvalidRequest):
    """A required field is missing or empty."""


class UnsupportedFramework(InvalidRequest):
    """The framework name has no definition."""


class InvalidName(InvalidRequest):
    """A name is not a valid slug; the message says which rule it breaks."""


class InvalidID(InvalidRequest):
    """An instance id would not be safe as a path component."""


class ConfigurationError(EyrieError, ValueError):
    """A file or setting the supervisor runs from is invalid; the message says which and why."""


class FleetFileError(ConfigurationError):
    """The fleet file is invalid. ``path``, ``line`` and ``key`` say where, when known."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None, key: str = "") -> None:
        self.path = path
        self.line = line
        self.key = key
        self.reason = message
        where = path
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        if key:
            shown = key if key.isprintable() else repr(key)[1:-1]  # a key may hold a newline: one line still
            where = f"{where}: {shown}" if where else shown
        super().__init__(f"{where}: {message}" if where else message)

    def details(self) -> dict[str, ErrorDetail]:
        return {"reason": self.reason, "path": self.path, "line": self.line, "key": self.key}

    @classmethod
    def from_details(cls, message: str, details: Mapping[str, object]) -> Self:
        """Where it was found comes back with the error; without it, the message alone still says."""
        reason, path, line, key = (details.get(name) for name in ("reason", "path", "line", "key"))
        if (
            isinstance(reason, str)
            and isinstance(path, str)
            and isinstance(key, str)
            and (line is None or type(line) is int)
        ):
            return cls(reason, path=path, line=line, key=key)
        return cls(message)


class HierarchyError(ConfigurationError):
    """The fleet breaks a hierarchy rule; the message names the instances involved."""


class PersonaError(ConfigurationError):
    """A persona definition or one of its templates is invalid."""


class UnitValueError(ConfigurationError):
    """A value cannot go into the unit file; the message names the value and why."""


class NotifySocketError(ConfigurationError):
    """``NOTIFY_SOCKET`` names something other than a Unix socket path or an abstract ``@name``."""


class Conflict(EyrieError):
    """What is asked for clashes with something that already exists."""


class NameExists(Conflict):
    """An instance with this name already exists."""


class DaemonRunning(Conflict):
    """Another eyried already owns this home."""

    def __init__(self, pid: int | None, home: str) -> None:
        self.pid = pid
        self.home = home
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"eyried is already running for {home} ({who})")

    def details(self) -> dict[str, ErrorDetail]:
        return {"pid": self.pid, "home": self.home}

    @classmethod
    def from_details(cls, message: str, details: Mapping[str, object]) -> Self:
        pid, home = details.get("pid"), details.get("home")
        if (pid is None or type(pid) is int) and isinstance(home, str):
            return cls(pid, home)
        raise TypeError(f"{cls.__name__} needs its pid and home, not {dict(details)!r}")


class StopIncomplete(Conflict):
    """A stop ended the instance's tree, but a process it could not reach (one that left the tree and its
    marker behind) still holds the port; the message names it."""


class StoreError(EyrieError):
    """The instance store cannot read or hold what was asked of it."""


class CorruptInstance(StoreError):
    """An instance.json file exists but cannot be read as an instance."""


class PortClaimsUnusable(StoreError):
    """The machine-wide port claims directory is missing, foreign or read-only; the message says the fix."""


class PortsExhausted(StoreError):
    """Every port in the instance range is taken."""


class ProvisionError(StoreError):
    """Provisioning failed; nothing was left behind."""


class IllegalTransition(EyrieError, RuntimeError):
    """The state table forbids this transition: a bug in the engine, never a user error."""


class StartFailed(EyrieError):
    """A process could not be started; the message is what goes into ``last_error``."""


class ProcessWatchUnavailable(StartFailed):
    """``pidfd_open``, ``pidfd_send_signal`` or a wait on a pidfd is refused (a kernel before 5.4, a seccomp
    filter, valgrind): a process the supervisor cannot watch would be taken for ended and started again
    while it runs, so the supervisor starts none."""


class DaemonNotRunning(EyrieError):
    """No daemon answers on the control socket."""
