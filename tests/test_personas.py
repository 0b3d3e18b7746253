"""Personas: the model's validation, template checks at load time, and the catalog of built-in and user
files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from supervisor.errors import NotFound, PersonaError
from supervisor.models import TemplateContext
from supervisor.paths import Home
from supervisor.personas import (
    TEMPLATE_FIELDS,
    Persona,
    PersonaCatalog,
    check_template,
    render_template,
)

BUILTIN_IDS = {"engineer", "generalist", "researcher", "strategist"}


def _write(home: Home, file_name: str, data: Any) -> Path:
    home.personas_dir.mkdir(exist_ok=True)
    path = home.personas_dir / file_name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


class TestPersona:
    def test_eyrie_keys(self) -> None:
        """A persona in eyrie's JSON shape loads: identity_template is read as templates."""
        persona = Persona.model_validate(
            {
                "id": "coach",
                "name": "Coach",
                "role": "life-coach",
                "preferred_model": "claude-opus-4",
                "temperature": 0.4,
                "max_tokens": 2048,
                "tools": ["read_file"],
                "identity_template": {"SOUL.md": "You are {{ display_name }}."},
                "icon": "🧭",
                "category": "personal",
                "installed": True,
                "agent_alive": False,
            }
        )
        assert persona.templates == {"SOUL.md": "You are {{ display_name }}."}
        assert persona.temperature == 0.4

    @pytest.mark.parametrize("temperature", [-0.1, 1.01])
    def test_temperature_range(self, temperature: float) -> None:
        """Temperature must be between 0 and 1."""
        with pytest.raises(ValidationError, match="temperature"):
            Persona(id="p", temperature=temperature)

    def test_temperature_bounds_allowed(self) -> None:
        """0 and 1 are valid temperatures."""
        assert Persona(id="p", temperature=0.0).temperature == 0.0
        assert Persona(id="p", temperature=1.0).temperature == 1.0

    def test_max_tokens_not_negative(self) -> None:
        """max_tokens below zero is refused."""
        with pytest.raises(ValidationError, match="max_tokens"):
            Persona(id="p", max_tokens=-1)

    @pytest.mark.parametrize(
        "file_name", ["../SOUL.md", "a/b.md", "SOUL", "SOUL.txt", ".hidden.md", "a..b.md", "", "x y.md"]
    )
    def test_unsafe_template_file_names(self, file_name: str) -> None:
        """Template file names must be bare safe names ending in .md."""
        with pytest.raises(ValidationError, match="bare safe name"):
            Persona(id="p", templates={file_name: "hi"})

    @pytest.mark.parametrize("persona_id", ["../x", "a/b", "", ".x", "a b"])
    def test_unsafe_id(self, persona_id: str) -> None:
        """Persona ids are safe single names."""
        with pytest.raises(ValidationError, match="persona id"):
            Persona(id=persona_id)

    def test_unknown_key_refused(self) -> None:
        """A misspelt key is an error, not silently ignored."""
        with pytest.raises(ValidationError, match="temprature"):
            Persona.model_validate({"id": "p", "temprature": 0.5})

    def test_unknown_template_field(self) -> None:
        """A template using a name outside TemplateContext is refused, naming the template and the field."""
        with pytest.raises(ValidationError, match=r"SOUL\.md: unknown field\(s\) nickname"):
            Persona(id="p", templates={"SOUL.md": "Hi {{ nickname }} ({{ name }})"})

    def test_template_syntax_error(self) -> None:
        """A template that does not compile is refused with its line."""
        with pytest.raises(ValidationError, match=r"IDENTITY\.md: syntax error on line 2"):
            Persona(id="p", templates={"IDENTITY.md": "ok\n{% if name %}never closed"})


class TestTemplates:
    def test_fields_are_template_context(self) -> None:
        """Templates may use exactly the TemplateContext fields."""
        assert set(TemplateContext.model_fields) == TEMPLATE_FIELDS

    def test_locally_set_names_allowed(self) -> None:
        """Names a template defines itself (set, loops) are not unknown fields."""
        check_template("X.md", "{% set n = name | upper %}{{ n }}{% for c in name %}{{ c }}{% endfor %}")

    def test_render_failure_at_check(self) -> None:
        """A template that compiles but cannot render is refused at check time."""
        with pytest.raises(ValueError, match="does not render"):
            check_template("X.md", "{{ name.no_such_attribute }}")

    def test_expression_error_at_check(self) -> None:
        """A template whose expression fails (not only a jinja error) is refused at check time."""
        with pytest.raises(ValueError, match="does not render: division by zero"):
            check_template("X.md", "{{ 1 / 0 }}")

    def test_sandbox_blocks_internals(self) -> None:
        """Templates cannot reach Python internals through a value."""
        with pytest.raises(ValueError, match="does not render"):
            check_template("X.md", "{{ name.__class__.__mro__ }}")

    def test_render(self) -> None:
        """render_template fills the fields and keeps the trailing newline."""
        ctx = TemplateContext(name="ada", display_name="Ada", framework="embedded")
        assert render_template("I.md", "{{ display_name }} on {{ framework }}\n", ctx) == "Ada on embedded\n"

    def test_render_error_is_persona_error(self) -> None:
        """A render failure raises PersonaError naming the template."""
        ctx = TemplateContext(name="ada", display_name="Ada")
        with pytest.raises(PersonaError, match=r"I\.md"):
            render_template("I.md", "{{ nickname }}", ctx)


class TestPersonaCatalog:
    def test_builtins(self, home: Home) -> None:
        """Without user files the catalog holds the shipped examples, sorted by id."""
        catalog = PersonaCatalog.load(home)
        assert [p.id for p in catalog.list()] == sorted(BUILTIN_IDS)
        assert catalog.get("strategist").preferred_model

    def test_builtins_render(self, home: Home) -> None:
        """Every shipped persona template renders with a real context and names the agent."""
        ctx = TemplateContext(name="ada", display_name="Ada", framework="embedded")
        for persona in PersonaCatalog.load(home).list():
            for file_name, text in persona.templates.items():
                rendered = render_template(file_name, text, ctx)
                assert "ada" in rendered.lower()
                assert "{{" not in rendered

    def test_user_file_overrides_builtin(self, home: Home) -> None:
        """A user file with a built-in's id replaces it."""
        _write(home, "mine.json", {"id": "strategist", "name": "My strategist", "temperature": 0.9})
        persona = PersonaCatalog.load(home).get("strategist")
        assert persona.name == "My strategist"
        assert persona.temperature == 0.9

    def test_user_file_adds(self, home: Home) -> None:
        """A new user persona joins the built-ins; its id defaults to the file name."""
        _write(home, "coach.json", {"name": "Coach", "role": "life-coach"})
        catalog = PersonaCatalog.load(home)
        assert catalog.get("coach").role == "life-coach"
        assert "coach" in catalog
        assert len(catalog.list()) == len(BUILTIN_IDS) + 1

    def test_get_unknown(self, home: Home) -> None:
        """An unknown id raises NotFound listing the known ones."""
        with pytest.raises(NotFound, match=r"'nobody'.*strategist"):
            PersonaCatalog.load(home).get("nobody")

    def test_bad_json_names_file(self, home: Home) -> None:
        """A file that is not JSON is an error naming the file."""
        path = _write(home, "broken.json", "{not json")
        with pytest.raises(PersonaError, match=f"{path}: not valid JSON"):
            PersonaCatalog.load(home)

    def test_not_an_object_names_file(self, home: Home) -> None:
        """A JSON file that is not one object is an error naming the file."""
        path = _write(home, "list.json", [1, 2])
        with pytest.raises(PersonaError, match=f"{path}: a persona file holds one JSON object"):
            PersonaCatalog.load(home)

    def test_bad_value_names_file_and_key(self, home: Home) -> None:
        """An invalid value names the file and the key."""
        path = _write(home, "hot.json", {"id": "hot", "temperature": 3})
        with pytest.raises(PersonaError, match=f"{path}: temperature: "):
            PersonaCatalog.load(home)

    def test_unknown_template_field_names_file_template_field(self, home: Home) -> None:
        """A template with an unknown field names the persona file, template and field at load time."""
        path = _write(home, "typo.json", {"id": "typo", "templates": {"SOUL.md": "I am {{ dispaly_name }}"}})
        with pytest.raises(PersonaError) as err:
            PersonaCatalog.load(home)
        assert str(path) in str(err.value)
        assert "SOUL.md" in str(err.value)
        assert "dispaly_name" in str(err.value)

    def test_duplicate_ids_name_both_files(self, home: Home) -> None:
        """Two user files with one id are an error naming both."""
        first = _write(home, "a.json", {"id": "twin"})
        second = _write(home, "b.json", {"id": "twin"})
        with pytest.raises(PersonaError, match=f"{second}: .*already defined in {first}"):
            PersonaCatalog.load(home)

    def test_unreadable_file_names_it(self, home: Home) -> None:
        """A persona path that cannot be read (a directory named *.json) is an error naming it."""
        home.personas_dir.mkdir()
        (home.personas_dir / "dir.json").mkdir()
        with pytest.raises(PersonaError, match=r"dir\.json: cannot read persona file"):
            PersonaCatalog.load(home)

    def test_non_json_files_ignored(self, home: Home) -> None:
        """Only *.json files in the personas directory are personas."""
        _write(home, "README.md", "not a persona")
        assert len(PersonaCatalog.load(home).list()) == len(BUILTIN_IDS)

    def test_default_home_from_environment(self, home: Home) -> None:
        """Without a home, the catalog reads $EYRIE_HOME."""
        _write(home, "coach.json", {"name": "Coach"})
        assert "coach" in PersonaCatalog.load()
