"""The whole fleet file: its sections, checked together.

Validating a `FleetFile` also resolves every instance (built-in framework ← the file's ``frameworks:`` ←
the instance's own keys; ``defaults`` ← the instance's policy keys), so a file that validates is a file the
engine can run. Errors carry the key path of the offending value; the loader turns that path into a line
number.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from supervisor.errors import NotFound
from supervisor.fleet._fields import NoneIsEmpty
from supervisor.fleet.resolved import ResolutionProblem, ResolvedInstance, Resolver
from supervisor.fleet.sections import (
    DaemonSettings,
    Defaults,
    FrameworkOverride,
    InstanceDecl,
    ProjectDecl,
    Section,
)
from supervisor.models import NAME_PATTERN
from supervisor.paths import ID_PATTERN

__all__ = ["FleetFile"]


def _framework_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"framework name {name!r} is not a slug (lowercase letters, digits and '-')")
    return name


_FrameworkName = Annotated[str, AfterValidator(_framework_name)]


def _project_id(project_id: str) -> str:
    if not ID_PATTERN.fullmatch(project_id):
        raise ValueError(f"project id {project_id!r} may use only letters, digits, '_' and '-'")
    return project_id


_ProjectId = Annotated[str, AfterValidator(_project_id)]


class FleetFile(Section):
    """The whole fleet file: daemon settings, defaults, framework overrides, projects and the declared
    instances."""

    version: Literal[1]
    daemon: NoneIsEmpty[DaemonSettings] = DaemonSettings()
    defaults: NoneIsEmpty[Defaults] = Defaults()
    frameworks: NoneIsEmpty[dict[_FrameworkName, FrameworkOverride]] = Field(default_factory=dict)
    projects: NoneIsEmpty[dict[_ProjectId, NoneIsEmpty[ProjectDecl]]] = Field(default_factory=dict)
    instances: NoneIsEmpty[list[InstanceDecl]] = Field(default_factory=list)

    _resolved: dict[str, ResolvedInstance] = PrivateAttr(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _supported(cls, v: Any) -> Any:
        if v != 1 or isinstance(v, bool):
            raise ValueError(f"unsupported fleet file version {v!r}; this release reads version 1")
        return v

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
        resolver = Resolver(self.defaults, self.frameworks, self.projects)
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

    def undeclared_projects(self) -> dict[str, list[str]]:
        """Project id → the instances naming it, for each project ``projects:`` does not list (in file
        order). Such an instance runs with the id as its project's name, no goal and no description."""
        found: dict[str, list[str]] = {}
        for decl in self.instances:
            if decl.project and decl.project not in self.projects:
                found.setdefault(decl.project, []).append(decl.name)
        return found

    def project_warnings(self) -> list[str]:
        """One line per project instances name that ``projects:`` does not list."""
        return [
            f"project {project!r} (named by {', '.join(repr(n) for n in names)}) is not listed under"
            " 'projects:': its agents get its id as its name, no goal and no description"
            for project, names in self.undeclared_projects().items()
        ]
