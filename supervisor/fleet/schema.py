"""The fleet file's shape, as pydantic models that refuse unknown keys: a typo is an error, never a default.

``FleetFile`` is the whole file; validating one also resolves every instance (built-in framework ← the
file's ``frameworks:`` ← the instance's own keys; ``defaults`` ← the instance's policy keys), so a file that
validates is a file the engine can run. Errors carry the key path of the offending value; the loader turns
that path into a line number.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from supervisor.errors import NotFound
from supervisor.fleet.policy import HealthPolicy, LogPolicy, RestartPolicy
from supervisor.fleet.resolved import ResolutionProblem, ResolvedInstance, Resolver
from supervisor.frameworks.spec import Probe
from supervisor.models import NAME_PATTERN, HierarchyRole, check_name, parse_duration
from supervisor.paths import ID_PATTERN

__all__ = [
    "ControlTCP",
    "DaemonSettings",
    "Defaults",
    "FleetDuration",
    "FleetFile",
    "FrameworkOverride",
    "HealthOverride",
    "InstanceDecl",
    "LogOverride",
    "RestartOverride",
    "format_duration",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_duration(seconds: float) -> str | float:
    """The shortest exact spelling: ``0.25`` → ``250ms``, ``90`` → ``90s``, ``300`` → ``5m``."""
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001)):
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return seconds


FleetDuration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str | float, when_used="json"),
]
"""Seconds; accepts ``250ms``, ``10s``, ``5m``, ``1h`` or a number; written back in the short form."""


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"environment variable name {name!r} is invalid: use letters, digits and '_', not starting"
            " with a digit"
        )
    return name


def _env_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("environment value contains a NUL byte")
    return value


Env = dict[
    Annotated[str, AfterValidator(_env_name)],
    Annotated[str, BeforeValidator(_env_value), AfterValidator(_no_nul)],
]


def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value


def _blank_if_none(value: Any) -> Any:
    return "" if value is None else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- daemon settings -------------------------------------------------------------------------------


class ControlTCP(_Section):
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


class DaemonSettings(_Section):
    """Settings of eyried itself."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    control_tcp: ControlTCP = ControlTCP()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("control_tcp", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return _empty_if_none(v)


class Defaults(_Section):
    """Policies every instance gets unless it sets its own keys."""

    restart: RestartPolicy = RestartPolicy()
    health: HealthPolicy = HealthPolicy()
    stop_timeout: FleetDuration | None = None
    logs: LogPolicy = LogPolicy()

    @field_validator("restart", "health", "logs", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return _empty_if_none(v)


# --- partial overrides: the same keys as the policies, each optional ----------------------------------


class RestartOverride(_Section):
    """Instance keys that replace the matching keys of ``defaults.restart``."""

    policy: Literal["always", "on-failure", "never"] | None = None
    initial_delay: FleetDuration | None = None
    factor: float | None = None
    max_delay: FleetDuration | None = None
    jitter: float | None = None
    reset_after: FleetDuration | None = None
    max_retries: int | None = None
    cooldown: FleetDuration | None = None


class HealthOverride(_Section):
    """Instance keys that replace the matching keys of ``defaults.health``."""

    interval: FleetDuration | None = None
    timeout: FleetDuration | None = None
    failure_threshold: int | None = None
    start_timeout: FleetDuration | None = None


class LogOverride(_Section):
    """Instance keys that replace the matching keys of ``defaults.logs``."""

    max_bytes: int | None = None
    backups: int | None = None


def _config_file_name(v: str | None) -> str | None:
    if v is not None and (Path(v).name != v or v in ("", ".", "..")):
        raise ValueError(f"config_file {v!r} must be a bare file name (it lives in the instance directory)")
    return v


class FrameworkOverride(_Section):
    """A ``frameworks:`` entry: keys replace the built-in definition's; a new framework needs a command."""

    command: list[str] | None = None
    env: Env | None = None
    ready: Probe | None = None
    live: Probe | None = None
    stop_signal: str | None = None
    stop_timeout: FleetDuration | None = None
    config_format: Literal["json", "toml", "yaml"] | None = None
    config_file: Annotated[str | None, AfterValidator(_config_file_name)] = None

    def overrides(self) -> dict[str, Any]:
        """The keys that are set, ready for `supervisor.frameworks.spec.merge_overrides`."""
        return {key: getattr(self, key) for key in self.model_fields_set if getattr(self, key) is not None}


# --- instances ---------------------------------------------------------------------------------------

_FRAMEWORK_KEYS = ("command", "env", "ready", "live", "stop_signal", "stop_timeout")


def _safe_id(what: str) -> Any:
    def check(v: str) -> str:
        if v and not ID_PATTERN.fullmatch(v):
            raise ValueError(f"{what} {v!r} may use only letters, digits, '_' and '-'")
        return v

    return AfterValidator(check)


class InstanceDecl(_Section):
    """One declared instance: who it is, what runs it, and any keys that differ from the defaults."""

    name: str
    framework: str = "embedded"
    role: HierarchyRole = HierarchyRole.STANDALONE
    persona: Annotated[str, _safe_id("persona")] = ""
    project: Annotated[str, _safe_id("project")] = ""
    parent: str = ""
    model: str = ""
    autostart: bool = True
    env: Env = Field(default_factory=dict)
    # framework keys, per instance
    command: list[str] | None = None
    ready: Probe | None = None
    live: Probe | None = None
    stop_signal: str | None = None
    stop_timeout: FleetDuration | None = None
    # policy keys, per instance
    restart: RestartOverride | None = None
    health: HealthOverride | None = None
    logs: LogOverride | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        return check_name(v)

    @field_validator("parent")
    @classmethod
    def _parent_slug(cls, v: str) -> str:
        return check_name(v) if v else v

    @field_validator("persona", "project", "parent", "model", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return _blank_if_none(v)

    @field_validator("role", mode="before")
    @classmethod
    def _standalone(cls, v: Any) -> Any:
        return "" if v is None or v == "standalone" else v

    @field_validator("env", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return _empty_if_none(v)

    def framework_overrides(self) -> dict[str, Any]:
        """The framework keys this instance sets (``env`` only when non-empty)."""
        out = {key: getattr(self, key) for key in _FRAMEWORK_KEYS if getattr(self, key) is not None}
        if not self.env:
            out.pop("env", None)
        return out


# --- the file ----------------------------------------------------------------------------------------


def _framework_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"framework name {name!r} is not a slug (lowercase letters, digits and '-')")
    return name


class FleetFile(_Section):
    """The whole fleet file: daemon settings, defaults, framework overrides and the declared instances."""

    version: Literal[1]
    daemon: DaemonSettings = DaemonSettings()
    defaults: Defaults = Defaults()
    frameworks: dict[Annotated[str, AfterValidator(_framework_name)], FrameworkOverride] = Field(
        default_factory=dict
    )
    instances: list[InstanceDecl] = Field(default_factory=list)

    _resolved: dict[str, ResolvedInstance] = PrivateAttr(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _supported(cls, v: Any) -> Any:
        if v != 1 or isinstance(v, bool):
            raise ValueError(f"unsupported fleet file version {v!r}; this release reads version 1")
        return v

    @field_validator("daemon", "defaults", "frameworks", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return _empty_if_none(v)

    @field_validator("instances", mode="before")
    @classmethod
    def _none_is_no_instances(cls, v: Any) -> Any:
        return [] if v is None else v

    @model_validator(mode="after")
    def _resolve(self) -> FleetFile:
        problems: list[InitErrorDetails] = []
        first_at: dict[str, int] = {}
        for index, decl in enumerate(self.instances):
            if decl.name in first_at:
                problems.append(
                    {
                        "type": PydanticCustomError(
                            "duplicate_name",
                            "instance name '{name}' is declared more than once",
                            {"name": decl.name, "first": first_at[decl.name]},
                        ),
                        "loc": ("instances", index, "name"),
                        "input": decl.name,
                    }
                )
            else:
                first_at[decl.name] = index
        resolver = Resolver(self.defaults, self.frameworks)
        resolved: dict[str, ResolvedInstance] = {}
        try:
            resolver.check_frameworks()
        except ResolutionProblem as exc:
            problems.extend(exc.details)
        for index, decl in enumerate(self.instances):
            try:
                resolved.setdefault(decl.name, resolver.resolve(index, decl))
            except ResolutionProblem as exc:
                problems.extend(exc.details)
        if problems:
            raise ValidationError.from_exception_data("FleetFile", problems)
        self._resolved = resolved
        return self

    # --- queries

    def names(self) -> list[str]:
        """Instance names in file order."""
        return [decl.name for decl in self.instances]

    def decl(self, name: str) -> InstanceDecl:
        """The instance as declared; `NotFound` for a name the file does not declare."""
        for decl in self.instances:
            if decl.name == name:
                return decl
        raise NotFound(f"instance {name!r} is not declared in the fleet file")

    def resolve(self, name: str) -> ResolvedInstance:
        """The instance with every default and override applied."""
        try:
            return self._resolved[name]
        except KeyError:
            raise NotFound(f"instance {name!r} is not declared in the fleet file") from None

    def resolve_all(self) -> dict[str, ResolvedInstance]:
        """Name → resolved instance, in file order."""
        return dict(self._resolved)
