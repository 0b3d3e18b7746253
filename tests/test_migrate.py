"""Migrations: versioned, each applied once, idempotent, dry-runnable, failure-isolated, and eyrie's ZeroClaw
config migrations edit real files while keeping every comment and the user's formatting."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from supervisor.frameworks.render import RenderContext, default_allowed_commands, render_config
from supervisor.migrate import MIGRATIONS, Migration, MigrationContext, latest_version, migrate_all
from supervisor.models import SCHEMA_VERSION, Instance, MigrationResult, new_instance_id
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store
from supervisor.systemd._agent_checks import layout_check

# What an older eyrie provisioner wrote for ZeroClaw, after a user annotated it by hand.
EYRIE_ZEROCLAW = """\
# ZeroClaw config for strategist-sarah — provisioned by eyrie, tuned by hand.
default_provider = "openrouter"   # who serves the model
default_model = "claude-sonnet-4"
default_temperature = 0.7

[workspace]
path = "/srv/agents/sarah/workspace"  # keep on the fast disk

[gateway]
port = 43001
host = "127.0.0.1"
session_persistence = true
require_pairing = true

# Autonomy: what the agent may do without asking.
[autonomy]
level = "full"            # readonly | supervised | full
workspace_only = true
allowed_commands = [
    "git",   # version control
    "ls",
    # the rest of the old list
    "cat",
    "python3",  # added by me, must stay
]
block_high_risk_commands = true   # old provisioner default
require_approval_for_medium_risk = false
auto_approve = ["Bash", "Read"]   # must stay: headless agents cannot click approve
require_approval_for_actions = true

[security.sandbox]
backend = "none"

[memory]
backend = "sqlite"
auto_save = true

[http_request]
enabled = true
allowed_domains = ["localhost"]
# private hosts the agent may call (the Eyrie API)
allowed_private_hosts = ["localhost", "10.0.0.5"]  # lab box

[web_fetch]
# web_fetch really is spelled allowed_private_hosts: leave it alone
allowed_private_hosts = ["intranet"]
"""


def add_instance(
    store: Store,
    *,
    name: str = "sarah",
    framework: str = "zeroclaw",
    config: str | None = EYRIE_ZEROCLAW,
    schema_version: int = 0,
    config_name: str = "config.toml",
) -> Instance:
    """An instance as eyrie left it: instance.json without schema_version, and its config file."""
    iid = new_instance_id()
    directory = store.root / iid
    directory.mkdir(parents=True, mode=0o700)
    config_path = directory / config_name
    data = {
        "id": iid,
        "name": name,
        "display_name": name.title(),
        "framework": framework,
        "port": 43001,
        "config_path": str(config_path),
        "workspace_path": str(directory / "workspace"),
        "status": "stopped",
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": "user",
    }
    if schema_version:
        data["schema_version"] = schema_version
    (directory / INSTANCE_FILE).write_text(json.dumps(data, indent=2))
    if config is not None:
        config_path.write_text(config)
        config_path.chmod(0o640)
    return store.get(iid)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def result_for(results: list[MigrationResult], inst: Instance) -> MigrationResult:
    [result] = [r for r in results if r.instance_id == inst.id]
    return result


CONFIG_STEPS = MIGRATIONS[:3]
"""eyrie's ZeroClaw config migrations, without the layout step that moves the config into ``state/``."""


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


class TestBuiltinMigrations:
    def test_latest_version_is_the_schema_version(self) -> None:
        """New instances are written at the version of the last built-in migration."""
        assert latest_version() == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))

    def test_eyrie_config_is_migrated(self, store: Store) -> None:
        """An eyrie config gets all three changes, each reported, and ends at the latest version."""
        inst = add_instance(store)
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert result.error == "" and not result.skipped
        assert result.instance_name == "sarah" and result.framework == "zeroclaw"
        assert len(result.applied) == 3
        assert result.applied[0].startswith("autonomy.allowed_commands: added npm, cargo, make, grep")
        assert result.applied[1] == "http_request: renamed allowed_private_hosts to allow_private_hosts"
        assert result.applied[2].startswith(
            "autonomy: removed block_high_risk_commands, require_approval_for_medium_risk,"
            " require_approval_for_actions"
        )
        config = tomllib.loads(Path(inst.config_path).read_text())
        commands = config["autonomy"]["allowed_commands"]
        assert commands[:4] == ["git", "ls", "cat", "python3"]
        assert set(default_allowed_commands()) <= set(commands)
        assert len(commands) == len(set(commands))
        assert config["http_request"]["allow_private_hosts"] == ["localhost", "10.0.0.5"]
        assert "allowed_private_hosts" not in config["http_request"]
        assert config["web_fetch"]["allowed_private_hosts"] == ["intranet"]
        for flag in (
            "block_high_risk_commands",
            "require_approval_for_medium_risk",
            "require_approval_for_actions",
        ):
            assert flag not in config["autonomy"]
        assert config["autonomy"]["auto_approve"] == ["Bash", "Read"]
        assert store.get(inst.id).schema_version == latest_version(CONFIG_STEPS)

    def test_comments_and_formatting_survive(self, store: Store) -> None:
        """Every comment and every untouched line of the user's file is still there, in the same order."""
        inst = add_instance(store)
        migrate_all(store, migrations=CONFIG_STEPS)
        after = Path(inst.config_path).read_text()
        dropped = (
            "block_high_risk_commands",
            "require_approval_for_medium_risk",
            "require_approval_for_actions",
            'allowed_private_hosts = ["localhost"',  # renamed in place
        )
        kept = [line for line in EYRIE_ZEROCLAW.splitlines() if not line.startswith(dropped)]
        after_lines = after.splitlines()
        rest = iter(after_lines)
        missing = [line for line in kept if not any(line == candidate for candidate in rest)]
        assert missing == [], "lines lost or reordered"
        assert 'allow_private_hosts = ["localhost", "10.0.0.5"]  # lab box' in after_lines
        assert '    "python3",  # added by me, must stay' in after_lines
        assert '    "diff",' in after_lines

    def test_file_mode_is_kept(self, store: Store) -> None:
        """The rewritten config keeps the mode the file had."""
        inst = add_instance(store)
        migrate_all(store, migrations=CONFIG_STEPS)
        assert stat.S_IMODE(os.stat(inst.config_path).st_mode) == 0o640

    def test_missing_allow_list_is_created(self, store: Store) -> None:
        """A config with no [autonomy] gets the default allow-list, and nothing else is invented."""
        inst = add_instance(store, config='# bare\ndefault_model = "m"\n')
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        count = len(default_allowed_commands())
        assert result.applied == [
            f"autonomy.allowed_commands: set to the default allow-list ({count} commands)"
        ]
        text = Path(inst.config_path).read_text()
        assert text.startswith('# bare\ndefault_model = "m"\n')
        assert tomllib.loads(text) == {
            "default_model": "m",
            "autonomy": {"allowed_commands": default_allowed_commands()},
        }

    def test_both_private_host_keys_are_merged(self, store: Store) -> None:
        """When both spellings are present, the legacy entries are merged (no duplicates) into the new key."""
        config = '[http_request]\nallow_private_hosts = ["a"]  # new\nallowed_private_hosts = ["a", "b"]\n'
        inst = add_instance(store, config=config)
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert (
            "http_request: merged allowed_private_hosts into allow_private_hosts (added b)" in result.applied
        )
        loaded = tomllib.loads(Path(inst.config_path).read_text())
        assert loaded["http_request"] == {"allow_private_hosts": ["a", "b"]}
        assert "# new" in Path(inst.config_path).read_text()

    def test_unmergeable_private_hosts_is_an_error_and_keeps_the_file(self, store: Store) -> None:
        """A bool beside the legacy list is an error naming both keys; version 1 stays applied."""
        config = '[http_request]\nallow_private_hosts = true\nallowed_private_hosts = ["a"]\n'
        inst = add_instance(store, config=config)
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert "migration 2" in result.error and "allow_private_hosts" in result.error
        assert "keep one of them" in result.error
        assert result.applied and result.applied[0].startswith("autonomy.allowed_commands")
        loaded = tomllib.loads(Path(inst.config_path).read_text())
        assert loaded["http_request"] == {"allow_private_hosts": True, "allowed_private_hosts": ["a"]}
        assert store.get(inst.id).schema_version == 1

    def test_inline_and_dotted_tables(self, store: Store) -> None:
        """Keys written as an inline table or as dotted keys are migrated in place too."""
        config = (
            'http_request = { enabled = true, allowed_private_hosts = ["x"] }  # inline\n'
            "autonomy.allowed_commands = " + json.dumps(default_allowed_commands()) + "\n"
            "autonomy.block_high_risk_commands = true\n"
        )
        inst = add_instance(store, config=config)
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert result.error == ""
        text = Path(inst.config_path).read_text()
        assert (
            text.splitlines()[0] == 'http_request = { enabled = true, allow_private_hosts = ["x"] }  # inline'
        )
        assert tomllib.loads(text) == {
            "http_request": {"enabled": True, "allow_private_hosts": ["x"]},
            "autonomy": {"allowed_commands": default_allowed_commands()},
        }

    def test_fresh_render_needs_nothing(self, store: Store) -> None:
        """A config rendered by this release is already current: migrating it changes no byte of it."""
        rendered = render_config(
            "zeroclaw",
            RenderContext(
                name="n", port=43001, workspace="/w", instance_dir="/i", config_path="/c", token="t"
            ),
        )
        inst = add_instance(store, config=rendered)
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert result.skipped and result.applied == [] and result.error == ""
        assert Path(inst.config_path).read_text() == rendered

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            (None, "config file not found"),
            ("[autonomy\nlevel = 'full'\n", "not valid TOML"),
            ("autonomy = 3\n", "[autonomy] is a"),
            ('[autonomy]\nallowed_commands = "git"\n', "allowed_commands is a"),
        ],
    )
    def test_bad_config_is_reported_per_instance(
        self, store: Store, config: str | None, message: str
    ) -> None:
        """A missing, unparsable or misshapen config fails that instance only and stays as it was."""
        bad = add_instance(store, name="broken", config=config)
        good = add_instance(store, name="good")
        results = migrate_all(store, migrations=CONFIG_STEPS)
        assert message in result_for(results, bad).error
        assert "migration 1" in result_for(results, bad).error
        assert result_for(results, good).error == "" and result_for(results, good).applied
        if config is not None:
            assert Path(bad.config_path).read_text() == config
        assert store.get(bad.id).schema_version == 0

    def test_config_found_in_moved_home(self, store: Store) -> None:
        """A config_path into a home that has moved falls back to the file in the instance's dir."""
        inst = add_instance(store)
        store.update(inst.id, lambda i: setattr(i, "config_path", "/old/home/instances/x/config.toml"))
        [result] = migrate_all(store, migrations=CONFIG_STEPS)
        assert result.error == "" and len(result.applied) == 3
        assert "allow_private_hosts" in (store.dir(inst.id) / "config.toml").read_text()


def _recording(version: int, log: list[tuple[int, str]], *, framework: str | None = None) -> Migration:
    def apply(ctx: MigrationContext) -> list[str]:
        log.append((version, ctx.instance.name))
        return [f"step {version}"]

    return Migration(version, f"step {version}", framework, apply)


class TestMigrateAll:
    def test_second_run_skips_everything_and_changes_no_byte(self, store: Store) -> None:
        """Run twice: the second run reports every instance skipped and leaves every file byte-identical."""
        add_instance(store, name="one")
        add_instance(store, name="two", framework="embedded", config="{}")
        first = migrate_all(store)
        assert [r.error for r in first] == ["", ""]
        before = snapshot(store.root)
        second = migrate_all(store)
        assert all(r.skipped and not r.applied and not r.error for r in second)
        assert snapshot(store.root) == before

    def test_migrations_are_idempotent_even_when_rerun(self, store: Store) -> None:
        """Rerun from version 0 (as after a crash), the migrations change no byte of the config."""
        inst = add_instance(store)
        migrate_all(store)
        config_path = store.get(inst.id).config_path
        migrated = Path(config_path).read_bytes()
        store.update(inst.id, lambda i: setattr(i, "schema_version", 0))
        [result] = migrate_all(store)
        assert result.skipped and result.applied == []
        assert Path(config_path).read_bytes() == migrated
        assert store.get(inst.id).schema_version == SCHEMA_VERSION

    def test_dry_run_reports_and_writes_nothing(self, store: Store) -> None:
        """A dry run reports the same changes a real run makes, and no file changes."""
        add_instance(store)
        before = snapshot(store.root)
        dry = migrate_all(store, dry_run=True)
        assert snapshot(store.root) == before
        real = migrate_all(store)
        assert [r.applied for r in dry] == [r.applied for r in real]
        assert len(dry[0].applied) == 7  # three config edits, state/ and tmp/ made, the config moved there

    def test_other_frameworks_are_skipped_but_versioned(self, store: Store) -> None:
        """Another framework's instance gets the layout only: config untouched, version raised."""
        inst = add_instance(store, framework="picoclaw", config='{"version": 1}', config_name="config.json")
        [result] = migrate_all(store)
        assert result.applied == ["created state/", "created tmp/"] and result.error == ""
        assert Path(inst.config_path).read_text() == '{"version": 1}'
        assert store.get(inst.id).schema_version == SCHEMA_VERSION

    def test_corrupt_instance_is_reported_not_fatal(self, store: Store) -> None:
        """A corrupt instance.json gives an error result for its directory; the other instances migrate."""
        good = add_instance(store)
        (store.root / "broken").mkdir()
        (store.root / "broken" / INSTANCE_FILE).write_text("{torn")
        results = migrate_all(store)
        assert result_for(results, good).error == ""
        [bad] = [r for r in results if r.instance_id == "broken"]
        assert "not valid JSON" in bad.error
        assert (store.root / "broken" / INSTANCE_FILE).read_text() == "{torn"

    def test_newer_schema_is_left_alone(self, store: Store) -> None:
        """An instance written by a newer release (higher schema_version) is reported and not touched."""
        inst = add_instance(store, schema_version=SCHEMA_VERSION + 1)
        before = snapshot(store.root)
        [result] = migrate_all(store)
        assert "newer than this release" in result.error
        assert snapshot(store.root) == before
        assert Path(inst.config_path).read_text() == EYRIE_ZEROCLAW

    def test_empty_store(self, tmp_path: Path) -> None:
        """A store with no instances migrates to an empty list."""
        assert migrate_all(Store(tmp_path / "instances")) == []

    def test_only_newer_migrations_apply_in_order_once(self, store: Store) -> None:
        """Migrations newer than the recorded version run in version order, each once across runs."""
        log: list[tuple[int, str]] = []
        migrations = [_recording(v, log) for v in (1, 2, 5)]
        add_instance(store, name="old", framework="embedded", schema_version=0)
        add_instance(store, name="mid", framework="embedded", schema_version=2)
        results = migrate_all(store, migrations=migrations)
        assert sorted(log) == [(1, "old"), (2, "old"), (5, "mid"), (5, "old")]
        assert [v for v, name in log if name == "old"] == [1, 2, 5]
        assert {r.instance_name: r.applied for r in results} == {
            "old": ["step 1", "step 2", "step 5"],
            "mid": ["step 5"],
        }
        migrate_all(store, migrations=migrations)
        assert len(log) == 4
        assert {i.schema_version for i in store.list()} == {5}

    def test_framework_filter(self, store: Store) -> None:
        """A migration for one framework never runs on another's instance."""
        log: list[tuple[int, str]] = []
        add_instance(store, name="z", framework="zeroclaw")
        add_instance(store, name="e", framework="embedded")
        migrate_all(store, migrations=[_recording(1, log, framework="zeroclaw")])
        assert log == [(1, "z")]

    def test_failure_stops_that_instance_at_the_last_good_version(self, store: Store) -> None:
        """A raising migration stops that instance at the last good version; the next run resumes."""
        log: list[tuple[int, str]] = []
        attempts: list[int] = []

        def flaky(ctx: MigrationContext) -> list[str]:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("disk on fire")
            return ["step 2"]

        migrations = [_recording(1, log), Migration(2, "flaky", None, flaky), _recording(3, log)]
        inst = add_instance(store, framework="embedded")
        [result] = migrate_all(store, migrations=migrations)
        assert result.error == "migration 2 (flaky): disk on fire"
        assert result.applied == ["step 1"] and not result.skipped
        assert store.get(inst.id).schema_version == 1
        [again] = migrate_all(store, migrations=migrations)
        assert again.error == "" and again.applied == ["step 2", "step 3"]
        assert log == [(1, "sarah"), (3, "sarah")]

    def test_dry_run_does_not_raise_the_version(self, store: Store) -> None:
        """A dry run leaves schema_version where it was."""
        inst = add_instance(store, framework="embedded")
        migrate_all(store, dry_run=True, migrations=[_recording(1, [])])
        assert store.get(inst.id).schema_version == 0

    @pytest.mark.parametrize("versions", [(2, 1), (1, 1), (0,), (-1, 2)])
    def test_bad_version_lists_are_refused(self, store: Store, versions: tuple[int, ...]) -> None:
        """Versions must be positive and strictly increasing; anything else is refused before any work."""
        with pytest.raises(ValueError, match="strictly increasing"):
            migrate_all(store, migrations=[_recording(v, []) for v in versions])


class TestInstanceLayout:
    """Migration 4: instances of the old layout get state/ and tmp/, and Hermes' and ZeroClaw's home moves."""

    def _old_hermes(self, store: Store) -> Instance:
        inst = add_instance(
            store, name="herm", framework="hermes", config="model: {default: m}\n", config_name="config.yaml"
        )
        root = store.dir(inst.id)
        (root / ".env").write_text("X=1\n")
        (root / "sessions").mkdir()
        (root / "sessions" / "s1.json").write_text("{}")
        (root / "logs").mkdir()
        (root / "logs" / "hermes.log").write_text("old log\n")
        (root / "workspace").mkdir()
        return inst

    def test_hermes_home_moves_into_state(self, store: Store) -> None:
        """A Hermes instance made with HERMES_HOME = its directory: its config and the files Hermes wrote move
        into state/, config_path follows, and what the daemon owns stays where it was."""
        inst = self._old_hermes(store)
        root = store.dir(inst.id)
        [result] = migrate_all(store)
        assert result.error == ""
        assert (root / "state" / "config.yaml").read_text() == "model: {default: m}\n"
        assert (root / "state" / ".env").read_text() == "X=1\n"
        assert (root / "state" / "sessions" / "s1.json").exists()
        assert not (root / "config.yaml").exists() and not (root / "sessions").exists()
        assert (root / "logs" / "hermes.log").read_text() == "old log\n"
        assert (root / "workspace").is_dir() and (root / INSTANCE_FILE).is_file()
        for sub in ("state", "tmp"):
            assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700
        saved = store.get(inst.id)
        assert saved.config_path == str(root / "state" / "config.yaml")
        assert saved.schema_version == SCHEMA_VERSION
        assert "moved into state/: .env, config.yaml, sessions" in result.applied

    def test_zeroclaw_config_is_migrated_then_moved(self, store: Store) -> None:
        """eyrie's ZeroClaw config is edited in place and then moved into state/, comments kept."""
        inst = add_instance(store)
        [result] = migrate_all(store)
        assert result.error == ""
        moved = store.dir(inst.id) / "state" / "config.toml"
        assert store.get(inst.id).config_path == str(moved)
        text = moved.read_text()
        assert "allow_private_hosts" in text and "# keep on the fast disk" in text

    def test_second_run_changes_nothing(self, store: Store) -> None:
        """Idempotent: a second run is skipped and moves no byte."""
        self._old_hermes(store)
        migrate_all(store)
        before = snapshot(store.root)
        [again] = migrate_all(store)
        assert again.skipped and snapshot(store.root) == before

    def test_interrupted_run_records_the_moved_config(self, store: Store) -> None:
        """A run that moved the files but stopped before recording them: the next run records config_path."""
        inst = self._old_hermes(store)
        root = store.dir(inst.id)
        (root / "state").mkdir()
        os.rename(root / "config.yaml", root / "state" / "config.yaml")
        [result] = migrate_all(store)
        assert result.error == ""
        assert store.get(inst.id).config_path == str(root / "state" / "config.yaml")

    def test_dry_run_moves_nothing(self, store: Store) -> None:
        """A dry run reports the moves and leaves every file and instance.json as they were."""
        inst = self._old_hermes(store)
        before = snapshot(store.root)
        [dry] = migrate_all(store, dry_run=True)
        assert "created state/" in dry.applied and any(c.startswith("moved into state/") for c in dry.applied)
        assert snapshot(store.root) == before
        assert not (store.dir(inst.id) / "state").exists()

    def test_doctor_lists_instances_not_migrated(self, store: Store, home: Home) -> None:
        """doctor names an instance of the old layout and says to migrate; after migrate it passes."""
        self._old_hermes(store)
        check = layout_check(home)
        assert not check.ok and "herm" in check.detail and "eyriectl migrate" in check.fix
        migrate_all(store)
        assert layout_check(home).ok

    def test_a_file_in_the_way_is_an_error(self, store: Store) -> None:
        """A state/ that is not a directory fails that instance, naming it; nothing is moved."""
        inst = self._old_hermes(store)
        (store.dir(inst.id) / "state").write_text("not a dir")
        [result] = migrate_all(store)
        assert "state is not a directory" in result.error
        assert (store.dir(inst.id) / "config.yaml").exists()


class TestOpenClawConfigInState:
    """Migration 5: OpenClaw's config moves from the instance directory into state/, where OpenClaw writes the
    backups of its config (it could not beside a config in the read-only instance directory)."""

    def test_config_moves_into_state(self, store: Store) -> None:
        """An instance of the layout of version 4 (state/ and tmp/ there, openclaw.json beside them): the
        config moves, config_path follows, OpenClaw's state stays."""
        inst = add_instance(
            store, name="claw", framework="openclaw", config='{"gateway": {}}\n', config_name="openclaw.json",
            schema_version=4,
        )  # fmt: skip
        root = store.dir(inst.id)
        for sub in ("state", "tmp", "workspace"):
            (root / sub).mkdir(mode=0o700)
        (root / "state" / "agents").mkdir()
        [result] = migrate_all(store)
        assert result.error == "" and result.applied == [
            "config_path: now state/openclaw.json (the framework's home)",
            "moved into state/: openclaw.json",
        ]
        assert (root / "state" / "openclaw.json").read_text() == '{"gateway": {}}\n'
        assert not (root / "openclaw.json").exists() and (root / "state" / "agents").is_dir()
        saved = store.get(inst.id)
        assert saved.config_path == str(root / "state" / "openclaw.json") and saved.schema_version == 5

    def test_other_frameworks_are_only_versioned(self, store: Store) -> None:
        """A Hermes instance of version 4 has nothing to move: it is recorded at version 5 untouched."""
        inst = add_instance(
            store,
            name="herm",
            framework="hermes",
            config="model: {}\n",
            config_name="config.yaml",
            schema_version=4,
        )
        before = (store.dir(inst.id) / "config.yaml").read_text()
        [result] = migrate_all(store)
        assert result.error == "" and result.applied == []
        assert (store.dir(inst.id) / "config.yaml").read_text() == before
        assert store.get(inst.id).schema_version == 5
