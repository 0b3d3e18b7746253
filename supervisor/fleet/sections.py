"""The sections of a fleet file, as pydantic models that refuse unknown keys: a typo is an error, never a
default.

Each section checks only its own keys; what needs the whole file (unique names, frameworks that exist,
defaults merged into instances) is checked by `supervisor.fleet.schema.FleetFile`.
"""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from supervisor.fleet._fields import Env, FleetDuration, NoneIsEmpty, Secrets
from supervisor.frameworks.spec import MAX_STOP_TIMEOUT, Probe
from supervisor.models import ByteSize, HierarchyRole, check_name, duration_within
from supervisor.paths import ID_PATTERN, STATE_DIR
from supervisor.policies import HealthPolicy, LogPolicy, MemoryPolicy, RestartPolicy
from supervisor.ports import PORT_RANGE_END, PORT_RANGE_START, PortRange
from supervisor.sandbox.setting import SandboxSetting

__all__ = [
    "TRASH_RETENTION",
    "AgentAPISettings",
    "ControlTCP",
    "DaemonSettings",
    "Defaults",
    "FrameworkOverride",
    "HealthOverride",
    "InstanceDecl",
    "LogOverride",
    "NotifyHook",
    "PortSettings",
    "ProjectDecl",
    "RestartOverride",
    "Section",
]


class _SharedKeys(set[str]):
    """The keys a fleet file set on a section, one set shared by every section that set the same keys: a
    section is frozen, so nothing adds to it (a fleet of 1,000 instances that each set only ``name`` held
    1,000 sets of ~0.2 KB). A copy, as pydantic's ``model_copy`` makes before it adds keys, is a set of its
    own; changing the shared one in place is refused."""

    __slots__ = ()

    def __copy__(self) -> set[str]:
        return set(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> set[str]:
        return set(self)

    def _refuse(self, *args: Any) -> None:
        raise TypeError("the keys set on a fleet-file section are shared: change a copy")

    add = discard = remove = update = difference_update = intersection_update = _refuse
    symmetric_difference_update = clear = pop = __ior__ = __iand__ = __isub__ = __ixor__ = _refuse  # type: ignore[assignment]


_SHARED_KEYS: dict[frozenset[str], _SharedKeys] = {}


class Section(BaseModel):
    """A part of the fleet file: immutable, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_post_init(self, context: Any, /) -> None:
        keys = frozenset(self.__pydantic_fields_set__)
        shared = _SHARED_KEYS.get(keys)
        if shared is None:
            shared = _SHARED_KEYS.setdefault(keys, _SharedKeys(keys))
        object.__setattr__(self, "__pydantic_fields_set__", shared)


# --- daemon settings -------------------------------------------------------------------------------


class ControlTCP(Section):
    """The optional TCP listener for the control API (bearer token from a 0600 file); off by default."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    token_file: str = "run/control.token"

    @field_validator("host")
    @classmethod
    def _ip_or_localhost(cls, v: str) -> str:
        if v != "localhost":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(f"host {v!r} is not an IP address or 'localhost'") from None
        return v

    @model_validator(mode="after")
    def _port_when_enabled(self) -> ControlTCP:
        if self.enabled and self.port is None:
            raise ValueError("control_tcp is enabled but has no port")
        return self

    def token_path(self, home: Path) -> Path:
        """``token_file``, relative to the home directory unless absolute."""
        path = Path(self.token_file).expanduser()
        return path if path.is_absolute() else home / path


class AgentAPISettings(Section):
    """The agents' own API on loopback TCP: on by default, its port remembered under ``run/`` unless pinned
    here; ``max_children`` bounds the live instances one agent may have created."""

    enabled: bool = True
    port: int | None = Field(default=None, ge=1024, le=65535)
    max_children: int = Field(default=8, ge=0, le=1000)


TRASH_RETENTION = 30 * 86400.0
"""Seconds a removed instance stays in the trash unless the fleet file says otherwise: 30 days."""


class PortSettings(Section):
    """Where instance ports come from, and what happens when a stranger holds one at start: ``move`` the
    instance to a free port (config re-rendered), or ``fail`` its start."""

    first: int = Field(default=PORT_RANGE_START, ge=1024, le=65535)
    last: int = Field(default=PORT_RANGE_END, ge=1024, le=65535)
    on_conflict: Literal["move", "fail"] = "move"

    @model_validator(mode="after")
    def _ordered(self) -> PortSettings:
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is above last ({self.last})")
        return self

    def span(self) -> PortRange:
        return PortRange(self.first, self.last)


class DaemonSettings(Section):
    """Settings of eyried itself."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    control_tcp: NoneIsEmpty[ControlTCP] = ControlTCP()
    agent_api: NoneIsEmpty[AgentAPISettings] = AgentAPISettings()
    trash_retention: FleetDuration = TRASH_RETENTION
    """How long a removed instance's directory stays in ``removed/`` before the daemon deletes it."""
    ports: NoneIsEmpty[PortSettings] = PortSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


# --- notify hooks ----------------------------------------------------------------------------------

NotifyOn = Literal["error", "crash_loop", "memory_restart", "reload_rejected"]
_MAX_HOOK_TIMEOUT = 300.0


def _argv(v: list[str]) -> list[str]:
    if not v or not v[0]:
        raise ValueError("command needs at least the program to run")
    if any("\0" in arg for arg in v):
        raise ValueError("command contains a NUL byte")
    return v


def _hook_url(v: str) -> str:
    scheme, sep, rest = v.partition("://")
    if scheme.lower() not in ("http", "https") or not sep or not rest.split("/", 1)[0]:
        raise ValueError(f"url must be an http:// or https:// URL with a host, not {v!r}")
    if any(ch.isspace() or ch == "\0" for ch in v):
        raise ValueError("url contains white space")
    return v


class NotifyHook(Section):
    """A ``notify`` entry: when one of the events ``on`` happens, run ``command`` (an argv list, never a
    shell; the payload as JSON on stdin) or POST the payload to ``url``, within ``timeout``."""

    on: Annotated[list[NotifyOn], Field(min_length=1)]
    command: Annotated[list[str], AfterValidator(_argv)] | None = None
    url: Annotated[str, AfterValidator(_hook_url)] | None = None
    timeout: Annotated[FleetDuration, duration_within(0.1, _MAX_HOOK_TIMEOUT)] = 10.0

    @model_validator(mode="after")
    def _one_action(self) -> NotifyHook:
        if (self.command is None) == (self.url is None):
            raise ValueError("a notify hook has either a command or a url")
        return self


def _instance_hooks(hooks: list[NotifyHook]) -> list[NotifyHook]:
    if any("reload_rejected" in hook.on for hook in hooks):
        raise ValueError("reload_rejected concerns the daemon, not one instance: set it in defaults.notify")
    return hooks


MemoryLimit = Annotated[ByteSize, Field(ge=1024 * 1024, le=1024**5)]
"""``max_memory``: the most the instance's process tree may hold (RSS summed), from 1MiB."""
MemoryGrace = Annotated[int, Field(ge=1, le=1000)]
"""``memory_grace``: samples in a row above ``max_memory`` before the tree is restarted."""


class Defaults(Section):
    """Policies every instance gets unless it sets its own keys."""

    notify: NoneIsEmpty[list[NotifyHook]] = Field(default_factory=list)
    """Hooks for every instance's events (an instance's own ``notify`` adds to them) and the daemon's."""
    restart: NoneIsEmpty[RestartPolicy] = RestartPolicy()
    health: NoneIsEmpty[HealthPolicy] = HealthPolicy()
    stop_timeout: Annotated[FleetDuration, duration_within(0.0, MAX_STOP_TIMEOUT)] | None = None
    logs: NoneIsEmpty[LogPolicy] = LogPolicy()
    secrets: NoneIsEmpty[Secrets] = Field(default_factory=dict)
    """Provider secrets every instance gets (variable → secret name), merged per variable."""
    max_memory: MemoryLimit | None = None
    memory_grace: MemoryGrace = MemoryPolicy().grace

    def memory(self, decl: InstanceDecl) -> MemoryPolicy:
        """The instance's memory limit: its own keys over these."""
        limit = decl.max_memory if decl.max_memory is not None else self.max_memory
        grace = decl.memory_grace if decl.memory_grace is not None else self.memory_grace
        return _memory_policy(limit, grace)


@functools.lru_cache(maxsize=64)
def _memory_policy(limit: int | None, grace: int) -> MemoryPolicy:
    """One frozen policy per limit and grace, shared by the instances that have them (most have the
    defaults'): each resolved instance holds one, and a policy of its own was ~0.5 KB."""
    return MemoryPolicy(max_memory=limit, grace=grace)


# --- partial overrides: the same keys as the policies, each optional ----------------------------------


class RestartOverride(Section):
    """Instance keys that replace the matching keys of ``defaults.restart``."""

    policy: Literal["always", "on-failure", "never"] | None = None
    initial_delay: FleetDuration | None = None
    factor: float | None = None
    max_delay: FleetDuration | None = None
    jitter: float | None = None
    reset_after: FleetDuration | None = None
    max_retries: int | None = None
    cooldown: FleetDuration | None = None


class HealthOverride(Section):
    """Instance keys that replace the matching keys of ``defaults.health``."""

    interval: FleetDuration | None = None
    timeout: FleetDuration | None = None
    failure_threshold: int | None = None
    start_timeout: FleetDuration | None = None


class LogOverride(Section):
    """Instance keys that replace the matching keys of ``defaults.logs``."""

    max_bytes: int | None = None
    backups: int | None = None


def _config_file_name(v: str | None) -> str | None:
    if v is None:
        return v
    name = v.removeprefix(f"{STATE_DIR}/")
    if Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(
            f"config_file {v!r} must be a bare file name (kept in the instance directory, read-only to the"
            f" agent) or {STATE_DIR}/<name> (in its state directory, for a framework that reads its config"
            " from its home)"
        )
    return v


class FrameworkOverride(Section):
    """A ``frameworks:`` entry: keys replace the built-in definition's; a new framework needs a command."""

    command: list[str] | None = None
    env: Env | None = None
    ready: Probe | None = None
    live: Probe | None = None
    stop_signal: str | None = None
    stop_timeout: FleetDuration | None = None
    config_format: Literal["json", "toml", "yaml"] | None = None
    config_file: Annotated[str | None, AfterValidator(_config_file_name)] = None
    token_env: str | None = None
    secrets: NoneIsEmpty[Secrets] = Field(default_factory=dict)
    """Provider secrets every instance of this framework gets, over ``defaults.secrets``."""
    sandbox: SandboxSetting | None = None
    reads_files: Literal["at_start", "live"] | None = None
    """When the framework reads its workspace files: ``at_start`` (a new ``PROJECT.md`` restarts it) or
    ``live``."""

    def overrides(self) -> dict[str, Any]:
        """The keys that are set, ready for `supervisor.frameworks.spec.merge_overrides`."""
        return {
            key: getattr(self, key)
            for key in self.model_fields_set
            if key != "secrets" and getattr(self, key) is not None
        }


# --- projects ----------------------------------------------------------------------------------------

_MAX_PROJECT_NAME = 80
_MAX_PROJECT_GOAL = 500
_MAX_PROJECT_DESCRIPTION = 4000


def _one_line(what: str) -> Any:
    def check(v: str) -> str:
        v = v.strip()
        if any(ch in v for ch in "\r\n\0"):
            raise ValueError(f"{what} must be one line (a longer text goes in description)")
        return v

    return AfterValidator(check)


def _text(v: str) -> str:
    if "\0" in v:
        raise ValueError("description contains a NUL byte")
    return v.strip()


class ProjectDecl(Section):
    """A ``projects:`` entry, keyed by the id instances name in ``project``: what its agents are told in
    their ``PROJECT.md``. Every key is optional; the name defaults to the id."""

    name: NoneIsEmpty[Annotated[str, Field(max_length=_MAX_PROJECT_NAME), _one_line("name")]] = ""
    goal: NoneIsEmpty[Annotated[str, Field(max_length=_MAX_PROJECT_GOAL), _one_line("goal")]] = ""
    description: NoneIsEmpty[
        Annotated[str, Field(max_length=_MAX_PROJECT_DESCRIPTION), AfterValidator(_text)]
    ] = ""


# --- instances ---------------------------------------------------------------------------------------

_FRAMEWORK_KEYS = ("command", "env", "ready", "live", "stop_signal", "stop_timeout", "sandbox")


def _safe_id(what: str) -> Any:
    def check(v: str) -> str:
        if v and not ID_PATTERN.fullmatch(v):
            raise ValueError(f"{what} {v!r} may use only letters, digits, '_' and '-'")
        return v

    return AfterValidator(check)


class InstanceDecl(Section):
    """One declared instance: who it is, what runs it, and any keys that differ from the defaults."""

    name: str
    framework: str = "embedded"
    role: HierarchyRole = HierarchyRole.STANDALONE
    persona: NoneIsEmpty[Annotated[str, _safe_id("persona")]] = ""
    project: NoneIsEmpty[Annotated[str, _safe_id("project")]] = ""
    parent: NoneIsEmpty[str] = ""
    model: NoneIsEmpty[str] = ""
    created_by: NoneIsEmpty[Annotated[str, _safe_id("created_by")]] = ""
    """The id of the agent that created this instance through the agent API; empty when a person did."""
    autostart: bool = True
    pin_port: bool = False
    """Keep this instance's port: a stranger holding it fails the start instead of moving the instance."""
    env: NoneIsEmpty[Env] = Field(default_factory=dict)
    secrets: NoneIsEmpty[Secrets] = Field(default_factory=dict)
    """Provider secrets of this instance (variable → secret name), over its framework's and the defaults'."""
    notify: NoneIsEmpty[Annotated[list[NotifyHook], AfterValidator(_instance_hooks)]] = Field(
        default_factory=list
    )
    """Hooks for this instance's events, in addition to ``defaults.notify``."""
    # framework keys, per instance
    command: list[str] | None = None
    ready: Probe | None = None
    live: Probe | None = None
    stop_signal: str | None = None
    stop_timeout: FleetDuration | None = None
    sandbox: SandboxSetting | None = None
    """``off``, or paths added to the framework's (supervisor.sandbox.setting)."""
    # policy keys, per instance
    restart: RestartOverride | None = None
    health: HealthOverride | None = None
    logs: LogOverride | None = None
    max_memory: MemoryLimit | None = None
    memory_grace: MemoryGrace | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        return check_name(v)

    @field_validator("parent")
    @classmethod
    def _parent_slug(cls, v: str) -> str:
        return check_name(v) if v else v

    @field_validator("role", mode="before")
    @classmethod
    def _standalone(cls, v: Any) -> Any:
        return "" if v is None or v == "standalone" else v

    def framework_overrides(self) -> dict[str, Any]:
        """The framework keys this instance sets (``env`` only when non-empty)."""
        out = {key: getattr(self, key) for key in _FRAMEWORK_KEYS if getattr(self, key) is not None}
        if not self.env:
            out.pop("env", None)
        return out
