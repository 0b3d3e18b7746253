"""An instance with every layer of the fleet file applied: what the engine runs and what a reload compares.

Precedence, lowest first:

* framework keys: built-in definition ← ``defaults.stop_timeout`` ← ``frameworks.<name>`` ← the instance's
  own keys (``env`` merges per variable, ``sandbox`` adds its paths and ``off`` wins; any other key
  replaces the one below it);
* policies: ``defaults.restart`` / ``defaults.health`` / ``defaults.logs`` ← the instance's keys of the same
  name, key by key;
* provider secrets: ``defaults.secrets`` ← ``frameworks.<name>.secrets`` ← the instance's ``secrets``, per
  variable (the names only: a secret's value is read when the process is built, never here).

Three fingerprints split a changed instance in three kinds: a changed `process_fingerprint` needs a restart
(the argv, environment, rendered config or identity changed); a changed `context_fingerprint` (its project,
that project's name, goal or description, its parent) means a new ``PROJECT.md``, which restarts it only when
its framework reads its files at start; a changed `policy_fingerprint` alone applies live.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from supervisor.fleet.sections import Defaults, FrameworkOverride, InstanceDecl, ProjectDecl
from supervisor.frameworks.expand import PlaceholderValues, expand, expand_probe
from supervisor.frameworks.registry import builtin_frameworks
from supervisor.frameworks.sandbox_paths import expand_sandbox_paths
from supervisor.frameworks.spec import FrameworkSpec, merge_overrides
from supervisor.models import HierarchyRole, LeanModel
from supervisor.policies import HealthPolicy, LogPolicy, MemoryPolicy, RestartPolicy
from supervisor.project_file import ProjectContext

__all__ = ["ResolutionProblem", "ResolvedInstance", "Resolver"]

_PROCESS_KEYS = frozenset({"framework", "spec", "model", "persona", "role", "secrets"})
_CONTEXT_KEYS = frozenset({"project", "project_name", "project_goal", "project_description", "parent"})
_POLICY_KEYS = frozenset({"restart", "health", "logs", "memory", "autostart"})
_TEMPLATE_KEYS = ("command", "env", "ready", "live", "sandbox")

Loc = tuple[str | int, ...]
_P = TypeVar("_P", RestartPolicy, HealthPolicy, LogPolicy)


class ResolvedInstance(LeanModel):
    """One instance as it runs: its effective framework definition, policies and identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    framework: str
    spec: FrameworkSpec
    restart: RestartPolicy
    health: HealthPolicy
    logs: LogPolicy
    memory: MemoryPolicy = MemoryPolicy()
    autostart: bool = True
    model: str = ""
    persona: str = ""
    role: HierarchyRole = HierarchyRole.STANDALONE
    project: str = ""
    project_name: str = ""
    """The project's display name: ``projects.<id>.name``, else its id."""
    project_goal: str = ""
    project_description: str = ""
    parent: str = ""
    created_by: str = ""
    secrets: dict[str, str] = Field(default_factory=dict)
    """Environment variable → name of the secret file whose content it gets."""

    @property
    def env(self) -> dict[str, str]:
        """The environment templates the process gets (framework's, then the instance's own)."""
        return dict(self.spec.env)

    def process_fingerprint(self) -> str:
        """Changes when anything that shapes the process does: a restart is needed."""
        return self._process_digest

    def context_fingerprint(self) -> str:
        """Changes with what ``PROJECT.md`` tells the agent: its project and whom it reports to."""
        return self._context_digest

    # Computed once per (frozen) instance: every ``ps`` compares each instance's two fingerprints.
    @functools.cached_property
    def _process_digest(self) -> str:
        return _digest(self.model_dump(mode="json", include=set(_PROCESS_KEYS)))

    @functools.cached_property
    def _context_digest(self) -> str:
        return _digest(self.model_dump(mode="json", include=set(_CONTEXT_KEYS)))

    def project_context(self) -> ProjectContext:
        """What this instance's ``PROJECT.md`` says."""
        return ProjectContext(
            project_id=self.project,
            project_name=self.project_name,
            goal=self.project_goal,
            description=self.project_description,
            parent_name=self.parent,
        )

    def policy_fingerprint(self) -> str:
        """Changes with the restart, health and log policies and autostart: applied without a restart."""
        return _digest(self.model_dump(mode="json", include=set(_POLICY_KEYS)))


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ResolutionProblem(Exception):
    """Raised by `Resolver` with pydantic error details located in the fleet file."""

    def __init__(self, details: list[InitErrorDetails]) -> None:
        super().__init__(f"{len(details)} problem(s)")
        self.details = details


def _problem(loc: Loc, reason: str) -> InitErrorDetails:
    return {
        "type": PydanticCustomError("fleet_resolution", "{reason}", {"reason": reason}),
        "loc": loc,
        "input": None,
    }


def _message(error: Any) -> str:
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _from_validation(exc: ValidationError, prefix: Loc) -> list[InitErrorDetails]:
    return [_problem((*prefix, *err["loc"]), _message(err)) for err in exc.errors(include_url=False)]


def _template_errors(
    spec: FrameworkSpec, keys: tuple[str, ...] | set[str], name: str
) -> list[tuple[str, str]]:
    """Placeholders that `supervisor.frameworks.expand` would refuse at spawn time, found now."""
    values = PlaceholderValues(
        port=43000,
        config="/home/config",
        instance_dir="/home",
        workspace="/home/workspace",
        name=name,
        id="id",
    )
    errors: list[tuple[str, str]] = []
    for key in _TEMPLATE_KEYS:
        if key not in keys:
            continue
        try:
            if key == "command":
                for i, arg in enumerate(spec.command):
                    expand(arg, values, where=f"command[{i}]")
            elif key == "env":
                for var, value in spec.env.items():
                    expand(value, values, where=f"env.{var}")
            elif key == "sandbox":
                expand_sandbox_paths(spec.sandbox, values)
            elif (probe := getattr(spec, key)) is not None:
                expand_probe(probe, values, where=key)
        except ValueError as exc:
            errors.append((key, str(exc)))
    return errors


class Resolver:
    """Builds `ResolvedInstance`s, computing each framework's base definition once."""

    def __init__(
        self,
        defaults: Defaults,
        frameworks: dict[str, FrameworkOverride],
        projects: dict[str, ProjectDecl] | None = None,
    ) -> None:
        self._defaults = defaults
        self._frameworks = frameworks
        self._projects = projects or {}
        self._builtin = builtin_frameworks()
        self._bases: dict[str, FrameworkSpec | list[InitErrorDetails]] = {}
        self._merged: dict[tuple[str, str], FrameworkSpec] = {}  # instances with the same overrides share one

    def known(self) -> list[str]:
        return sorted(set(self._builtin) | set(self._frameworks))

    def check_frameworks(self) -> None:
        """Validate every ``frameworks:`` entry, used or not."""
        problems: list[InitErrorDetails] = []
        for name in self._frameworks:
            base = self._base(name)
            if isinstance(base, list):
                problems.extend(base)
        if problems:
            raise ResolutionProblem(problems)

    def _base(self, name: str) -> FrameworkSpec | list[InitErrorDetails]:
        if name not in self._bases:
            self._bases[name] = self._build_base(name)
        return self._bases[name]

    def _build_base(self, name: str) -> FrameworkSpec | list[InitErrorDetails]:
        override = self._frameworks.get(name)
        keys = override.overrides() if override is not None else {}
        loc: Loc = ("frameworks", name)
        stop_timeout = self._defaults.stop_timeout
        try:
            if name in self._builtin:
                spec = self._builtin[name]
                if stop_timeout is not None:
                    spec = merge_overrides(spec, {"stop_timeout": stop_timeout})
                spec = merge_overrides(spec, keys)
            elif "command" not in keys:
                builtin = ", ".join(sorted(self._builtin))
                return [
                    _problem(
                        (*loc, "command"),
                        f"framework {name!r} is not built in ({builtin}), so its definition needs a command",
                    )
                ]
            else:
                data: dict[str, Any] = {"name": name, **keys}
                if stop_timeout is not None:
                    data.setdefault("stop_timeout", stop_timeout)
                spec = FrameworkSpec.model_validate(data)
        except ValidationError as exc:
            return _from_validation(exc, loc)
        bad = _template_errors(spec, set(_TEMPLATE_KEYS), name)
        if bad:
            return [_problem((*loc, key) if key in keys else loc, reason) for key, reason in bad]
        return spec

    def resolve(self, index: int, decl: InstanceDecl) -> ResolvedInstance:
        """Apply the layers to one declared instance (``index`` locates errors)."""
        loc: Loc = ("instances", index)
        if decl.framework not in self._builtin and decl.framework not in self._frameworks:
            raise ResolutionProblem(
                [
                    _problem(
                        (*loc, "framework"),
                        f"unknown framework {decl.framework!r} (known: {', '.join(self.known())};"
                        " define others under 'frameworks:' with a command)",
                    )
                ]
            )
        base = self._base(decl.framework)
        if isinstance(base, list):
            raise ResolutionProblem([])  # reported once, under frameworks:
        problems: list[InitErrorDetails] = []
        spec = base
        overrides = decl.framework_overrides()
        if overrides:
            cache_key = (decl.framework, json.dumps(overrides, sort_keys=True, default=_jsonable))
            if (cached := self._merged.get(cache_key)) is not None:
                spec = cached
            else:
                try:
                    spec = merge_overrides(base, overrides)
                except ValidationError as exc:
                    problems.extend(_from_validation(exc, loc))
                else:
                    bad = _template_errors(spec, set(overrides), decl.name)
                    problems.extend(_problem((*loc, key), reason) for key, reason in bad)
                    if not bad:
                        self._merged[cache_key] = spec
        d = self._defaults
        restart = _merge(RestartPolicy, d.restart, decl.restart, (*loc, "restart"), problems)
        health = _merge(HealthPolicy, d.health, decl.health, (*loc, "health"), problems)
        logs = _merge(LogPolicy, d.logs, decl.logs, (*loc, "logs"), problems)
        framework = self._frameworks.get(decl.framework)
        secrets = {**d.secrets, **(framework.secrets if framework is not None else {}), **decl.secrets}
        problems.extend(
            _problem((*loc, "secrets", var), f"{var} is set both in env and in secrets: keep only the secret")
            for var in sorted(secrets.keys() & spec.env.keys())
        )
        if problems:
            raise ResolutionProblem(problems)
        project = self._projects.get(decl.project) or ProjectDecl()
        return ResolvedInstance(
            name=decl.name,
            framework=decl.framework,
            spec=spec,
            restart=restart,
            health=health,
            logs=logs,
            memory=d.memory(decl),
            autostart=decl.autostart,
            model=decl.model,
            persona=decl.persona,
            role=decl.role,
            project=decl.project,
            project_name=(project.name or decl.project) if decl.project else "",
            project_goal=project.goal,
            project_description=project.description,
            parent=decl.parent,
            created_by=decl.created_by,
            secrets=secrets,
        )


def _merge(
    cls: type[_P], base: _P, override: BaseModel | None, loc: Loc, problems: list[InitErrorDetails]
) -> _P:
    changes = override.model_dump(exclude_none=True) if override is not None else {}
    if not changes:
        return base
    try:
        return cls.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:
        problems.extend(_from_validation(exc, loc))
        return base
