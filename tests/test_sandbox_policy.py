"""The sandbox policy as data: the fleet file's ``sandbox:`` key, the rules a policy makes, and the install
prefixes found from a program."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import supervisor
from supervisor.errors import FleetFileError
from supervisor.fleet import parse_fleet
from supervisor.frameworks.expand import PlaceholderValues
from supervisor.frameworks.sandbox_paths import expand_sandbox_paths
from supervisor.sandbox._landlock import READ, READ_EXEC, READ_FILE
from supervisor.sandbox.confine import missing_features
from supervisor.sandbox.policy import FULL, Grant, SandboxPolicy, grants
from supervisor.sandbox.prefix import install_prefixes
from supervisor.sandbox.setting import MAX_EXTRA_PATHS, SandboxSetting
from supervisor.systemd.doctor import check_sandbox


def fleet(instance_keys: str = "", framework_keys: str = "") -> str:
    frameworks = f"frameworks:\n  tool:\n    command: [tool]\n{framework_keys}" if framework_keys else ""
    framework = "tool" if framework_keys else "embedded"
    return f"version: 1\n{frameworks}instances:\n  - name: a\n    framework: {framework}\n{instance_keys}"


class TestSetting:
    @pytest.mark.parametrize("value", ["off", False])
    def test_off_turns_it_off(self, value: object) -> None:
        """``sandbox: off`` (and YAML 1.1's false) mean unconfined."""
        assert SandboxSetting.model_validate(value).enabled is False

    @pytest.mark.parametrize("value", [None, "on", True, {}])
    def test_on_and_empty_mean_the_default(self, value: object) -> None:
        """An empty key or ``on`` is the default policy, nothing added."""
        assert SandboxSetting.model_validate(value) == SandboxSetting()

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("maybe", "must be 'off' or a mapping"),
            ({"read": ["relative/dir"]}, "must be absolute"),
            ({"write": ["/"]}, "whole filesystem"),
            ({"write": ["/a\0b"]}, "without NUL"),
            ({"read": [f"/p{i}" for i in range(MAX_EXTRA_PATHS + 1)]}, f"at most {MAX_EXTRA_PATHS}"),
            ({"exec": ["/x"]}, "Extra inputs are not permitted"),
        ],
    )
    def test_bad_values_are_refused_with_a_reason(self, value: object, message: str) -> None:
        """Each impossible setting is refused, saying why."""
        with pytest.raises(ValidationError, match=message):
            SandboxSetting.model_validate(value)

    def test_layers_add_up_and_off_wins(self) -> None:
        """``plus`` adds paths without duplicates; off on either side is off."""
        base = SandboxSetting(read=("/a",), write=("/w",))
        more = SandboxSetting(read=("/a", "/b"))
        assert base.plus(more) == SandboxSetting(read=("/a", "/b"), write=("/w",))
        assert base.plus(SandboxSetting(enabled=False)).enabled is False


class TestFleetFile:
    def test_instance_paths_add_to_the_frameworks(self) -> None:
        """A framework's paths and its instance's are both in the resolved definition."""
        text = fleet(
            "    sandbox: {read: [/srv/data]}\n",
            "    sandbox:\n      write: [/var/cache/tool]\n",
        )
        spec = parse_fleet(text, path="fleet.yaml").resolve("a").spec
        assert spec.sandbox == SandboxSetting(read=("/srv/data",), write=("/var/cache/tool",))

    def test_off_at_instance_level_wins(self) -> None:
        """``sandbox: off`` on an instance turns off what its framework adds."""
        text = fleet("    sandbox: off\n", "    sandbox: {write: [/var/cache/tool]}\n")
        assert parse_fleet(text, path="fleet.yaml").resolve("a").spec.sandbox.enabled is False

    def test_a_changed_sandbox_restarts_the_instance(self) -> None:
        """The sandbox shapes the process: changing it changes the process fingerprint."""
        before = parse_fleet(fleet(), path="fleet.yaml").resolve("a")
        after = parse_fleet(fleet("    sandbox: {read: [/srv]}\n"), path="fleet.yaml").resolve("a")
        assert before.process_fingerprint() != after.process_fingerprint()

    def test_a_bad_path_names_file_line_and_key(self) -> None:
        """A relative path is refused at load with the file, the line and the key."""
        text = fleet("    sandbox:\n      read: [data]\n")
        with pytest.raises(FleetFileError) as info:
            parse_fleet(text, path="fleet.yaml")
        message = str(info.value)
        assert "fleet.yaml" in message and "sandbox" in message and "must be absolute" in message
        assert info.value.line is not None and info.value.line >= 5

    def test_an_unknown_placeholder_is_refused_at_load(self) -> None:
        """A placeholder the paths cannot expand is an error before anything runs."""
        with pytest.raises(FleetFileError, match=r"\{nope\}"):
            parse_fleet(fleet("    sandbox: {write: ['{instance_dir}/{nope}']}\n"), path="fleet.yaml")

    def test_openclaw_carries_what_it_needs(self) -> None:
        """The built-in OpenClaw definition may write its /tmp log and lock directories, the state-database
        temp directory it makes under ~/.cache, and /dev/null."""
        text = "version: 1\ninstances:\n  - name: a\n    framework: openclaw\n"
        sandbox = parse_fleet(text, path="fleet.yaml").resolve("a").spec.sandbox
        values = PlaceholderValues(
            port=43000, config="/h/c", instance_dir="/h", workspace="/h/w", name="a", id="i"
        )
        _, write = expand_sandbox_paths(sandbox, values)
        cache = str(Path.home() / ".cache" / f"openclaw-{os.getuid()}")
        assert write == ("/tmp/openclaw", f"/tmp/openclaw-state-locks-{os.getuid()}", cache, "/dev/null")


class TestExpansion:
    def test_placeholders_uid_and_home_are_expanded(self) -> None:
        """Paths take the command's placeholders, ``{uid}`` and ``~``; the result is normalised."""
        setting = SandboxSetting(read=("~/models",), write=("{instance_dir}/../shared-{uid}/",))
        values = PlaceholderValues(
            port=1, config="/h/c", instance_dir="/h/i", workspace="/h/i/w", name="a", id="i"
        )
        read, write = expand_sandbox_paths(setting, values)
        assert read == (os.path.expanduser("~/models"),)
        assert write == (f"/h/shared-{os.getuid()}",)


class TestGrants:
    def test_a_policy_makes_these_rules(self) -> None:
        """Working areas in full (made if missing), config and token read-only, extra paths as asked."""
        policy = SandboxPolicy(
            instance_dir="/h/instances/x",
            workspace="/h/instances/x/workspace",
            config="/h/instances/x/config.json",
            token="/h/instances/x/secrets/token",
            port=43000,
            argv=("agent",),
            search_path="/usr/bin",
            read=("/srv/ro",),
            write=("/srv/rw",),
        )
        rules = grants(policy, ("/opt/agent",))
        assert Grant("/h/instances/x/workspace", FULL, create=True) in rules
        assert Grant("/h/instances/x/state", FULL, create=True) in rules
        assert Grant("/h/instances/x/tmp", FULL, create=True) in rules
        assert Grant("/h/instances/x/config.json", READ_FILE) in rules
        assert Grant("/h/instances/x/secrets/token", READ_FILE) in rules
        assert Grant("/opt/agent", READ_EXEC) in rules
        assert Grant("/srv/ro", READ_EXEC, warn=True) in rules
        assert Grant("/srv/rw", FULL, create=True) in rules
        assert Grant("/proc", READ) in rules
        assert not [
            g for g in rules if g.path.startswith("/h") and g.path.rstrip("/") in ("/h", "/h/instances")
        ]
        assert not [g for g in rules if g.path in ("/", "/tmp", "/home", "/root")]


class TestPrefixes:
    def test_a_script_gets_its_own_and_its_interpreters_prefix(self, tmp_path: Path) -> None:
        """A script in ``<prefix>/bin`` run by ``#!/usr/bin/env <interp>``: both prefixes, really resolved."""
        interp_prefix = tmp_path / "node"
        (interp_prefix / "bin").mkdir(parents=True)
        interp = interp_prefix / "bin" / "fakenode"
        interp.write_text("")
        interp.chmod(0o755)
        package = tmp_path / "npm" / "lib" / "node_modules" / "agent"
        package.mkdir(parents=True)
        script = package / "agent.mjs"
        script.write_text("#!/usr/bin/env fakenode\n")
        script.chmod(0o755)
        (tmp_path / "npm" / "bin").mkdir()
        (tmp_path / "npm" / "bin" / "agent").symlink_to(script)
        search = f"{interp_prefix / 'bin'}:{tmp_path / 'npm' / 'bin'}"
        found = install_prefixes(["agent", "gateway"], search, protected=tmp_path / "home")
        assert set(found) == {str(tmp_path / "npm"), str(tmp_path / "npm" / "lib"), str(interp_prefix)}

    def test_an_npm_package_gets_the_node_modules_its_dependencies_are_hoisted_into(
        self, tmp_path: Path
    ) -> None:
        """``npm install`` in a project: the program's dependencies sit beside it in the same ``node_modules``
        (``node_modules/@scope/dep``), so the directory holding ``node_modules`` is the prefix."""
        project = tmp_path / "project"
        package = project / "node_modules" / "agent"
        package.mkdir(parents=True)
        script = package / "agent.mjs"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        (project / "node_modules" / ".bin").mkdir()
        (project / "node_modules" / ".bin" / "agent").symlink_to(script)
        found = install_prefixes(
            [str(project / "node_modules" / ".bin" / "agent")], "", protected=tmp_path / "h"
        )
        assert str(project) in found and str(package) not in found

    def test_a_venv_adds_its_base_interpreter(self, tmp_path: Path) -> None:
        """A venv's program brings the venv and the prefix of the interpreter ``pyvenv.cfg`` names."""
        base = tmp_path / "pyenv" / "3.11"
        (base / "bin").mkdir(parents=True)
        venv = tmp_path / "venv"
        (venv / "bin").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\n")
        program = venv / "bin" / "hermes"
        program.write_text("#!/bin/sh\n")
        found = install_prefixes([str(program)], "", protected=tmp_path / "home")
        assert str(venv) in found and str(base) in found

    def test_a_prefix_never_holds_the_home(self, tmp_path: Path) -> None:
        """A program in ``~/bin`` gets ``~/bin``, not the whole home with the eyrie home inside it."""
        (tmp_path / "bin").mkdir()
        program = tmp_path / "bin" / "agent"
        program.write_text("")
        found = install_prefixes([str(program)], "", protected=tmp_path / ".eyrie")
        assert found == (str(tmp_path / "bin"),)

    def test_this_package_is_readable_for_python_dash_m(self) -> None:
        """``{python} -m supervisor…`` can import the package, even from an editable install."""
        found = install_prefixes(
            [sys.executable, "-m", "supervisor.testing.faulty_agent"], "", Path("/nowhere")
        )
        assert str(Path(supervisor.__file__).resolve().parent.parent) in found


class TestOlderKernels:
    @pytest.mark.parametrize(
        ("abi", "missing"),
        [
            (0, ["Landlock"]),
            (3, ["TCP bind", "signal and abstract-socket scoping"]),
            (5, ["scoping"]),
            (7, []),
        ],
    )
    def test_what_each_abi_lacks_is_said(self, abi: int, missing: list[str]) -> None:
        """Each ABI below 6 names what confinement cannot do there; doctor fails with it, passes at 6+."""
        found = missing_features(abi)
        assert len(found) == len(missing) and all(m in f for m, f in zip(missing, found, strict=True))
        check = check_sandbox(abi)
        assert check.ok is (not missing)
        assert all(m in check.detail for m in missing) and (check.fix == "") is (not missing)
