"""Personas: named agent personalities (role, preferred model, identity templates) to make instances from.

Built-in examples ship in ``config/personas/``; a user's own live in ``$EYRIE_HOME/personas/*.json`` and
override a built-in with the same id. Everything is checked when the catalog loads, so a typo in a template is
an error that names the file, the template and the unknown field, never a silent gap in a rendered file.
Identity templates are jinja2, rendered in a sandbox with only the `TemplateContext` fields defined;
`render_template` is the one place that renders them. jinja2 is imported by the first template checked or
rendered: a process that never touches one does not load it.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from supervisor._resources import data_dir
from supervisor._safe_read import read_text
from supervisor.errors import NotFound, PersonaError
from supervisor.models import TemplateContext
from supervisor.paths import Home

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "PERSONA_ID_PATTERN",
    "TEMPLATE_FIELDS",
    "TEMPLATE_NAME_PATTERN",
    "Persona",
    "PersonaCatalog",
    "check_template",
    "render_template",
]

PERSONA_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TEMPLATE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.md$")
TEMPLATE_FIELDS: frozenset[str] = frozenset(TemplateContext.model_fields)
"""The only names an identity template may use."""

# Keys eyrie writes into a persona file at runtime; they describe a running agent, not the persona.
_MAX_PERSONA_BYTES = 1024 * 1024
_EYRIE_RUNTIME_KEYS = ("installed", "agent_name", "agent_alive")


# Every field non-empty, so the `{% if field %}` parts of a template render during the check too.
_SAMPLE = TemplateContext(**{key: f"sample-{key}" for key in TemplateContext.model_fields})


@cache
def _environment() -> jinja2.Environment:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def check_template(name: str, text: str) -> None:
    """Raise `ValueError` unless ``text`` compiles and uses only `TEMPLATE_FIELDS`; the message says why."""
    import jinja2
    from jinja2 import meta

    env = _environment()
    try:
        ast = env.parse(text, name=name)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"syntax error on line {exc.lineno}: {exc.message}") from None
    unknown = meta.find_undeclared_variables(ast) - TEMPLATE_FIELDS
    if unknown:
        names = ", ".join(sorted(unknown))
        known = ", ".join(sorted(TEMPLATE_FIELDS))
        raise ValueError(f"unknown field(s) {names} (known: {known})")
    try:
        _compile(text).render(_SAMPLE.model_dump())
    except Exception as exc:  # a template can fail in any way an expression can (e.g. 1/0)
        raise ValueError(f"does not render: {exc}") from None


@lru_cache(maxsize=64)
def _compile(text: str) -> jinja2.Template:
    """Compiled once per text: provisioning a fleet renders the same few templates for every instance."""
    return _environment().from_string(text)


def render_template(name: str, text: str, ctx: TemplateContext) -> str:
    """Render one identity template; a template that fails raises `PersonaError` naming it."""
    try:
        return _compile(text).render(ctx.model_dump())
    except Exception as exc:
        raise PersonaError(f"template {name}: {exc}") from None


class Persona(BaseModel):
    """A named agent personality. JSON keys are eyrie's (``identity_template`` is read as ``templates``).

    Its validator is built on first use (``defer_build``): a fleet without personas never needs it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    id: str
    name: str = ""
    role: str = ""
    description: str = ""
    preferred_model: str = ""
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int = Field(default=0, ge=0)
    tools: list[str] = Field(default_factory=list)
    templates: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("templates", "identity_template")
    )
    memory_seeds: list[str] = Field(default_factory=list)
    # Descriptive fields eyrie's catalog carries; shown to people, not used when provisioning.
    icon: str = ""
    category: str = ""
    reasoning_level: str = ""
    system_prompt: str = ""
    traits: list[str] = Field(default_factory=list)
    preferred_framework: str = ""
    hierarchy_role: str = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_runtime_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _EYRIE_RUNTIME_KEYS}
        return data

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not PERSONA_ID_PATTERN.fullmatch(v):
            raise ValueError(f"persona id {v!r} must match {PERSONA_ID_PATTERN.pattern}")
        return v

    @field_validator("templates")
    @classmethod
    def _valid_templates(cls, v: dict[str, str]) -> dict[str, str]:
        for file_name, text in v.items():
            if not TEMPLATE_NAME_PATTERN.fullmatch(file_name) or ".." in file_name:
                raise ValueError(
                    f"template file name {file_name!r} is not a bare safe name"
                    f" (must match {TEMPLATE_NAME_PATTERN.pattern}, no '..')"
                )
            try:
                check_template(file_name, text)
            except ValueError as exc:
                raise ValueError(f"template {file_name}: {exc}") from None
        return v


def _load_file(path: Path) -> Persona:
    try:
        data = json.loads(read_text(path, limit=_MAX_PERSONA_BYTES))
    except OSError as exc:
        raise PersonaError(f"{path}: cannot read persona file: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PersonaError(f"{path}: a persona file holds one JSON object")
    data.setdefault("id", path.stem)
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "persona"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise PersonaError(f"{path}: {where}: {message}") from None


@dataclass(eq=False)
class _Entry:
    persona: Persona
    path: Path


class PersonaCatalog:
    """Every persona available to this home: built-ins, overridden by the user's files of the same id."""

    def __init__(self, personas: Iterable[Persona] = ()) -> None:
        self._by_id = {p.id: p for p in personas}

    @classmethod
    def load(cls, home: Home | None = None) -> PersonaCatalog:
        """Read built-ins and ``<home>/personas/*.json``; a bad file raises `PersonaError` naming it."""
        home = home or Home.resolve()
        builtin = cls._read_dir(data_dir("config") / "personas")
        user = cls._read_dir(home.personas_dir)
        merged = {pid: e.persona for pid, e in builtin.items()}
        merged.update({pid: e.persona for pid, e in user.items()})
        return cls(merged.values())

    @staticmethod
    def _read_dir(directory: Path) -> dict[str, _Entry]:
        entries: dict[str, _Entry] = {}
        if not directory.is_dir():
            return entries
        for path in sorted(directory.glob("*.json")):
            persona = _load_file(path)
            if (seen := entries.get(persona.id)) is not None:
                raise PersonaError(f"{path}: persona id {persona.id!r} is already defined in {seen.path}")
            entries[persona.id] = _Entry(persona, path)
        return entries

    def get(self, persona_id: str) -> Persona:
        try:
            return self._by_id[persona_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise NotFound(f"persona {persona_id!r} not found (known: {known})") from None

    def list(self) -> builtins.list[Persona]:
        """Every persona, by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def __contains__(self, persona_id: object) -> bool:
        return persona_id in self._by_id
