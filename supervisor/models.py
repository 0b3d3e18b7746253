"""The instance data model, compatible with the JSON that eyrie's Go ``instance`` package writes.

Models hold data and do no I/O. Times that Go writes as its zero value (``0001-01-01T00:00:00Z``) read as
``None``; keys this version does not know are kept and written back unchanged. The models a daemon's
start-up does not validate (`CreateRequest`, `MigrationResult`) build their validators on first use
(``defer_build``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from supervisor.errors import InvalidName

__all__ = [
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "ByteSize",
    "CreateRequest",
    "DesiredState",
    "Duration",
    "HealthStatus",
    "HierarchyRole",
    "Instance",
    "InstanceStatus",
    "LastExit",
    "LeanModel",
    "MigrationResult",
    "TemplateContext",
    "check_name",
    "display_name_for",
    "duration_within",
    "format_duration",
    "format_size",
    "new_instance_id",
    "parse_duration",
    "parse_size",
    "rfc3339",
    "utcnow",
]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SCHEMA_VERSION = 5
"""Version of the on-disk layout written by this release; `supervisor.migrate` brings older ones up.

It equals the version of the last migration in `supervisor.migrate.MIGRATIONS` (a test holds them together):
new instances are written at this version, so no migration ever runs on a freshly provisioned one."""

_GO_ZERO_YEAR = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_instance_id() -> str:
    return str(uuid.uuid4())


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid slug; otherwise raise `InvalidName` saying which rule it breaks."""
    if not isinstance(name, str):
        raise InvalidName(f"name must be a string, not {type(name).__name__}")
    if name == "":
        raise InvalidName("name is empty")
    if len(name) > 63:
        raise InvalidName(f"name {name[:20]!r}… is {len(name)} characters long; the limit is 63")
    if any(c.isspace() for c in name):
        raise InvalidName(f"name {name!r} contains whitespace or a newline")
    if "/" in name or ".." in name or "\\" in name:
        raise InvalidName(f"name {name!r} contains a path separator or '..'")
    if name != name.lower():
        raise InvalidName(f"name {name!r} contains uppercase letters; use lowercase")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"name {name!r} is not a slug: use lowercase letters, digits and '-',"
            " starting with a letter or digit"
        )
    return name


def display_name_for(name: str) -> str:
    """``strategist-sarah`` → ``Strategist Sarah``."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split("-") if part)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``250ms``, ``10s``, ``5m``, ``1h``, ``30d`` or a number of seconds → seconds as a float."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration must be a finite number of seconds: {value!r}")
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError(f"not a duration: {value!r} (use e.g. 250ms, 10s, 5m or a number of seconds)")


def format_duration(seconds: float) -> str | float:
    """The shortest exact spelling `parse_duration` reads back: ``0.25`` → ``250ms``, ``300`` → ``5m``."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; accepts ``250ms``, ``10s``, ``5m``, ``1h`` or a plain number."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def parse_size(value: Any) -> int:
    """``512MiB``, ``1.5GiB``, ``2G`` (decimal), ``100k`` or a number of bytes → bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        unit = (m.group(2) or "").lower().removesuffix("b")
        factor = 1024 ** ("kmgt".index(unit[0]) + 1) if unit.endswith("i") else _SIZE_UNITS[unit]
        return int(float(m.group(1)) * factor)
    raise ValueError(f"not a size: {value!r} (use e.g. 512MiB, 1.5GiB, 2G or a number of bytes)")


def format_size(size: float) -> str:
    """Bytes in binary units, to one decimal: ``1.5 GiB``, ``300 MiB``, ``512 B``."""
    value = float(size)
    for unit in _BINARY_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + f" {_BINARY_UNITS[-1]}"


ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""Bytes; accepts ``512MiB``, ``1.5GiB``, ``2G``, ``100k`` or a plain number."""


def duration_within(low: float, high: float) -> AfterValidator:
    """Refuses a duration outside ``[low, high]`` seconds, saying the range in the file's own units.

    Every duration a process runs by has bounds: zero can make a loop spin, a huge one overflows the
    clock arithmetic that schedules the next step.
    """

    def check(seconds: float) -> float:
        if not low <= seconds <= high:
            raise ValueError(
                f"must be between {format_duration(low)} and {format_duration(high)} (got {seconds:g}s)"
            )
        return seconds

    return AfterValidator(check)


def _go_time(value: Any) -> Any:
    """Go's zero ``time.Time`` and empty strings mean "not set"."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.startswith("0001-01-01"):
        return None
    if isinstance(value, datetime) and value.year == _GO_ZERO_YEAR:
        return None
    return value


def _aware(value: datetime | None) -> datetime | None:
    """A time written without an offset is read as UTC, so every time compares with every other."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def rfc3339(value: datetime | None) -> str | None:
    """A time as ``instance.json`` and the API write it: RFC 3339, UTC as ``Z``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


OptionalTime = Annotated[
    datetime | None,
    BeforeValidator(_go_time),
    AfterValidator(_aware),
    PlainSerializer(rfc3339, return_type=str | None),
]


class InstanceStatus(StrEnum):
    """Lifecycle state of an instance: exactly the seed's five. Finer detail lives in ``status_detail``."""

    CREATED = "created"  # provisioned, never started
    STARTING = "starting"  # spawned, waiting for the readiness probe
    RUNNING = "running"  # ready; liveness probes keep it honest
    STOPPED = "stopped"  # not running, and that is expected (or waiting out a backoff)
    ERROR = "error"  # failed: crash loop, failed start, or an unrecoverable problem

    def valid(self) -> bool:
        return True


class HierarchyRole(StrEnum):
    """Role in the agent hierarchy; the empty string is a standalone instance."""

    COMMANDER = "commander"
    CAPTAIN = "captain"
    TALON = "talon"
    STANDALONE = ""


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


DesiredState = Literal["running", "stopped"]


class _UntrackedFields(set[str]):
    """The one fields-set all `LeanModel` objects share: adding to it through Python does nothing.

    pydantic's own field assignment adds through the C API, so it may hold a few names: they mean nothing.
    """

    __slots__ = ()

    def add(self, element: str) -> None:
        pass

    def update(self, *others: Iterable[str]) -> None:
        pass

    def __copy__(self) -> _UntrackedFields:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _UntrackedFields:
        return self


_UNTRACKED = _UntrackedFields()


class LeanModel(BaseModel):
    """A model that does not track which fields were set: one is kept per instance, in several copies.

    pydantic keeps a set of the names set on each object (and copies it with the object): for a record of
    ~40 fields that set is ~2.2 KB, more than the object's values. Nothing dumps these models with
    ``exclude_unset`` or reads ``model_fields_set``, which would see nothing here.
    """

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "__pydantic_fields_set__", _UNTRACKED)


class LastExit(LeanModel):
    """How the instance's process last ended: exit code or signal, and when."""

    model_config = ConfigDict(extra="allow")

    code: int | None = None
    signal: int | None = None
    time: OptionalTime = None
    reason: str = ""
    """Why the supervisor ended it, when it did: "memory limit 1.5 GiB exceeded (1.7 GiB)"."""

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit code {self.code}"


class Instance(LeanModel):
    """A named, configured agent deployment: its own config, workspace, port and process."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, use_enum_values=False)

    # --- the seed's fields, with its JSON keys
    id: str = ""
    name: str = ""
    display_name: str = ""
    framework: str = ""
    persona_id: str = ""
    hierarchy_role: HierarchyRole = HierarchyRole.STANDALONE
    project_id: str = ""
    parent_id: str = ""
    port: int = 0
    config_path: str = ""
    workspace_path: str = ""
    auth_token: str = Field(default="", exclude=True, repr=False)
    status: InstanceStatus = InstanceStatus.CREATED
    status_updated_at: OptionalTime = None
    pid: int | None = None
    last_seen: OptionalTime = None
    health_status: HealthStatus | None = None
    restart_count: int = 0
    created_at: OptionalTime = None
    created_by: str = ""

    # --- supervisor runtime detail (the five statuses stay the seed's)
    schema_version: int = 0
    model: str = ""
    desired: DesiredState | None = None
    desired_boot_id: str = ""
    status_detail: str = ""
    phase: str | None = None  # what the engine's actor is doing now (`supervisor.engine.states.Phase`)
    next_start_at: OptionalTime = None
    started_at: OptionalTime = None
    pgid: int | None = None
    proc_start_time: float | None = None
    boot_id: str = ""
    cmdline: list[str] | None = None
    last_exit: LastExit | None = None
    last_error: str = ""
    config_hash: str = ""
    launch_hash: str = ""
    sandbox: str = ""  # how the running process is confined: `landlock v7`, `unavailable`, `off`
    total_restarts: int = 0

    @field_validator("pid", "pgid", mode="before")
    @classmethod
    def _zero_is_none(cls, v: Any) -> Any:
        return None if v in (0, None) else v

    @field_validator("health_status", mode="before")
    @classmethod
    def _empty_health(cls, v: Any) -> Any:
        return None if v == "" else v

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object written to ``instance.json`` and returned by the API: no secrets.

        Unset optional fields are left out (as Go's ``omitempty`` does); keys this version does not know are
        written back exactly as they were read, ``null`` included.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        for key, value in (self.model_extra or {}).items():
            if value is None:
                data[key] = None
        return data


class CreateRequest(BaseModel):
    """What provisioning a new instance needs; names are validated here, before anything touches disk."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = ""
    framework: str = ""
    persona_id: str = ""
    hierarchy_role: HierarchyRole = HierarchyRole.STANDALONE
    project_id: str = ""
    parent_id: str = ""
    model: str = ""
    auto_start: bool | None = None
    created_by: str = ""
    display_name: str = ""
    # Project context, filled by the caller (never from an API body) for the identity templates.
    parent_name: str = Field(default="", exclude=True)
    project_name: str = Field(default="", exclude=True)
    project_goal: str = Field(default="", exclude=True)
    project_description: str = Field(default="", exclude=True)


class MigrationResult(BaseModel):
    """What migrating one instance did."""

    model_config = ConfigDict(defer_build=True)

    instance_id: str
    instance_name: str = ""
    framework: str = ""
    applied: list[str] = Field(default_factory=list)
    skipped: bool = False
    error: str = ""


class TemplateContext(BaseModel):
    """The values identity templates may use (``{{ name }}``, ``{{ project_goal }}``, …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    display_name: str
    role: str = ""
    description: str = ""
    parent_agent: str = ""
    eyrie_url: str = ""
    framework: str = ""
    project_name: str = ""
    project_goal: str = ""
    project_description: str = ""
