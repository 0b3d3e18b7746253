"""Every error the supervisor raises on purpose.

Lower-layer errors (OSError, psutil, httpx, pydantic) are translated into these at the boundary, so callers
catch one tree::

    EyrieError
    ├── NotFound               instance (or persona, framework file) does not exist
    ├── NameExists             an instance with that name already exists
    ├── RequiredField          a required field is empty
    ├── UnsupportedFramework   framework name not in the definitions
    ├── InvalidName            a name is not a slug (the message says why)
    ├── InvalidID              an instance id is not safe to use in a path
    ├── CorruptInstance        instance.json cannot be parsed
    ├── PortsExhausted         no free port in the instance range
    ├── PersonaError           a persona file or template is invalid
    ├── ProvisionError         provisioning failed part-way (everything was rolled back)
    ├── FleetFileError         fleet.yaml is invalid (file, line, key)
    ├── HierarchyError         the fleet breaks the hierarchy rules
    ├── IllegalTransition      the engine tried a transition the state table forbids (a bug)
    ├── StartFailed            a process could not be started (binary missing, port held, exec failed)
    ├── DaemonRunning          another eyried owns this home
    └── DaemonNotRunning       eyriectl found no daemon on the control socket
"""

from __future__ import annotations

__all__ = [
    "CorruptInstance",
    "DaemonNotRunning",
    "DaemonRunning",
    "EyrieError",
    "FleetFileError",
    "HierarchyError",
    "IllegalTransition",
    "InvalidID",
    "InvalidName",
    "NameExists",
    "NotFound",
    "PersonaError",
    "PortsExhausted",
    "ProvisionError",
    "RequiredField",
    "StartFailed",
    "UnsupportedFramework",
]


class EyrieError(Exception):
    """Base of every error raised by the supervisor on purpose."""


class NotFound(EyrieError):
    """The instance (or other named thing) does not exist on disk."""


class NameExists(EyrieError):
    """An instance with this name already exists."""


class RequiredField(EyrieError, ValueError):
    """A required field is missing or empty."""


class UnsupportedFramework(EyrieError, ValueError):
    """The framework name has no definition."""


class InvalidName(EyrieError, ValueError):
    """A name is not a valid slug; the message says which rule it breaks."""


class InvalidID(EyrieError, ValueError):
    """An instance id would not be safe as a path component."""


class CorruptInstance(EyrieError):
    """An instance.json file exists but cannot be read as an instance."""


class PortsExhausted(EyrieError):
    """Every port in the instance range is taken."""


class PersonaError(EyrieError, ValueError):
    """A persona definition or one of its templates is invalid."""


class ProvisionError(EyrieError):
    """Provisioning failed; nothing was left behind."""


class FleetFileError(EyrieError, ValueError):
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
            where = f"{where}: {key}" if where else key
        super().__init__(f"{where}: {message}" if where else message)


class HierarchyError(EyrieError, ValueError):
    """The fleet breaks a hierarchy rule; the message names the instances involved."""


class IllegalTransition(EyrieError, RuntimeError):
    """The state table forbids this transition: a bug in the engine, never a user error."""


class StartFailed(EyrieError):
    """A process could not be started; the message is what goes into ``last_error``."""


class DaemonRunning(EyrieError):
    """Another eyried already owns this home."""

    def __init__(self, pid: int | None, home: str) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"eyried is already running for {home} ({who})")


class DaemonNotRunning(EyrieError):
    """No daemon answers on the control socket."""
