"""Loading fleet files from disk: the valid path, and an exact file/line/key for every kind of error."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from supervisor._resources import data_dir
from supervisor.errors import FleetFileError, HierarchyError
from supervisor.fleet import (
    ControlTCP,
    DaemonSettings,
    Defaults,
    FleetFile,
    FrameworkOverride,
    HealthPolicy,
    InstanceDecl,
    LogPolicy,
    RestartPolicy,
    load_fleet,
    parse_fleet,
)
from supervisor.fleet._yaml import YamlSyntaxError, fast_load
from supervisor.fleet.sections import AgentAPISettings, NotifyHook, PortSettings, ProjectDecl
from supervisor.frameworks.spec import Probe
from supervisor.models import HierarchyRole

GOOD = textwrap.dedent(
    """\
    version: 1
    defaults:
      restart: {policy: on-failure, initial_delay: 1s, factor: 2, max_delay: 60s, jitter: 0.1,
                reset_after: 60s, max_retries: 10, cooldown: 10m}
      health:  {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 60s}
      stop_timeout: 30s
    frameworks:
      openclaw:
        command: [openclaw, gateway, --port, "{port}", --bind, loopback]
        stop_timeout: 330s
    instances:
      - name: boss
        role: commander
      - name: lead
        framework: openclaw
        role: captain
        project: apollo
        parent: boss
        restart:
          max_delay: 5s
      - name: worker
        role: talon
        project: apollo
        parent: lead
        env: {A: yes, B: "on"}
    """
)


def error_for(text: str) -> FleetFileError:
    with pytest.raises(FleetFileError) as info:
        parse_fleet(text, path="fleet.yaml")
    return info.value


class TestLoadFleet:
    def test_good_file(self, tmp_path: Path) -> None:
        """A valid file loads with its instances in order and every layer applied."""
        path = tmp_path / "fleet.yaml"
        path.write_text(GOOD)
        f = load_fleet(path)
        assert f.names() == ["boss", "lead", "worker"]
        assert f.resolve("lead").spec.stop_timeout == 330.0
        assert f.resolve("lead").restart.max_delay == 5.0
        assert f.resolve("boss").spec.stop_timeout == 30.0
        assert f.decl("worker").role is HierarchyRole.TALON

    def test_yaml_12_scalars(self) -> None:
        """``yes`` and ``on`` stay strings (YAML 1.2), as a round-trip reader sees them."""
        assert parse_fleet(GOOD).decl("worker").env == {"A": "yes", "B": "on"}

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is an error naming the path and how to create one."""
        with pytest.raises(FleetFileError, match=r"not found.*eyriectl init") as info:
            load_fleet(tmp_path / "nope.yaml")
        assert info.value.path == str(tmp_path / "nope.yaml")

    def test_directory(self, tmp_path: Path) -> None:
        """A directory where the file should be is reported as such."""
        with pytest.raises(FleetFileError, match="is a directory"):
            load_fleet(tmp_path)

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are an error, not a crash."""
        path = tmp_path / "fleet.yaml"
        path.write_bytes(b"version: 1\n\xff\xfe")
        with pytest.raises(FleetFileError, match="not UTF-8"):
            load_fleet(path)

    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
    def test_empty(self, text: str) -> None:
        """An empty (or comment-only) file is an error at line 1."""
        err = error_for(text)
        assert err.line == 1 and "empty" in err.reason

    def test_not_a_mapping(self) -> None:
        """A list at the top level is refused."""
        assert "mapping at the top level" in error_for("- a\n- b\n").reason

    def test_example_file_loads(self) -> None:
        """config/fleet.example.yaml, which documents every key, is itself a valid fleet file."""
        f = load_fleet(data_dir("config") / "fleet.example.yaml")
        assert len(f.instances) >= 4
        assert f.daemon.control_tcp.enabled is False

    def test_example_documents_every_key(self) -> None:
        """Every key the schema knows is mentioned in config/fleet.example.yaml."""
        text = (data_dir("config") / "fleet.example.yaml").read_text()
        models: list[type[BaseModel]] = [
            FleetFile,
            DaemonSettings,
            AgentAPISettings,
            ControlTCP,
            PortSettings,
            Defaults,
            NotifyHook,
            RestartPolicy,
            HealthPolicy,
            LogPolicy,
            FrameworkOverride,
            Probe,
            ProjectDecl,
            InstanceDecl,
        ]
        missing = [
            f"{model.__name__}.{key}"
            for model in models
            for key in model.model_fields
            if not re.search(rf"\b{key}\b", text)
        ]
        assert missing == []

    def test_hierarchy_enforced_on_load(self, tmp_path: Path) -> None:
        """A load applies the hierarchy rules after the schema, naming the file."""
        path = tmp_path / "fleet.yaml"
        path.write_text(GOOD.replace("role: commander", "role: captain\n    project: other"))
        with pytest.raises(HierarchyError) as info:
            load_fleet(path)
        assert str(info.value).startswith(f"{path}: ")
        assert "need exactly one commander; there is none" in str(info.value)


class TestErrorLocation:
    def test_yaml_syntax(self) -> None:
        """A YAML syntax error gives the line where the parser stopped."""
        err = error_for("version: 1\ninstances:\n  - name: a\n   bad: [1, 2\n")
        assert err.line is not None and err.line >= 4
        assert err.reason.startswith("not valid YAML")
        assert str(err).startswith("fleet.yaml:")

    def test_duplicate_key(self) -> None:
        """A key given twice in one mapping is an error at the second, naming the first's line."""
        err = error_for("version: 1\ninstances:\n  - name: a\n    model: x\n    model: y\n")
        assert err.line == 5
        assert "appears twice" in err.reason and "line 4" in err.reason

    def test_nested_bad_value(self) -> None:
        """A bad duration deep in an instance points at its own line and dotted key."""
        err = error_for(GOOD.replace("max_delay: 5s", "max_delay: soon"))
        assert (err.line, err.key) == (20, "instances[1].restart.max_delay")
        assert "not a duration" in err.reason
        assert str(err).startswith("fleet.yaml:20: instances[1].restart.max_delay: ")

    def test_typo_suggests(self) -> None:
        """An unknown key is named with the closest allowed key."""
        err = error_for(GOOD.replace("max_delay: 5s", "max_dealy: 5s"))
        assert (err.line, err.key) == (20, "instances[1].restart.max_dealy")
        assert "did you mean 'max_delay'" in err.reason

    def test_unknown_top_level_key_lists_allowed(self) -> None:
        """An unknown key with no close match lists the keys allowed there."""
        err = error_for(GOOD + "zzz: 1\n")
        assert err.key == "zzz" and "allowed here: daemon, defaults" in err.reason

    def test_missing_required(self) -> None:
        """A missing required key points at the mapping that lacks it."""
        err = error_for(GOOD.replace("  - name: worker\n", "  - nme: worker\n"))
        assert (err.line, err.key) == (21, "instances[2].name")
        assert "missing required key 'name'" in err.reason
        assert "also line 21: instances[2].nme: unknown key 'nme'; did you mean 'name'?" in err.reason

    def test_missing_version(self) -> None:
        """A file without ``version`` says so at line 1."""
        err = error_for("instances: []\n")
        assert (err.line, err.key) == (1, "version")

    def test_flow_mapping_value(self) -> None:
        """A bad value inside a flow mapping that spans lines gives the line of its key."""
        err = error_for(GOOD.replace("reset_after: 60s", "reset_after: -1"))
        assert (err.line, err.key) == (4, "defaults.restart.reset_after")

    def test_duplicate_instance_names_both_lines(self) -> None:
        """A repeated instance name names both declarations and their lines."""
        err = error_for(GOOD.replace("name: worker", "name: boss"))
        assert (err.line, err.key) == (21, "instances[2].name")
        assert "instances[0] at line 12" in err.reason and "instances[2] at line 21" in err.reason

    def test_env_key(self) -> None:
        """A bad environment variable name points at that variable's line."""
        err = error_for(GOOD.replace("env: {A: yes", "env:\n      A-1: yes\n      C: 1\n    x: {A: yes"))
        assert err.key == "instances[2].env.A-1"
        assert err.line == 26

    def test_secret_not_echoed(self) -> None:
        """A refused env value is never quoted back: it may be a secret."""
        err = error_for(GOOD.replace('B: "on"', 'B: "sk-secret-\\0"'))
        assert "NUL" in str(err) and "sk-secret" not in str(err)

    def test_framework_error_location(self) -> None:
        """An error in a ``frameworks:`` entry points into that entry."""
        err = error_for(GOOD.replace("stop_timeout: 330s", "stop_signal: SIGWHAT"))
        assert (err.line, err.key) == (10, "frameworks.openclaw.stop_signal")

    def test_many_errors_listed(self) -> None:
        """Several errors: the first is located exactly, the others listed with their lines."""
        text = "version: 1\ninstances:\n" + "".join(
            f"  - name: a{i}\n    autostart: maybe\n" for i in range(9)
        )
        err = error_for(text)
        assert err.line == 4
        assert err.reason.count("\n  also") == 5 and "and 3 more" in err.reason


class TestFastLoader:
    def test_core_schema(self) -> None:
        """Scalars follow YAML 1.2's core schema."""
        data = fast_load("a: [yes, on, 010, 0o17, 0x1f, -3, 1.5, .inf, ~, null, '', true, False, 2024-01-01]")
        assert data == {
            "a": ["yes", "on", 10, 15, 31, -3, 1.5, float("inf"), None, None, "", True, False, "2024-01-01"]
        }

    def test_anchors_and_merge_keys(self) -> None:
        """Aliases and ``<<`` merge keys work (merged keys may be overridden)."""
        data = fast_load("base: &b {x: 1, y: 2}\ncopy: *b\nmerged:\n  <<: *b\n  y: 3\n")
        assert data == {"base": {"x": 1, "y": 2}, "copy": {"x": 1, "y": 2}, "merged": {"x": 1, "y": 3}}

    def test_explicit_tags(self) -> None:
        """An explicit ``!!str`` keeps a number-looking value a string."""
        assert fast_load("a: !!str 12\nb: !!int '7'\n") == {"a": "12", "b": 7}

    def test_duplicate_key_in_merged_document(self) -> None:
        """Duplicate keys are refused on the slower path for merge keys, too."""
        with pytest.raises(YamlSyntaxError, match="appears twice") as info:
            fast_load("base: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n")
        assert info.value.line == 5
