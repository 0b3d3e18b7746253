"""Provisioning: the instance it creates on disk, its validation, rollback at every step, re-render and
removal."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from ruamel.yaml import YAML

import supervisor._fs as fs_module
import supervisor._staging as staging_module
import supervisor.personas as personas_module
import supervisor.provision as provision_module
from supervisor.errors import (
    InvalidID,
    InvalidName,
    NameExists,
    NotFound,
    PersonaError,
    ProvisionError,
    RequiredField,
    UnsupportedFramework,
)
from supervisor.frameworks.expand import PlaceholderValues, expand_command, expand_probe
from supervisor.frameworks.registry import BUILTIN_FRAMEWORKS, builtin_spec
from supervisor.frameworks.render import DEFAULT_MODEL
from supervisor.frameworks.spec import FrameworkSpec
from supervisor.models import SCHEMA_VERSION, CreateRequest, HierarchyRole, InstanceStatus
from supervisor.paths import Home
from supervisor.personas import Persona, PersonaCatalog
from supervisor.port_claims import ClaimRegistry
from supervisor.provision import Provisioner, identity_templates
from supervisor.store import Store


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


@pytest.fixture
def provisioner(store: Store, home: Home, tmp_path: Path) -> Provisioner:
    """A provisioner with claims of its own, so a test can read them; ports are still checked machine-wide
    by binding, so no test assumes it owns a port."""
    return Provisioner(store, home, claims=ClaimRegistry(tmp_path / "port-claims"))


def _claimed(provisioner: Provisioner) -> list[int]:
    return [claim.port for claim in provisioner.claims.claims()]


def _req(name: str = "strategist-sarah", framework: str = "embedded", **kw: Any) -> CreateRequest:
    return CreateRequest(name=name, framework=framework, **kw)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_nothing_left(store: Store) -> None:
    leftovers = sorted(p.name for p in store.root.iterdir()) if store.root.exists() else []
    assert leftovers in ([], [".lock"]), leftovers
    assert store.list() == []
    assert store.problems() == []


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make a directory unwritable even for root (immutable attribute), or by mode for other users."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a directory read-only")
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("this filesystem does not support the immutable attribute")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)


class TestProvision:
    def test_layout_and_permissions(self, provisioner: Provisioner, store: Store) -> None:
        """The instance directory, workspace, state, tmp, logs and secrets exist owner-only; token and config
        are 0600."""
        inst = provisioner.provision(_req())
        root = store.dir(inst.id)
        for sub in (
            "",
            "workspace",
            "workspace/memory",
            "workspace/sessions",
            "state",
            "tmp",
            "logs",
            "secrets",
        ):
            assert (root / sub).is_dir()
            assert _mode(root / sub) == 0o700, sub
        assert _mode(root / "secrets" / "token") == 0o600
        assert _mode(Path(inst.config_path)) == 0o600
        assert _mode(root / "instance.json") == 0o600
        assert Path(inst.config_path) == root / "config.json"
        assert Path(inst.workspace_path) == root / "workspace"

    def test_saved_instance(self, provisioner: Provisioner, store: Store) -> None:
        """The saved instance is created, at the current schema, with derived display name and defaults."""
        inst = provisioner.provision(_req())
        saved = store.get(inst.id)
        assert saved.status is InstanceStatus.CREATED
        assert saved.schema_version == SCHEMA_VERSION
        assert saved.display_name == "Strategist Sarah"
        assert saved.created_by == "user"
        assert saved.model == DEFAULT_MODEL
        assert saved.created_at is not None
        assert 43000 <= saved.port <= 43999
        assert saved.config_hash == hashlib.sha256(Path(saved.config_path).read_bytes()).hexdigest()

    def test_token(self, provisioner: Provisioner, store: Store) -> None:
        """A random url-safe token is returned and stored in secrets/token, never in instance.json."""
        inst = provisioner.provision(_req())
        assert len(inst.auth_token) >= 43
        assert store.token(inst.id) == inst.auth_token
        assert inst.auth_token not in (store.dir(inst.id) / "instance.json").read_text()
        assert store.get(inst.id).auth_token == ""
        other = provisioner.provision(_req("other"))
        assert other.auth_token != inst.auth_token

    def test_request_fields_kept(self, provisioner: Provisioner, store: Store) -> None:
        """Role, project, parent, creator and a given display name are stored as requested."""
        inst = provisioner.provision(
            _req(
                hierarchy_role=HierarchyRole.CAPTAIN,
                project_id="apollo",
                parent_id="cmd-1",
                created_by="cmd-1",
                display_name="Captain S.",
                model="gpt-5",
            )
        )
        saved = store.get(inst.id)
        assert saved.hierarchy_role is HierarchyRole.CAPTAIN
        assert (saved.project_id, saved.parent_id, saved.created_by) == ("apollo", "cmd-1", "cmd-1")
        assert saved.display_name == "Captain S."
        assert saved.model == "gpt-5"

    def test_ports_distinct(self, provisioner: Provisioner) -> None:
        """Each instance gets its own port from the instance range, each claimed."""
        ports = [provisioner.provision(_req(f"agent-{i}")).port for i in range(3)]
        assert len(set(ports)) == 3 and all(43000 <= port <= 43999 for port in ports)
        assert _claimed(provisioner) == sorted(ports)

    def test_concurrent_threads(self, provisioner: Provisioner, store: Store) -> None:
        """Provisioning from several threads at once gives distinct ports and loses no instance."""
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                Provisioner(store, provisioner.home).provision(_req(f"agent-{i}"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        instances = store.list()
        assert len(instances) == 8
        assert len({i.port for i in instances}) == 8

    def test_same_name_racing_threads(self, provisioner: Provisioner, store: Store) -> None:
        """Two threads provisioning one name: exactly one wins, the other gets NameExists."""
        outcomes: list[str] = []

        def run() -> None:
            try:
                Provisioner(store, provisioner.home).provision(_req("twin"))
                outcomes.append("ok")
            except NameExists:
                outcomes.append("exists")

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["exists", "exists", "exists", "ok"]
        assert len(store.list()) == 1


class TestProvisionFrameworks:
    @pytest.mark.parametrize("framework", BUILTIN_FRAMEWORKS)
    def test_config_file_per_framework(self, provisioner: Provisioner, framework: str) -> None:
        """Every built-in framework gets its config file, named by its definition, in its own format."""
        inst = provisioner.provision(_req(framework=framework))
        path = Path(inst.config_path)
        assert path == provisioner.store.dir(inst.id) / builtin_spec(framework).config_file
        text = path.read_text()
        if framework == "zeroclaw":
            data = tomllib.loads(text)
            assert data["gateway"]["port"] == inst.port
            assert data["workspace"]["path"] == inst.workspace_path
        elif framework == "hermes":
            assert "default: claude-sonnet-4" in text
        else:
            data = json.loads(text)
            assert inst.auth_token in text
            assert str(inst.port) in text

    @pytest.mark.parametrize("framework", ["hermes", "zeroclaw"])
    def test_framework_home_is_the_state_dir(self, provisioner: Provisioner, framework: str) -> None:
        """Hermes and ZeroClaw read their config from their home: both are the instance's state/ (which the
        agent may write), never the instance directory (which holds instance.json and the logs)."""
        inst = provisioner.provision(_req(framework=framework))
        state = provisioner.store.dir(inst.id) / "state"
        assert Path(inst.config_path).parent == state
        spec = builtin_spec(framework)
        home = spec.env.get("HERMES_HOME") or spec.command[spec.command.index("--config-dir") + 1]
        assert home == "{instance_dir}/state"

    def test_unknown_framework(self, provisioner: Provisioner, store: Store) -> None:
        """A framework without a definition is UnsupportedFramework, and nothing is written."""
        with pytest.raises(UnsupportedFramework, match="'nanoclaw'"):
            provisioner.provision(_req(framework="nanoclaw"))
        _assert_nothing_left(store)

    @pytest.mark.parametrize("config_format", ["json", "toml", "yaml"])
    def test_definition_without_renderer_gets_the_generic_config(
        self, store: Store, home: Home, config_format: str
    ) -> None:
        """A framework defined only as data is provisioned with the generic config in its own format."""
        spec = FrameworkSpec.model_validate(
            {
                "name": "notes-bot",
                "command": ["{python}", "-m", "notes_bot", "--config", "{config}"],
                "config_format": config_format,
                "config_file": f"notes.{config_format}",
            }
        )
        provisioner = Provisioner(store, home)
        inst = provisioner.provision(_req(framework="notes-bot"), spec=spec)
        path = Path(inst.config_path)
        assert path.name == f"notes.{config_format}" and _mode(path) == 0o600
        text = path.read_text()
        parsers: dict[str, Callable[[str], Any]] = {
            "json": json.loads,
            "toml": tomllib.loads,
            "yaml": YAML(typ="safe").load,
        }
        parse = parsers[config_format]
        parsed = parse(text)
        assert parsed == {
            "name": inst.name,
            "port": inst.port,
            "host": "127.0.0.1",
            "token": store.token(inst.id),
            "model": inst.model,
            "workspace": inst.workspace_path,
        }
        assert provisioner.rerender(store.get(inst.id), spec=spec) == inst.config_hash


class TestIdentityFiles:
    def _files(self, store: Store, inst_id: str) -> dict[str, str]:
        workspace = store.dir(inst_id) / "workspace"
        return {p.name: p.read_text() for p in workspace.iterdir() if p.is_file()}

    def test_standalone(self, provisioner: Provisioner, store: Store) -> None:
        """A standalone instance gets IDENTITY, SOUL and MEMORY, rendered with its names."""
        inst = provisioner.provision(_req(framework="zeroclaw"))
        files = self._files(store, inst.id)
        assert set(files) == {"IDENTITY.md", "SOUL.md", "MEMORY.md"}
        assert "Strategist Sarah" in files["IDENTITY.md"]
        assert "zeroclaw" in files["IDENTITY.md"]
        assert "{{" not in "".join(files.values())

    @pytest.mark.parametrize(
        ("role", "has_tools"),
        [(HierarchyRole.COMMANDER, True), (HierarchyRole.CAPTAIN, True), (HierarchyRole.TALON, False)],
    )
    def test_roles(
        self, provisioner: Provisioner, store: Store, role: HierarchyRole, has_tools: bool
    ) -> None:
        """Commanders and captains get TOOLS.md; each role's IDENTITY.md says its role."""
        inst = provisioner.provision(_req(hierarchy_role=role))
        files = self._files(store, inst.id)
        assert ("TOOLS.md" in files) is has_tools
        assert role.value.capitalize() in files["IDENTITY.md"]

    def test_project(self, provisioner: Provisioner, store: Store) -> None:
        """An instance in a project gets PROJECT.md with the project's name, goal and description."""
        inst = provisioner.provision(
            _req(
                hierarchy_role=HierarchyRole.TALON,
                project_id="apollo",
                project_name="Apollo",
                project_goal="Land on the moon",
                project_description="A long story.",
                parent_id="4f1c0d2e-0000-4000-8000-000000000000",
                parent_name="captain-x",
            )
        )
        project = self._files(store, inst.id)["PROJECT.md"]
        assert "Apollo" in project
        assert "Land on the moon" in project
        assert "A long story." in project
        assert "Captain X (captain-x)" in project  # the parent as people and the agent API name it
        assert "4f1c0d2e" not in project

    def test_project_name_defaults_to_id(self, provisioner: Provisioner, store: Store) -> None:
        """Without a project name, the project id names the project."""
        inst = provisioner.provision(_req(project_id="apollo"))
        assert "apollo" in self._files(store, inst.id)["PROJECT.md"]

    def test_persona_overrides_and_adds(self, provisioner: Provisioner, store: Store) -> None:
        """A persona's templates replace built-ins of the same name and add new files."""
        persona = PersonaCatalog.load(provisioner.home).get("engineer")
        inst = provisioner.provision(_req(), persona)
        files = self._files(store, inst.id)
        assert "software engineer" in files["SOUL.md"]
        assert "strategist-sarah's workspace" in files["CONVENTIONS.md"]
        assert "software engineer" in files["IDENTITY.md"]  # persona role reaches the built-in template

    def test_memory_seeds(self, provisioner: Provisioner, store: Store) -> None:
        """A persona's memory seeds are listed in MEMORY.md."""
        persona = Persona(id="p", memory_seeds=["The user likes tea.", "Deploys happen on Fridays."])
        inst = provisioner.provision(_req(), persona)
        memory = self._files(store, inst.id)["MEMORY.md"]
        assert "- The user likes tea.\n" in memory
        assert "- Deploys happen on Fridays.\n" in memory

    @pytest.mark.parametrize("role", list(HierarchyRole))
    @pytest.mark.parametrize("project", ["", "apollo"])
    def test_files_end_cleanly(
        self, provisioner: Provisioner, store: Store, role: HierarchyRole, project: str
    ) -> None:
        """Every rendered file ends with exactly one newline, whatever parts were left out."""
        inst = provisioner.provision(_req(hierarchy_role=role, project_id=project))
        for name, text in self._files(store, inst.id).items():
            assert text.endswith("\n") and not text.endswith("\n\n"), name

    def test_builtin_template_sets(self) -> None:
        """The shipped templates give each role exactly the files it should have."""
        names = {
            role: set(identity_templates(role))
            for role in (HierarchyRole.STANDALONE, HierarchyRole.COMMANDER, HierarchyRole.TALON)
        }
        assert names[HierarchyRole.STANDALONE] == {"IDENTITY.md", "SOUL.md", "MEMORY.md"}
        assert names[HierarchyRole.COMMANDER] == {"IDENTITY.md", "SOUL.md", "MEMORY.md", "TOOLS.md"}
        assert "PROJECT.md" not in identity_templates(HierarchyRole.TALON)  # eyried keeps it, not the agent


class TestPersonas:
    def test_persona_by_request_id(self, provisioner: Provisioner, store: Store) -> None:
        """A persona id in the request is looked up in the catalog; its model and temperature apply."""
        inst = provisioner.provision(_req(framework="zeroclaw", persona_id="engineer"))
        saved = store.get(inst.id)
        assert saved.persona_id == "engineer"
        config = tomllib.loads(Path(inst.config_path).read_text())
        assert config["default_temperature"] == 0.2
        assert config["default_model"] == saved.model == "claude-sonnet-4"

    def test_request_model_overrides_persona(self, provisioner: Provisioner) -> None:
        """The request's model beats the persona's preferred model."""
        persona = Persona(id="p", preferred_model="persona-model")
        assert provisioner.provision(_req(model="asked-model"), persona).model == "asked-model"
        assert provisioner.provision(_req("second"), persona).model == "persona-model"

    def test_unknown_persona_id(self, provisioner: Provisioner, store: Store) -> None:
        """An unknown persona id is NotFound, and nothing is written."""
        with pytest.raises(NotFound, match="persona 'ghost'"):
            provisioner.provision(_req(persona_id="ghost"))
        _assert_nothing_left(store)

    def test_catalog_given(self, store: Store, home: Home) -> None:
        """A catalog passed to the provisioner is used instead of loading one."""
        catalog = PersonaCatalog([Persona(id="solo", preferred_model="solo-model")])
        inst = Provisioner(store, home, personas=catalog).provision(_req(persona_id="solo"))
        assert inst.model == "solo-model"


class TestValidation:
    @pytest.mark.parametrize(
        ("request_", "error"),
        [
            (CreateRequest(name="", framework="embedded"), RequiredField),
            (CreateRequest(name="x", framework=""), RequiredField),
            (CreateRequest(name="Bad Name", framework="embedded"), InvalidName),
            (CreateRequest(name="../escape", framework="embedded"), InvalidName),
            (CreateRequest(name="a" * 64, framework="embedded"), InvalidName),
            (CreateRequest(name="ok", framework="nope"), UnsupportedFramework),
        ],
    )
    def test_bad_request(
        self, provisioner: Provisioner, store: Store, request_: CreateRequest, error: type[Exception]
    ) -> None:
        """Each invalid request raises its own error and writes nothing."""
        with pytest.raises(error):
            provisioner.provision(request_)
        _assert_nothing_left(store)

    def test_name_exists(self, provisioner: Provisioner, store: Store) -> None:
        """A taken name raises NameExists and leaves the first instance alone."""
        first = provisioner.provision(_req())
        with pytest.raises(NameExists, match="strategist-sarah"):
            provisioner.provision(_req(framework="zeroclaw"))
        assert [i.id for i in store.list()] == [first.id]


def _fail(exc: BaseException) -> Callable[..., Any]:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raiser


def _fail_on_call(n: int, real: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(28, "No space left on device", str(args[0]))
        return real(*args, **kwargs)

    return wrapper


class TestRollback:
    """Whatever step fails, nothing is left behind: no directory, no reserved port, no half-written file."""

    @pytest.mark.parametrize(
        ("module", "target", "make", "error"),
        [
            (
                provision_module,
                "render_config",
                lambda: _fail(RuntimeError("renderer broke")),
                ProvisionError,
            ),
            (
                personas_module,  # imported by provisioning where it renders
                "render_template",
                lambda: _fail(PersonaError("template broke")),
                PersonaError,
            ),
            (staging_module, "_make_dir", lambda: _fail_on_call(4, staging_module._make_dir), ProvisionError),
            (staging_module, "write_new", lambda: _fail_on_call(2, fs_module.write_new), ProvisionError),
            (staging_module, "write_new", lambda: _fail_on_call(4, fs_module.write_new), ProvisionError),
            (staging_module, "write_new", lambda: _fail_on_call(5, fs_module.write_new), ProvisionError),
            (staging_module, "fsync_dir", lambda: _fail(OSError(5, "Input/output error")), ProvisionError),
        ],
        ids=["render", "template", "mkdir", "identity-write", "config-write", "token", "fsync"],
    )
    def test_step_failure(
        self,
        provisioner: Provisioner,
        store: Store,
        monkeypatch: pytest.MonkeyPatch,
        module: object,
        target: str,
        make: Callable[[], Callable[..., Any]],
        error: type[Exception],
    ) -> None:
        """A failure at this step raises, removes everything and frees the port for the next instance."""
        monkeypatch.setattr(module, target, make())
        with pytest.raises(error):
            provisioner.provision(_req())
        _assert_nothing_left(store)
        assert _claimed(provisioner) == []
        monkeypatch.undo()
        assert [provisioner.provision(_req()).port] == _claimed(provisioner)

    def test_store_save_fails(
        self, provisioner: Provisioner, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing instance.json write leaves nothing behind and names the step."""
        monkeypatch.setattr(Store, "save", _fail(OSError(28, "No space left on device")))
        with pytest.raises(ProvisionError, match=r"save instance\.json"):
            provisioner.provision(_req())
        _assert_nothing_left(store)

    def test_rename_fails(
        self, provisioner: Provisioner, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing final rename leaves nothing behind."""
        monkeypatch.setattr(os, "rename", _fail(OSError(18, "Invalid cross-device link")))
        with pytest.raises(ProvisionError, match="move the instance into place"):
            provisioner.provision(_req())
        monkeypatch.undo()
        _assert_nothing_left(store)

    def test_interrupt_still_rolls_back(
        self, provisioner: Provisioner, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Even a KeyboardInterrupt mid-way removes what was written, then propagates unchanged."""
        real = fs_module.write_new

        def write_new(path: Path, *args: Any, **kwargs: Any) -> None:
            if path.parent.name == "secrets":  # the token, after the identity files and the config
                raise KeyboardInterrupt
            real(path, *args, **kwargs)

        monkeypatch.setattr(staging_module, "write_new", write_new)
        with pytest.raises(KeyboardInterrupt):
            provisioner.provision(_req())
        _assert_nothing_left(store)

    def test_read_only_store(self, provisioner: Provisioner, store: Store) -> None:
        """A store directory that cannot be written is a ProvisionError and leaves it unchanged."""
        store.lock().touch()  # the store directory and its lock file exist already
        with _read_only(store.root):
            with pytest.raises(ProvisionError, match="create directories"):
                provisioner.provision(_req())
            assert sorted(p.name for p in store.root.iterdir()) == [".lock"]
        assert _claimed(provisioner) == []
        assert [provisioner.provision(_req()).port] == _claimed(provisioner)

    def test_store_lock_unusable(self, provisioner: Provisioner, store: Store) -> None:
        """A store lock that cannot be opened is a ProvisionError naming it, with nothing written."""
        store.lock().mkdir()
        with pytest.raises(ProvisionError, match=r"Is a directory \(.*/instances/\.lock\)"):
            provisioner.provision(_req())
        assert sorted(p.name for p in store.root.iterdir()) == [".lock"]

    def test_crash_debris_removed(self, provisioner: Provisioner, store: Store) -> None:
        """A half-built instance left in staging by a crash is removed by the next provisioning."""
        debris = store.root / ".staging" / "dead-id" / "workspace"
        debris.mkdir(parents=True)
        (debris / "IDENTITY.md").write_text("half")
        inst = provisioner.provision(_req())
        assert not (store.root / ".staging").exists()
        assert [i.id for i in store.list()] == [inst.id]

    def test_staging_blocked_by_file(self, provisioner: Provisioner, store: Store) -> None:
        """A stray file where the staging directory goes is cleared, not a crash."""
        store.lock()
        (store.root / ".staging").write_text("junk")
        assert [provisioner.provision(_req()).port] == _claimed(provisioner)


class TestRerender:
    def test_new_model(self, provisioner: Provisioner, store: Store) -> None:
        """Re-rendering with a new model rewrites the config in place, 0600, and returns its hash."""
        inst = provisioner.provision(_req(framework="zeroclaw"))
        digest = provisioner.rerender(inst, model="gpt-5")
        path = Path(inst.config_path)
        assert tomllib.loads(path.read_text())["default_model"] == "gpt-5"
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == provisioner.config_hash(inst)
        assert digest != inst.config_hash
        assert _mode(path) == 0o600

    def test_unchanged_inputs_same_hash(self, provisioner: Provisioner) -> None:
        """Re-rendering with nothing changed gives the provisioned hash (reload can tell nothing changed)."""
        inst = provisioner.provision(_req(framework="openclaw"))
        assert provisioner.rerender(inst) == inst.config_hash

    def test_token_kept(self, provisioner: Provisioner, store: Store) -> None:
        """The re-rendered config carries the instance's stored token."""
        inst = provisioner.provision(_req(framework="picoclaw"))
        stored = store.get(inst.id)  # read back: no token in memory
        provisioner.rerender(stored, model="m2")
        config = json.loads(Path(inst.config_path).read_text())
        assert config["channels"]["pico"]["token"] == inst.auth_token

    def test_empty_model_means_persona_default(self, provisioner: Provisioner) -> None:
        """An empty model falls back to the persona's preferred model; None keeps the instance's."""
        inst = provisioner.provision(_req(model="first"))
        provisioner.rerender(inst, model=None)
        assert json.loads(Path(inst.config_path).read_text())["model"] == "first"
        provisioner.rerender(inst, model="", persona=Persona(id="p", preferred_model="persona-model"))
        assert json.loads(Path(inst.config_path).read_text())["model"] == "persona-model"
        provisioner.rerender(inst, model="")
        assert json.loads(Path(inst.config_path).read_text())["model"] == DEFAULT_MODEL

    def test_persona_temperature(self, provisioner: Provisioner) -> None:
        """A persona given at re-render sets the rendered temperature."""
        inst = provisioner.provision(_req(framework="zeroclaw"))
        provisioner.rerender(inst, persona=Persona(id="p", temperature=0.1))
        assert tomllib.loads(Path(inst.config_path).read_text())["default_temperature"] == 0.1

    def test_missing_token_generated(self, provisioner: Provisioner, store: Store) -> None:
        """An instance without a token file (as eyrie leaves them) gets one, 0600, used in the config."""
        inst = provisioner.provision(_req())
        token_file = store.dir(inst.id) / "secrets" / "token"
        token_file.unlink()
        provisioner.rerender(store.get(inst.id))
        token = store.token(inst.id)
        assert token and token != inst.auth_token
        assert _mode(token_file) == 0o600
        assert json.loads(Path(inst.config_path).read_text())["token"] == token

    def test_unsupported_framework(self, provisioner: Provisioner, store: Store) -> None:
        """An instance whose framework has no definition cannot be re-rendered."""
        inst = provisioner.provision(_req())
        inst.framework = "gone"
        with pytest.raises(UnsupportedFramework):
            provisioner.rerender(inst)

    def test_unwritable_config(self, provisioner: Provisioner) -> None:
        """A config path whose directory is gone is a ProvisionError naming the path."""
        inst = provisioner.provision(_req())
        inst.config_path = str(Path(inst.config_path).parent / "missing" / "config.json")
        with pytest.raises(ProvisionError, match=r"missing/config\.json"):
            provisioner.rerender(inst)


class TestConfigHash:
    def test_tracks_file(self, provisioner: Provisioner) -> None:
        """The hash is the provisioned one until the file changes on disk."""
        inst = provisioner.provision(_req())
        assert provisioner.config_hash(inst) == inst.config_hash
        Path(inst.config_path).write_text("{}\n")
        assert provisioner.config_hash(inst) == hashlib.sha256(b"{}\n").hexdigest()

    def test_missing_file(self, provisioner: Provisioner) -> None:
        """A missing config (or none recorded) hashes to the empty string."""
        inst = provisioner.provision(_req())
        Path(inst.config_path).unlink()
        assert provisioner.config_hash(inst) == ""
        inst.config_path = ""
        assert provisioner.config_hash(inst) == ""


class TestDeprovision:
    def test_purge(self, provisioner: Provisioner, store: Store) -> None:
        """With purge the directory is gone and the port and name are free again."""
        inst = provisioner.provision(_req())
        assert provisioner.deprovision(inst.id, purge=True) is None
        assert not store.dir(inst.id).exists()
        again = provisioner.provision(_req())
        assert again.port == inst.port

    def test_to_the_trash(self, provisioner: Provisioner, store: Store, home: Home) -> None:
        """By default the directory moves to the trash intact; the name can be used again."""
        inst = provisioner.provision(_req())
        entry = provisioner.deprovision(inst.id)
        assert entry is not None and entry.path.parent == home.root / "removed"
        assert entry.entry.startswith(f"strategist-sarah-{inst.id}-")
        assert (entry.path / "workspace" / "IDENTITY.md").is_file()
        assert (entry.path / "secrets" / "token").read_text().strip() == inst.auth_token
        assert store.list() == []
        assert provisioner.provision(_req()).name == "strategist-sarah"

    @pytest.mark.parametrize("purge", [False, True])
    def test_unknown(self, provisioner: Provisioner, purge: bool) -> None:
        """Removing an instance that does not exist is NotFound."""
        with pytest.raises(NotFound):
            provisioner.deprovision("0f0f0f0f", purge=purge)

    @pytest.mark.parametrize("bad", ["../x", "a/b", ""])
    def test_bad_id(self, provisioner: Provisioner, bad: str) -> None:
        """An unsafe id is refused before it touches a path."""
        with pytest.raises(InvalidID):
            provisioner.deprovision(bad, purge=True)


class TestProvisionedEmbeddedRuns:
    @pytest.mark.anyio
    async def test_health(self, provisioner: Provisioner) -> None:
        """A provisioned embedded instance, run with its expanded command, answers its probes on its port."""
        inst = provisioner.provision(_req())
        spec = builtin_spec("embedded")
        values = PlaceholderValues(
            port=inst.port,
            config=inst.config_path,
            instance_dir=str(Path(inst.config_path).parent),
            workspace=inst.workspace_path,
            name=inst.name,
            id=inst.id,
        )
        argv, env = expand_command(spec, values)
        ready = expand_probe(spec.ready, values)
        process = await anyio.open_process(argv, env={**os.environ, **env}, cwd=inst.workspace_path)
        try:
            assert process.stdout is not None
            with anyio.fail_after(10):
                line = await process.stdout.receive()
            assert f"EMBEDDED_READY port={inst.port}".encode() in line
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{inst.port}") as client:
                assert (await client.get(ready.path)).status_code == 200
                health = (await client.get("/health")).json()
            assert health["name"] == inst.name
            assert health["pid"] == process.pid
        finally:
            process.terminate()
            with anyio.fail_after(10):
                assert await process.wait() == 0
            await process.aclose()
