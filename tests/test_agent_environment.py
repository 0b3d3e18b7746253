"""What a real eyried gives each embedded agent: its own temp dir, its token by file (never in the
environment), and the provider secrets fleet.yaml names for it, which appear nowhere else."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from supervisor.paths import Home
from supervisor.secret_files import SecretFiles
from tests._cli import eyriectl, ok
from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for

KEY = "sk-live-7f3a9c1e5b2d4f608a1c"
ROTATED = "sk-live-rotated-0b9e8d7c6a5f"


def _environ(pid: int) -> dict[str, str]:
    return dict(psutil.Process(pid).environ())


def _files_holding(root: Path, needle: str, *, but: Path) -> list[str]:
    """Every regular file under ``root`` (``but`` aside) whose bytes contain ``needle``."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and path != but and needle.encode() in path.read_bytes()
    ]


class TestAgentEnvironment:
    def test_layout_token_file_and_a_secret_for_one_agent_only(self, tmp_path: Path) -> None:
        """alpha gets TMPDIR (its own tmp/), EYRIE_AUTH_TOKEN_FILE and its secret; beta gets no secret; the
        token is in no environment; the secret's value is in no log, record, event or CLI answer."""
        home = Home(tmp_path)
        SecretFiles(home).write("openai", KEY)
        fleet = fleet_yaml(embedded("alpha", "secrets: {OPENAI_API_KEY: openai}"), embedded("beta"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "beta")
            alpha, beta = d.instance("alpha"), d.instance("beta")
            instance_dir = tmp_path / "instances" / alpha["id"]
            env = _environ(pids["alpha"])
            assert env["TMPDIR"] == str(instance_dir / "tmp") and (instance_dir / "tmp").is_dir()
            assert env["EYRIE_AUTH_TOKEN_FILE"] == str(instance_dir / "secrets" / "token")
            token = Path(env["EYRIE_AUTH_TOKEN_FILE"]).read_text().strip()
            assert env["OPENAI_API_KEY"] == KEY
            other = _environ(pids["beta"])
            assert "OPENAI_API_KEY" not in other and KEY not in other.values()
            for agent_env in (env, other):
                assert "EYRIE_AUTH_TOKEN" not in agent_env and token not in agent_env.values()
            answers = [
                ok(eyriectl(tmp_path, "ps", "--json")).stdout,
                ok(eyriectl(tmp_path, "events", "--json", "-n", "200")).stdout,
                ok(eyriectl(tmp_path, "status", "--json")).stdout,
                ok(eyriectl(tmp_path, "logs", "alpha", "-n", "200")).stdout,
            ]
            assert all(KEY not in answer for answer in answers)
            assert _files_holding(tmp_path, KEY, but=home.secrets_dir / "openai") == []
            assert beta["status"] == "running"

    def test_changed_secret_restarts_its_agent_on_reload(self, tmp_path: Path) -> None:
        """A new value in the secret file restarts the agents that use it at the next reload, with the new
        value; the others keep their process."""
        home = Home(tmp_path)
        SecretFiles(home).write("openai", KEY)
        fleet = fleet_yaml(embedded("alpha", "secrets: {OPENAI_API_KEY: openai}"), embedded("beta"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "beta")
            quiet = json.loads(ok(eyriectl(tmp_path, "reload", "--json")).stdout)
            assert quiet["restarted"] == [] and sorted(quiet["unchanged"]) == ["alpha", "beta"]
            SecretFiles(home).write("openai", ROTATED)
            result = json.loads(ok(eyriectl(tmp_path, "reload", "--json")).stdout)
            assert result["restarted"] == ["alpha"] and result["unchanged"] == ["beta"]
            renewed = d.wait_new_pid("alpha", pids["alpha"], 30)
            assert _environ(renewed["pid"])["OPENAI_API_KEY"] == ROTATED
            assert d.wait_running("beta") == {"beta": pids["beta"]}

    def test_missing_secret_is_a_clear_error_for_that_instance(self, tmp_path: Path) -> None:
        """A secret the home lacks: reload --dry-run names it, the instance alone is in error with a
        last_error naming the secret; once the secret is set, a reload starts it."""
        fleet = fleet_yaml(embedded("alpha"), embedded("gamma", "secrets: {OPENAI_API_KEY: openai}"))
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            d.write_fleet(fleet)
            plan = json.loads(ok(eyriectl(tmp_path, "reload", "--dry-run", "--json")).stdout)
            assert any("gamma: secret 'openai' is missing" in p for p in plan["problems"])
            result = json.loads(ok(eyriectl(tmp_path, "reload", "--json")).stdout)
            assert any("secret 'openai' is missing" in p for p in result["problems"])
            gamma = d.wait_status("gamma", "error")
            assert "secret 'openai' is missing" in gamma["last_error"]
            assert "OPENAI_API_KEY" in gamma["last_error"]
            SecretFiles(Home(tmp_path)).write("openai", KEY)
            ok(eyriectl(tmp_path, "reload"))
            pid = d.wait_running("gamma")["gamma"]
            wait_for(lambda: _environ(pid).get("OPENAI_API_KEY") == KEY, 10, "gamma's key")

    def test_secret_gone_keeps_the_agent_running_and_is_reported_until_back(self, tmp_path: Path) -> None:
        """A secret deleted under a running agent: reload reports it and the agent keeps its process; once
        the secret is back, the next reload reports nothing."""
        home = Home(tmp_path)
        SecretFiles(home).write("openai", KEY)
        with running_daemon(
            tmp_path, fleet_yaml(embedded("alpha", "secrets: {OPENAI_API_KEY: openai}"))
        ) as d:
            pid = d.wait_running("alpha")["alpha"]
            SecretFiles(home).remove("openai")
            gone = json.loads(ok(eyriectl(tmp_path, "reload", "--json")).stdout)
            assert any("secret 'openai' is missing" in p for p in gone["problems"])
            assert d.wait_running("alpha") == {"alpha": pid}
            SecretFiles(home).write("openai", KEY)
            back = json.loads(ok(eyriectl(tmp_path, "reload", "--json")).stdout)
            assert back["problems"] == []
            assert d.wait_running("alpha") == {"alpha": pid}
