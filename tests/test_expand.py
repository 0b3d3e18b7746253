"""Placeholder expansion in framework definitions: argv, env and probes of one instance."""

from __future__ import annotations

import re
import sys

import pytest

from supervisor.frameworks.expand import (
    PlaceholderValues,
    expand,
    expand_command,
    expand_pattern,
    expand_probe,
)
from supervisor.frameworks.registry import builtin_spec
from supervisor.frameworks.spec import FrameworkSpec, Probe, ProbeKind


@pytest.fixture
def values() -> PlaceholderValues:
    return PlaceholderValues(
        port=43007,
        config="/h/instances/abc/config.json",
        instance_dir="/h/instances/abc",
        workspace="/h/instances/abc/workspace",
        name="strategist-sarah",
        id="abc",
    )


class TestPlaceholderValues:
    def test_python_defaults_to_running_interpreter(self, values: PlaceholderValues) -> None:
        """{python} is the interpreter running the daemon unless given."""
        assert values.python == sys.executable

    def test_mapping_has_every_placeholder_as_text(self, values: PlaceholderValues) -> None:
        """The mapping turns the port into text and covers all seven placeholders."""
        mapping = values.as_mapping()
        assert mapping["port"] == "43007"
        assert set(mapping) == {"port", "config", "instance_dir", "workspace", "name", "id", "python"}


class TestExpand:
    def test_every_placeholder(self, values: PlaceholderValues) -> None:
        """Each known placeholder is replaced by its value."""
        text = "{port} {config} {instance_dir} {workspace} {name} {id} {python}"
        assert expand(text, values).split() == [
            "43007",
            values.config,
            values.instance_dir,
            values.workspace,
            "strategist-sarah",
            "abc",
            sys.executable,
        ]

    def test_doubled_braces_are_literal(self, values: PlaceholderValues) -> None:
        """{{ and }} give literal braces."""
        assert expand('{{"port": {port}}}', values) == '{"port": 43007}'

    def test_unknown_placeholder_is_named(self, values: PlaceholderValues) -> None:
        """An unknown placeholder raises ValueError naming it and where it was."""
        with pytest.raises(ValueError, match=r"command\[1\] .*unknown placeholder \{prot\}"):
            expand("--port={prot}", values, where="command[1]")

    @pytest.mark.parametrize("text", ["{", "}", "a{b", "x}y", "{port"])
    def test_stray_brace(self, values: PlaceholderValues, text: str) -> None:
        """A lone brace raises ValueError saying it is a stray brace."""
        with pytest.raises(ValueError, match="stray brace"):
            expand(text, values)

    @pytest.mark.parametrize("text", ["{port.real}", "{port[0]}", "{port:>8}", "{port!r}", "{}", "{0}"])
    def test_only_bare_names(self, values: PlaceholderValues, text: str) -> None:
        """Only bare known names are placeholders: no attribute access, indexing, format spec or positions."""
        with pytest.raises(ValueError, match="placeholder"):
            expand(text, values)

    def test_values_are_not_re_expanded(self) -> None:
        """A value that itself contains braces is inserted as is."""
        odd = PlaceholderValues(port=1, config="{id}", instance_dir="d", workspace="w", name="n", id="i")
        assert expand("{config}", odd) == "{id}"


class TestExpandCommand:
    def test_embedded_builtin(self, values: PlaceholderValues) -> None:
        """The built-in embedded command runs this interpreter on the instance's config."""
        argv, env = expand_command(builtin_spec("embedded"), values)
        assert argv == [sys.executable, "-m", "supervisor.frameworks.embedded", "--config", values.config]
        assert env == {}

    def test_env_values_expanded(self, values: PlaceholderValues) -> None:
        """Environment values get placeholders expanded; keys are left alone."""
        argv, env = expand_command(builtin_spec("openclaw"), values)
        assert argv[:4] == ["openclaw", "gateway", "--port", "43007"]
        assert env == {"OPENCLAW_CONFIG_PATH": values.config, "OPENCLAW_STATE_DIR": "/h/instances/abc/state"}

    def test_value_with_spaces_stays_one_argument(self) -> None:
        """No shell: a path with spaces and quotes is still one argv element."""
        odd = PlaceholderValues(
            port=1, config="/a b/'c'.json", instance_dir="d", workspace="w", name="n", id="i"
        )
        spec = FrameworkSpec(name="x", command=["run", "--config", "{config}"])
        assert expand_command(spec, odd)[0] == ["run", "--config", "/a b/'c'.json"]

    def test_error_names_framework_and_position(self, values: PlaceholderValues) -> None:
        """A bad placeholder in a command names the framework and the argv index."""
        spec = FrameworkSpec(name="mine", command=["run", "{nope}"])
        with pytest.raises(ValueError, match=r"mine: command\[1\]"):
            expand_command(spec, values)

    def test_error_names_env_key(self, values: PlaceholderValues) -> None:
        """A bad placeholder in env names the variable."""
        spec = FrameworkSpec(name="mine", command=["run"], env={"HOME_DIR": "{home}"})
        with pytest.raises(ValueError, match=r"mine: env\.HOME_DIR"):
            expand_command(spec, values)


class TestExpandPattern:
    def test_value_metacharacters_escaped(self) -> None:
        """Regex metacharacters in a value match literally."""
        odd = PlaceholderValues(port=1, config="c", instance_dir="d", workspace="w", name="a.b+c", id="i")
        pattern = expand_pattern("name={name}$", odd)
        assert re.search(pattern, "name=a.b+c")
        assert not re.search(pattern, "name=aXbbc")

    def test_quantifiers_and_escapes_kept(self, values: PlaceholderValues) -> None:
        """Regex quantifiers and backslash escapes are regex syntax, not placeholders."""
        pattern = expand_pattern(r"\d{2,3} \{x\} port={port} a{3}", values)
        assert pattern == r"\d{2,3} \{x\} port=43007 a{3}"

    def test_doubled_braces_are_literal_braces(self, values: PlaceholderValues) -> None:
        """{{ and }} match literal braces in the log."""
        assert re.fullmatch(expand_pattern("{{{port}}}", values), "{43007}")

    def test_unknown_placeholder(self, values: PlaceholderValues) -> None:
        """An unknown name in braces is an error naming it."""
        with pytest.raises(ValueError, match=r"unknown placeholder \{prot\}"):
            expand_pattern("port={prot}", values)

    def test_stray_brace(self, values: PlaceholderValues) -> None:
        """A lone brace is an error that says how to escape it."""
        with pytest.raises(ValueError, match="stray brace"):
            expand_pattern("ready {", values)

    def test_invalid_regex(self, values: PlaceholderValues) -> None:
        """A pattern that is not a regex is an error, not a probe that never matches."""
        with pytest.raises(ValueError, match="not a valid regular expression"):
            expand_pattern("(port={port}", values)


class TestExpandProbe:
    def test_hermes_log_pattern(self, values: PlaceholderValues) -> None:
        """The built-in hermes readiness pattern names this instance's port."""
        probe = expand_probe(builtin_spec("hermes").ready, values)
        assert probe.kind is ProbeKind.LOG
        assert re.search(probe.pattern, "HERMES_BACKEND_READY port=43007")
        assert not re.search(probe.pattern, "HERMES_BACKEND_READY port=43008")

    def test_exec_command_and_path(self, values: PlaceholderValues) -> None:
        """An exec probe's command and an http probe's path are expanded."""
        probe = Probe(kind=ProbeKind.EXEC, command=["check", "--port", "{port}"], path="/h/{name}")
        out = expand_probe(probe, values)
        assert out.command == ["check", "--port", "43007"]
        assert out.path == "/h/strategist-sarah"

    def test_original_untouched(self, values: PlaceholderValues) -> None:
        """Expansion returns a new probe; the definition keeps its placeholders."""
        probe = Probe(kind=ProbeKind.EXEC, command=["{port}"])
        expand_probe(probe, values)
        assert probe.command == ["{port}"]

    def test_error_names_probe_field(self, values: PlaceholderValues) -> None:
        """A bad placeholder in a probe names the probe field."""
        probe = Probe(kind=ProbeKind.EXEC, command=["x", "{bad}"])
        with pytest.raises(ValueError, match=r"live\.command\[1\]"):
            expand_probe(probe, values, where="live")
