"""A framework definition is data: how to run it, probe it and stop it. Python code only renders configs."""

from __future__ import annotations

import re
import signal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supervisor.models import Duration, duration_within
from supervisor.sandbox.setting import SandboxSetting

__all__ = ["MAX_STOP_TIMEOUT", "FrameworkSpec", "Probe", "ProbeKind", "merge_overrides"]

MAX_STOP_TIMEOUT = 3600.0
"""The longest a process may be given to stop, so the unit's ``TimeoutStopSec`` (the longest one plus a
margin) stays bounded too."""


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProbeKind(StrEnum):
    HTTP = "http"  # GET path on 127.0.0.1:port, status == expect
    TCP = "tcp"  # connect to 127.0.0.1:port
    LOG = "log"  # regex `pattern` matches output written since the process started
    EXEC = "exec"  # `command` exits 0 (placeholders expanded)
    PROCESS = "process"  # the process stayed alive for `seconds`


class Probe(BaseModel):
    """One readiness or liveness check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProbeKind
    path: str = "/health"
    expect: int = Field(default=200, ge=100, le=599)
    pattern: str = ""
    command: list[str] = Field(default_factory=list)
    seconds: Annotated[Duration, duration_within(0.0, 3600.0)] = 0.0

    @model_validator(mode="after")
    def _can_pass(self) -> Probe:
        """Refuse, at load, a probe that could never pass: it would stop its instance at every start."""
        if self.kind == ProbeKind.EXEC and (not self.command or not self.command[0]):
            raise ValueError("an exec probe needs a command (a list naming a program, e.g. [curl, -f, URL])")
        if self.kind == ProbeKind.LOG and not self.pattern:
            raise ValueError("a log probe needs a pattern (a regular expression)")
        return self


class FrameworkSpec(BaseModel):
    """How one framework runs. ``command`` and ``env`` values may use the placeholders ``{port}``,
    ``{config}``, ``{instance_dir}``, ``{workspace}``, ``{name}``, ``{id}``, ``{python}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    config_format: Literal["json", "toml", "yaml"] = "json"
    config_file: str = "config.json"
    """Relative to the instance directory: a bare name, or ``state/<name>`` for a framework that reads its
    config from its home (which is then the state directory)."""
    token_env: str = ""
    """The variable the agent's token is put in, for a framework that can take it no other way; empty: the
    token reaches it only by file (``EYRIE_AUTH_TOKEN_FILE``) and in its rendered config."""
    ready: Probe = Probe(kind=ProbeKind.TCP)
    live: Probe | None = None
    stop_signal: str = "SIGTERM"
    stop_timeout: Annotated[Duration, duration_within(0.0, MAX_STOP_TIMEOUT)] = 30.0
    sandbox: SandboxSetting = SandboxSetting()
    """Confinement: paths added to the policy (placeholders, ``{uid}`` and ``~`` allowed), or off."""
    reads_files: Literal["at_start", "live"] = "at_start"
    """When the framework reads its workspace files: ``at_start`` only (a change of the ``PROJECT.md``
    eyried keeps restarts it), or ``live`` (it sees the new file without a restart)."""

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v or not v[0]:
            raise ValueError("command must name a program")
        return v

    @field_validator("token_env")
    @classmethod
    def _variable_name(cls, v: str) -> str:
        if v and not _ENV_NAME.fullmatch(v):
            raise ValueError(f"token_env {v!r} is not an environment variable name")
        return v

    @field_validator("stop_signal")
    @classmethod
    def _known_signal(cls, v: str) -> str:
        name = v.upper() if v.upper().startswith("SIG") else f"SIG{v.upper()}"
        if not isinstance(getattr(signal, name, None), signal.Signals):
            raise ValueError(f"unknown signal {v!r}")
        return name

    @property
    def stop_signum(self) -> signal.Signals:
        return signal.Signals[self.stop_signal]


_FRAMEWORK_KEYS = frozenset(
    {"command", "env", "ready", "live", "stop_signal", "stop_timeout", "token_env", "sandbox", "reads_files"}
)


def merge_overrides(base: FrameworkSpec, overrides: dict[str, Any]) -> FrameworkSpec:
    """Apply fleet-file overrides key by key (``env`` merges per variable, ``sandbox`` adds its paths and
    ``off`` wins; a probe replaces the probe)."""
    unknown = set(overrides) - _FRAMEWORK_KEYS - {"config_format", "config_file"}
    if unknown:
        raise ValueError(f"unknown framework key(s): {', '.join(sorted(unknown))}")
    data = base.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "env":
            data["env"] = {**data["env"], **value}
        elif key == "sandbox":
            data["sandbox"] = base.sandbox.plus(SandboxSetting.model_validate(value)).model_dump()
        else:
            data[key] = value
    return FrameworkSpec.model_validate(data)
