"""The fleet file's models: what they accept, what they refuse, and how instances resolve."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import supervisor.fleet as fleet_pkg
from supervisor.errors import NotFound
from supervisor.fleet import (
    ControlTCP,
    FleetFile,
    HealthOverride,
    HealthPolicy,
    InstanceDecl,
    LogOverride,
    LogPolicy,
    RestartOverride,
    RestartPolicy,
)
from supervisor.frameworks.registry import builtin_spec
from supervisor.models import HierarchyRole, format_duration


def fleet(**data: Any) -> FleetFile:
    return FleetFile.model_validate({"version": 1, **data})


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        FleetFile.model_validate(data)
    return [(tuple(e["loc"]), str(e["msg"])) for e in info.value.errors()]


class TestPublicNames:
    def test_all_is_exact(self) -> None:
        """Every name in ``supervisor.fleet.__all__`` exists and nothing public is left out."""
        for name in fleet_pkg.__all__:
            assert hasattr(fleet_pkg, name), name
        assert len(set(fleet_pkg.__all__)) == len(fleet_pkg.__all__)


class TestInstanceDecl:
    def test_defaults(self) -> None:
        """A bare name is an embedded, standalone, autostarting instance with no overrides."""
        decl = InstanceDecl(name="solo")
        assert decl.framework == "embedded"
        assert decl.role is HierarchyRole.STANDALONE
        assert decl.autostart is True
        assert decl.framework_overrides() == {}

    def test_bad_name_says_why(self) -> None:
        """A name that is not a slug is refused with the slug rule it breaks."""
        with pytest.raises(ValidationError, match="uppercase"):
            InstanceDecl(name="Sarah")

    def test_nulls_and_standalone_spelling(self) -> None:
        """``parent: null``, ``role: null`` and ``role: standalone`` all mean "not set"."""
        decl = InstanceDecl.model_validate({"name": "a", "parent": None, "role": "standalone", "env": None})
        assert decl.parent == "" and decl.role is HierarchyRole.STANDALONE and decl.env == {}
        assert InstanceDecl.model_validate({"name": "a", "role": None}).role is HierarchyRole.STANDALONE

    def test_env_names_checked(self) -> None:
        """An environment variable name with a dash is refused, naming the variable."""
        with pytest.raises(ValidationError, match="'BAD-NAME' is invalid"):
            InstanceDecl.model_validate({"name": "a", "env": {"BAD-NAME": "x"}})

    def test_env_value_without_nul(self) -> None:
        """An environment value containing NUL is refused."""
        with pytest.raises(ValidationError, match="NUL"):
            InstanceDecl.model_validate({"name": "a", "env": {"A": "x\0y"}})

    def test_env_scalars_become_strings(self) -> None:
        """Numbers and booleans in env (as YAML writes them) become the strings a process sees."""
        decl = InstanceDecl.model_validate({"name": "a", "env": {"N": 8080, "F": 1.5, "B": True}})
        assert decl.env == {"N": "8080", "F": "1.5", "B": "true"}

    def test_unknown_key_refused(self) -> None:
        """A misspelt key is an error, not a silently ignored setting."""
        with pytest.raises(ValidationError, match="Extra inputs"):
            InstanceDecl.model_validate({"name": "a", "autostrat": False})

    def test_parent_must_be_a_slug(self) -> None:
        """``parent`` names an instance, so it follows the name rules."""
        with pytest.raises(ValidationError, match="whitespace"):
            InstanceDecl.model_validate({"name": "a", "parent": "b c"})

    def test_persona_and_project_are_safe_ids(self) -> None:
        """A persona or project with a path separator is refused."""
        with pytest.raises(ValidationError, match="persona"):
            InstanceDecl.model_validate({"name": "a", "persona": "../x"})
        with pytest.raises(ValidationError, match="project"):
            InstanceDecl.model_validate({"name": "a", "project": "a/b"})


class TestPartialOverrides:
    @pytest.mark.parametrize(
        ("partial", "policy"),
        [(RestartOverride, RestartPolicy), (HealthOverride, HealthPolicy), (LogOverride, LogPolicy)],
    )
    def test_same_keys_as_policy(self, partial: type[Any], policy: type[Any]) -> None:
        """Every policy key can be overridden per instance, and nothing else can."""
        assert set(partial.model_fields) == set(policy.model_fields)

    def test_durations_written_short(self) -> None:
        """Durations dump as the shortest exact spelling."""
        assert [format_duration(s) for s in (0, 0.25, 10, 90, 300, 7200, 1.5)] == [
            "0s",
            "250ms",
            "10s",
            "90s",
            "5m",
            "2h",
            "1500ms",
        ]
        assert format_duration(0.0001) == 0.0001


class TestDaemonSettings:
    def test_tcp_off_by_default(self) -> None:
        """The TCP control listener is disabled unless asked for, on loopback."""
        settings = fleet().daemon
        assert settings.control_tcp.enabled is False
        assert settings.control_tcp.host == "127.0.0.1"
        assert settings.log_level == "info"

    def test_tcp_enabled_needs_port(self) -> None:
        """Enabling the TCP listener without a port is an error."""
        with pytest.raises(ValidationError, match="no port"):
            ControlTCP(enabled=True)

    def test_tcp_host_is_an_address(self) -> None:
        """A host that is not an IP address (or localhost) is refused."""
        with pytest.raises(ValidationError, match="not an IP address"):
            ControlTCP(host="example.com")

    def test_token_path_relative_to_home(self, tmp_path: Any) -> None:
        """A relative token file lives under the home; an absolute one stays as it is."""
        assert ControlTCP().token_path(tmp_path) == tmp_path / "run/control.token"
        assert ControlTCP(token_file="/etc/tok").token_path(tmp_path).as_posix() == "/etc/tok"

    def test_log_level_case(self) -> None:
        """``log_level: DEBUG`` is read as debug."""
        assert fleet(daemon={"log_level": "DEBUG"}).daemon.log_level == "debug"


class TestFleetFile:
    def test_minimal(self) -> None:
        """``version: 1`` alone is a valid, empty fleet; null sections read as empty."""
        empty = fleet(defaults=None, frameworks=None, instances=None, daemon=None)
        assert empty.instances == [] and empty.resolve_all() == {}

    def test_version_must_be_1(self) -> None:
        """Another version is refused with the version this release reads."""
        assert errors_of({"version": 2}) == [
            (("version",), "Value error, unsupported fleet file version 2; this release reads version 1")
        ]

    def test_duplicate_names(self) -> None:
        """A name declared twice is an error at the second declaration."""
        errs = errors_of({"version": 1, "instances": [{"name": "a"}, {"name": "b"}, {"name": "a"}]})
        assert errs == [(("instances", 2, "name"), "instance name 'a' is declared more than once")]

    def test_unknown_framework(self) -> None:
        """An instance on a framework nobody defined is refused, listing the known ones."""
        errs = errors_of({"version": 1, "instances": [{"name": "a", "framework": "nope"}]})
        assert errs[0][0] == ("instances", 0, "framework")
        assert "unknown framework 'nope'" in errs[0][1] and "embedded" in errs[0][1]

    def test_custom_framework_needs_command(self) -> None:
        """A framework that is not built in must give its command."""
        errs = errors_of({"version": 1, "frameworks": {"mine": {"stop_signal": "SIGINT"}}})
        assert errs[0][0] == ("frameworks", "mine", "command")

    def test_framework_name_is_a_slug(self) -> None:
        """A framework name becomes a log file name, so it must be a slug."""
        errs = errors_of({"version": 1, "frameworks": {"../x": {"command": ["x"]}}})
        assert errs[0][0][:2] == ("frameworks", "../x")

    def test_framework_override_checked_when_unused(self) -> None:
        """A broken ``frameworks:`` entry is refused even if no instance uses it."""
        errs = errors_of({"version": 1, "frameworks": {"zeroclaw": {"stop_signal": "SIGNOPE"}}})
        assert errs == [(("frameworks", "zeroclaw", "stop_signal"), "unknown signal 'SIGNOPE'")]

    def test_config_file_is_a_bare_name(self) -> None:
        """``config_file`` cannot point outside the instance directory."""
        errs = errors_of({"version": 1, "frameworks": {"zeroclaw": {"config_file": "../c.toml"}}})
        assert errs[0][0] == ("frameworks", "zeroclaw", "config_file")

    def test_unknown_placeholder(self) -> None:
        """A misspelt placeholder in a command is found at load time, not at spawn time."""
        errs = errors_of({"version": 1, "instances": [{"name": "a", "command": ["x", "{prot}"]}]})
        assert errs[0][0] == ("instances", 0, "command")
        assert "unknown placeholder {prot}" in errs[0][1]

    def test_instance_policy_constraint(self) -> None:
        """An instance override that breaks a policy bound is reported at the instance's key."""
        errs = errors_of({"version": 1, "instances": [{"name": "a", "restart": {"factor": 0.5}}]})
        assert errs[0][0] == ("instances", 0, "restart", "factor")

    def test_instance_empty_command(self) -> None:
        """An instance command that names no program is refused."""
        errs = errors_of({"version": 1, "instances": [{"name": "a", "command": []}]})
        assert errs[0][0] == ("instances", 0, "command")

    def test_decl_lookup(self) -> None:
        """``decl`` and ``resolve`` find instances by name and raise `NotFound` otherwise."""
        f = fleet(instances=[{"name": "a"}, {"name": "b"}])
        assert f.names() == ["a", "b"]
        assert f.decl("b").name == "b"
        with pytest.raises(NotFound):
            f.decl("c")
        with pytest.raises(NotFound):
            f.resolve("c")


class TestResolve:
    def test_builtin_unchanged(self) -> None:
        """An instance with no overrides gets the built-in definition and the default policies."""
        r = fleet(instances=[{"name": "a", "framework": "zeroclaw"}]).resolve("a")
        assert r.spec == builtin_spec("zeroclaw")
        assert r.restart == RestartPolicy() and r.health == HealthPolicy() and r.logs == LogPolicy()

    def test_layers(self) -> None:
        """Framework keys: built-in ← frameworks ← instance; env merges per variable."""
        f = fleet(
            frameworks={"openclaw": {"command": ["/opt/oc", "{port}"], "env": {"A": "1", "B": "2"}}},
            instances=[{"name": "a", "framework": "openclaw", "env": {"B": "3", "C": "4"}}],
        )
        spec = f.resolve("a").spec
        assert spec.command == ["/opt/oc", "{port}"]
        assert spec.env["A"] == "1" and spec.env["B"] == "3" and spec.env["C"] == "4"
        assert spec.env["OPENCLAW_CONFIG_PATH"] == "{config}"  # built-in variable kept
        assert f.resolve("a").env == spec.env

    @pytest.mark.parametrize(
        ("defaults", "framework", "instance", "expected"),
        [
            (None, None, None, 330.0),
            (30, None, None, 30.0),
            (30, 100, None, 100.0),
            (30, 100, 5, 5.0),
            (None, None, 5, 5.0),
        ],
    )
    def test_stop_timeout_precedence(
        self, defaults: float | None, framework: float | None, instance: float | None, expected: float
    ) -> None:
        """stop_timeout: instance, then frameworks.<name>, then defaults, then the built-in."""
        data: dict[str, Any] = {"instances": [{"name": "a", "framework": "openclaw"}]}
        if defaults is not None:
            data["defaults"] = {"stop_timeout": defaults}
        if framework is not None:
            data["frameworks"] = {"openclaw": {"stop_timeout": framework}}
        if instance is not None:
            data["instances"][0]["stop_timeout"] = instance
        assert fleet(**data).resolve("a").spec.stop_timeout == expected

    def test_policy_partial(self) -> None:
        """An instance's policy keys replace only those keys of the defaults."""
        f = fleet(
            defaults={"restart": {"policy": "always", "max_delay": "30s"}, "health": {"interval": "5s"}},
            instances=[{"name": "a", "restart": {"max_delay": "2s"}, "logs": {"backups": 1}}],
        )
        r = f.resolve("a")
        assert r.restart.policy == "always" and r.restart.max_delay == 2.0
        assert r.health.interval == 5.0
        assert r.logs.backups == 1 and r.logs.max_bytes == LogPolicy().max_bytes

    def test_custom_framework(self) -> None:
        """A framework defined in the file runs with its command and FrameworkSpec defaults elsewhere."""
        f = fleet(
            defaults={"stop_timeout": "7s"},
            frameworks={"mine": {"command": ["{python}", "-m", "mine", "{port}"]}},
            instances=[{"name": "a", "framework": "mine", "model": "m", "persona": "p"}],
        )
        r = f.resolve("a")
        assert r.spec.name == "mine" and r.spec.command[0] == "{python}"
        assert r.spec.stop_timeout == 7.0
        assert (r.model, r.persona) == ("m", "p")

    def test_resolved_is_frozen_and_comparable(self) -> None:
        """Resolving the same declaration twice gives equal, immutable results."""
        a = fleet(instances=[{"name": "a"}]).resolve("a")
        b = fleet(instances=[{"name": "a"}]).resolve("a")
        assert a == b
        with pytest.raises(ValidationError):
            a.model = "x"  # type: ignore[misc]


class TestFingerprints:
    @staticmethod
    def resolved(**instance: Any) -> Any:
        return fleet(instances=[{"name": "a", **instance}]).resolve("a")

    @pytest.mark.parametrize(
        "change",
        [
            {"framework": "zeroclaw"},
            {"command": ["x"]},
            {"env": {"A": "1"}},
            {"model": "m"},
            {"persona": "p"},
            {"ready": {"kind": "tcp"}},
            {"stop_signal": "SIGINT"},
            {"stop_timeout": 3},
        ],
    )
    def test_process_changes(self, change: dict[str, Any]) -> None:
        """Anything that shapes the argv, env, config or identity changes the process fingerprint."""
        base, changed = self.resolved(), self.resolved(**change)
        assert base.process_fingerprint() != changed.process_fingerprint()

    @pytest.mark.parametrize(
        "change",
        [
            {"restart": {"max_retries": 1}},
            {"health": {"interval": 1}},
            {"logs": {"backups": 0}},
            {"autostart": False},
        ],
    )
    def test_policy_changes(self, change: dict[str, Any]) -> None:
        """Policy keys and autostart change only the policy fingerprint."""
        base, changed = self.resolved(), self.resolved(**change)
        assert base.process_fingerprint() == changed.process_fingerprint()
        assert base.policy_fingerprint() != changed.policy_fingerprint()

    @pytest.mark.parametrize("change", [{"project": "p"}, {"project": "p", "projects": {"p": {"goal": "g"}}}])
    def test_context_changes(self, change: dict[str, Any]) -> None:
        """A project (or its goal) changes only what PROJECT.md says: the context fingerprint."""
        projects = change.pop("projects", None)
        base = self.resolved()
        changed = fleet(instances=[{"name": "a", **change}], projects=projects).resolve("a")
        assert base.process_fingerprint() == changed.process_fingerprint()
        assert base.policy_fingerprint() == changed.policy_fingerprint()
        assert base.context_fingerprint() != changed.context_fingerprint()

    def test_stable(self) -> None:
        """The same declaration always has the same fingerprints."""
        assert self.resolved().process_fingerprint() == self.resolved().process_fingerprint()
        assert len(self.resolved().policy_fingerprint()) == 64
