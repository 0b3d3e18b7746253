"""Provider secrets: files under $EYRIE_HOME/secrets/, named from fleet.yaml, given to one agent's
environment at build time; `eyriectl secret`; doctor's checks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from supervisor.daemon.runtime import build_runtime
from supervisor.errors import ConfigurationError, FleetFileError, InvalidRequest, NotFound
from supervisor.fleet import load_fleet
from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.secret_files import SecretFiles
from supervisor.store import Store
from supervisor.systemd._agent_checks import secrets_checks
from tests._cli import EYRIECTL

KEY = "sk-test-0123456789abcdef"

FLEET = """\
version: 1
defaults:
  secrets: {SHARED_KEY: shared}
frameworks:
  embedded:
    secrets: {EMBEDDED_KEY: shared}
instances:
  - name: alpha
    secrets: {OPENAI_API_KEY: openai}
  - name: beta
    env: {PLAIN_API_KEY: sk-written-in-the-clear}
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secret_cli(home: Home, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EYRIECTL), "--home", str(home.root), "secret", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestSecretFiles:
    def test_written_owner_only_and_read_back(self, home: Home) -> None:
        """A secret is a 0600 file in a 0700 directory; read back without its trailing newline."""
        files = SecretFiles(home)
        path = files.write("openai", KEY)
        assert _mode(home.secrets_dir) == 0o700 and _mode(path) == 0o600
        assert files.read("openai") == KEY and files.names() == ["openai"]

    @pytest.mark.parametrize("name", ["../fleet", "a/b", "", ".hidden", "sp ace"])
    def test_names_are_checked_before_any_path(self, home: Home, name: str) -> None:
        """A name that could leave secrets/ is refused."""
        with pytest.raises(InvalidRequest, match="invalid secret name"):
            SecretFiles(home).path(name)

    def test_missing_and_planted_files_are_clear_errors(self, home: Home, tmp_path: Path) -> None:
        """A missing secret is NotFound naming it; a symlink or a FIFO is refused, never followed."""
        files = SecretFiles(home)
        with pytest.raises(NotFound, match="secret 'openai' is missing"):
            files.read("openai")
        files.ensure_dir()
        (tmp_path / "elsewhere").write_text("stolen")
        os.symlink(tmp_path / "elsewhere", home.secrets_dir / "link")
        os.mkfifo(home.secrets_dir / "fifo")
        for name in ("link", "fifo"):
            with pytest.raises(ConfigurationError, match=f"secret '{name}' cannot be read"):
                files.read(name)


class TestFleetSecrets:
    def test_layers_merge_per_variable(self, home: Home) -> None:
        """defaults ← frameworks.<name> ← the instance, per variable."""
        home.fleet_file.write_text(FLEET)
        fleet = load_fleet(home.fleet_file)
        assert fleet.resolve("alpha").secrets == {
            "SHARED_KEY": "shared",
            "EMBEDDED_KEY": "shared",
            "OPENAI_API_KEY": "openai",
        }

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ("secrets: {OPENAI_API_KEY: ../x}", "secret name '../x' is invalid"),
            ("secrets: {1BAD: openai}", "environment variable name '1BAD' is invalid"),
            ("secrets: {EYRIE_AUTH_TOKEN: openai}", "is set by eyried for every agent"),
            ("{env: {K_API_KEY: v}, secrets: {K_API_KEY: k}}", "set both in env and in secrets"),
        ],
    )
    def test_bad_entries_name_file_line_and_key(self, home: Home, entry: str, message: str) -> None:
        """A bad secrets entry is a fleet file error at its line."""
        if entry.startswith("{"):
            decl = "  - {name: alpha, " + entry[1:] + "\n"
        else:
            decl = f"  - name: alpha\n    {entry}\n"
        home.fleet_file.write_text(f"version: 1\ninstances:\n{decl}")
        with pytest.raises(FleetFileError, match=message) as info:
            load_fleet(home.fleet_file)
        assert "fleet.yaml:" in str(info.value)

    def test_only_that_agent_gets_the_value_and_no_record_holds_it(self, home: Home) -> None:
        """The runtime's env carries the value; the launch hash changes with it but the value is nowhere
        in what is recorded (the launch hash's text, the redaction set covers it)."""
        home.fleet_file.write_text(FLEET)
        fleet = load_fleet(home.fleet_file)
        store = Store(home)
        provisioner = Provisioner(store, home)
        files = SecretFiles(home)
        files.write("openai", KEY)
        files.write("shared", "shared-value-123")
        made = {
            n: provisioner.provision(CreateRequest(name=n, framework="embedded")) for n in ("alpha", "beta")
        }
        alpha = build_runtime(fleet.resolve("alpha"), made["alpha"], store, config_hash="")
        beta = build_runtime(fleet.resolve("beta"), made["beta"], store, config_hash="")
        assert alpha.env["OPENAI_API_KEY"] == KEY and "OPENAI_API_KEY" not in beta.env
        assert KEY in alpha.secret_values() and "shared-value-123" in alpha.secret_values()
        first = alpha.launch_hash()
        files.write("openai", KEY + "-rotated")
        again = build_runtime(fleet.resolve("alpha"), made["alpha"], store, config_hash="")
        assert again.launch_hash() != first
        assert again.process_fingerprint() != alpha.process_fingerprint()

    def test_missing_secret_refuses_the_build_naming_it(self, home: Home) -> None:
        """No secret file: the runtime cannot be built, the error names the instance, the secret and the
        variable."""
        home.fleet_file.write_text(FLEET)
        fleet = load_fleet(home.fleet_file)
        store = Store(home)
        inst = Provisioner(store, home).provision(CreateRequest(name="alpha", framework="embedded"))
        SecretFiles(home).write("shared", "shared-value-123")
        with pytest.raises(ConfigurationError) as info:
            build_runtime(fleet.resolve("alpha"), inst, store, config_hash="")
        assert "instance 'alpha'" in str(info.value) and "secret 'openai' is missing" in str(info.value)
        assert "OPENAI_API_KEY" in str(info.value)

    def test_agent_env_has_token_file_and_tmpdir_not_the_token(self, home: Home) -> None:
        """EYRIE_AUTH_TOKEN_FILE names the instance's token file and TMPDIR its tmp/; the token is not in
        the environment unless the framework declares token_env."""
        store = Store(home)
        inst = Provisioner(store, home).provision(CreateRequest(name="alpha", framework="embedded"))
        home.fleet_file.write_text("version: 1\ninstances:\n  - name: alpha\n")
        rt = build_runtime(load_fleet(home.fleet_file).resolve("alpha"), inst, store, config_hash="")
        token = store.token(inst.id)
        assert rt.env["EYRIE_AUTH_TOKEN_FILE"] == str(store.dir(inst.id) / "secrets" / "token")
        assert rt.env["TMPDIR"] == str(store.dir(inst.id) / "tmp")
        assert "EYRIE_AUTH_TOKEN" not in rt.env and token not in rt.env.values()
        home.fleet_file.write_text(
            "version: 1\nframeworks:\n  embedded: {token_env: GATEWAY_TOKEN}\ninstances:\n  - name: alpha\n"
        )
        rt = build_runtime(load_fleet(home.fleet_file).resolve("alpha"), inst, store, config_hash="")
        assert rt.env["GATEWAY_TOKEN"] == token and token in rt.secret_values()


class TestSecretCommand:
    def test_set_from_stdin_list_and_rm(self, home: Home) -> None:
        """`secret set` reads stdin (never argv) and prints no value; `list --json` names the users;
        `rm` is refused while the fleet uses it, unless --force."""
        home.fleet_file.write_text(FLEET)
        done = _secret_cli(home, "set", "openai", stdin=KEY + "\n")
        assert done.returncode == 0, done.stderr
        assert KEY not in done.stdout + done.stderr
        assert SecretFiles(home).read("openai") == KEY
        listed = _secret_cli(home, "list", "--json")
        assert listed.returncode == 0 and KEY not in listed.stdout
        rows = {row["name"]: row for row in json.loads(listed.stdout)}
        assert rows["openai"] == {"name": "openai", "stored": True, "used_by": ["alpha"]}
        assert rows["shared"] == {"name": "shared", "stored": False, "used_by": ["alpha", "beta"]}
        refused = _secret_cli(home, "rm", "openai")
        assert refused.returncode == 1 and "used by alpha" in refused.stderr
        assert SecretFiles(home).exists("openai")
        assert _secret_cli(home, "rm", "openai", "--force").returncode == 0
        assert not SecretFiles(home).exists("openai")

    def test_empty_value_and_bad_name_write_nothing(self, home: Home) -> None:
        """An empty stdin or a name with a slash is refused; no file appears."""
        assert _secret_cli(home, "set", "openai", stdin="").returncode == 1
        assert _secret_cli(home, "set", "../x", stdin=KEY).returncode == 1
        assert SecretFiles(home).names() == []


class TestDoctor:
    def test_missing_secrets_and_plaintext_keys_are_reported(self, home: Home) -> None:
        """doctor names each missing secret (with its instance and variable) and each key in env:."""
        home.fleet_file.write_text(FLEET)
        checks = {c.name: c for c in secrets_checks(home)}
        assert not checks["secrets"].ok
        assert "alpha: secret 'openai' is missing (for OPENAI_API_KEY" in checks["secrets"].detail
        assert not checks["plaintext keys"].ok
        assert "beta: env.PLAIN_API_KEY" in checks["plaintext keys"].detail
        assert "sk-written-in-the-clear" not in checks["plaintext keys"].detail
