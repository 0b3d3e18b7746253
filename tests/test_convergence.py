"""Convergence: whatever crashes, re-execs and edits happen, a real eyried ends up running what fleet.yaml
says: an edit made while it was down (or while it re-executed, or died mid-reload) is applied by the next
image, and what is not in the file is stopped and in the trash, unless it was never declared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil

from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from tests._cli import eyriectl
from tests._daemon import FAST_DEFAULTS, DaemonProcess, fleet_yaml, pid_alive, running_daemon, wait_for
from tests._survival import stop_instance, survival_fleet, with_grandchild

_AGENT = '["{python}", -m, supervisor.testing.faulty_agent, --http, --port, "{port}"'


def agent(name: str, *flags: str, gen: str = "0", model: str = "") -> str:
    extra = "".join(f', "{flag}"' for flag in flags)
    model_line = f"    model: {model}\n" if model else ""
    return (
        f"  - name: {name}\n"
        f"    framework: embedded\n"
        f"{model_line}"
        f"    command: {_AGENT}{extra}]\n"
        f'    env: {{CONV_GEN: "{gen}"}}\n'
        f"    ready: {{kind: http, path: /ready, expect: 200}}\n"
    )


def _trash_entries(home: Path, name: str) -> list[Path]:
    root = home / "removed"
    return sorted(p for p in root.glob(f"{name}-*") if p.is_dir()) if root.is_dir() else []


def _env(pid: int) -> dict[str, str]:
    try:
        return dict(psutil.Process(pid).environ())
    except psutil.Error:
        return {}


def _removed_cleanly(d: DaemonProcess, name: str, pid: int, instance_id: str) -> None:
    wait_for(lambda: not pid_alive(pid), 30, f"{name}'s agent to stop")
    wait_for(lambda: _trash_entries(d.home, name), 20, f"{name}'s files in the trash")
    assert not (d.home / "instances" / instance_id).exists()
    assert name not in d.instances()


def _restart(d: DaemonProcess) -> None:
    d.start()
    d.wait_serving()


class TestEditsWhileDown:
    def test_removal_and_rename_while_down_stop_and_trash_the_old(self, tmp_path: Path) -> None:
        """Reproduces: removing or renaming an instance while eyried is down left the old agent running
        unsupervised and its directory outside the trash (the new image diffed against nothing)."""
        fleet = fleet_yaml(agent("alpha"), agent("beta"), agent("gamma", "--ignore-sigterm"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "beta", "gamma")
            ids = {name: d.instance(name)["id"] for name in pids}
            d.kill()
            d.write_fleet(fleet_yaml(agent("alpha"), agent("gamma-renamed", "--ignore-sigterm")))
            _restart(d)
            d.wait_running("gamma-renamed")
            _removed_cleanly(d, "beta", pids["beta"], ids["beta"])
            _removed_cleanly(d, "gamma", pids["gamma"], ids["gamma"])
            assert d.wait_running("alpha") == {"alpha": pids["alpha"]}  # unchanged: adopted, not restarted

    def test_env_edit_while_down_restarts_with_the_new_env(self, tmp_path: Path) -> None:
        """Reproduces: an env edit made while eyried was down left the old process adopted with the old
        env (the recorded config hash does not cover env)."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            d.kill()
            d.write_fleet(fleet_yaml(agent("alpha", gen="1"), agent("beta")))
            _restart(d)
            renewed = d.wait_new_pid("alpha", pids["alpha"], 30)
            assert _env(renewed["pid"]).get("CONV_GEN") == "1"
            assert d.wait_running("beta") == {"beta": pids["beta"]}
            assert not pid_alive(pids["alpha"])

    def test_model_edit_while_down_rerenders_and_restarts(self, tmp_path: Path) -> None:
        """Reproduces: a model changed while eyried was down stayed old (its config was not rendered
        again, so the recorded hashes matched and the old process was adopted)."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha", model="m1"), agent("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            d.kill()
            d.write_fleet(fleet_yaml(agent("alpha", model="m2"), agent("beta")))
            _restart(d)
            d.wait_new_pid("alpha", pids["alpha"], 30)
            config = json.loads(Path(d.instance("alpha")["config_path"]).read_text())
            assert config["model"] == "m2"
            assert d.wait_running("beta") == {"beta": pids["beta"]}

    def test_never_declared_instance_stays_untouched(self, tmp_path: Path) -> None:
        """An instance made outside the fleet file (eyrie's Go code) is in no applied fleet: a restart
        leaves it as it is (ORPHAN), it is not moved to the trash."""
        home = Home(tmp_path)
        Provisioner(Store(home), home).provision(CreateRequest(name="gocreated", framework="embedded"))
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"))) as d:
            d.wait_running("alpha")
            d.kill()
            _restart(d)
            d.wait_running("alpha")
            assert "gocreated" in d.instances()
            assert not _trash_entries(tmp_path, "gocreated")


class TestEditsDuringReexec:
    def test_removal_whose_sighup_lands_during_a_reexec(self, tmp_path: Path) -> None:
        """Reproduces: a removal whose SIGHUP landed during a SIGUSR2 re-exec kept the instance running."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            beta = d.instance("beta")["id"]
            d.signal(signal.SIGUSR2)
            d.write_fleet(fleet_yaml(agent("alpha")))
            d.signal(signal.SIGHUP)
            _removed_cleanly(d, "beta", pids["beta"], beta)
            assert d.wait_running("alpha") == {"alpha": pids["alpha"]}

    def test_stopped_instance_removed_across_a_reexec_goes_to_the_trash(self, tmp_path: Path) -> None:
        """Reproduces: a removal whose stop had finished, then a re-exec: the directory was never moved (the
        new image knew nothing of the instance; its files stayed under instances/)."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            beta = d.instance("beta")["id"]
            stop_instance(tmp_path, "beta")
            d.wait_status("beta", "stopped")
            d.write_fleet(fleet_yaml(agent("alpha")))
            d.signal(signal.SIGUSR2)
            _removed_cleanly(d, "beta", pids["beta"], beta)

    def test_env_edit_during_a_reexec(self, tmp_path: Path) -> None:
        """Reproduces: an env edit reloaded during a re-exec left the old process adopted."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"))) as d:
            pids = d.wait_running("alpha")
            d.signal(signal.SIGUSR2)
            d.write_fleet(fleet_yaml(agent("alpha", gen="2")))
            d.signal(signal.SIGHUP)
            renewed = d.wait_new_pid("alpha", pids["alpha"], 30)
            assert _env(renewed["pid"]).get("CONV_GEN") == "2"


class TestDaemonDiesMidReload:
    def test_rename_of_a_sigterm_ignoring_agent_killed_during_the_stop(self, tmp_path: Path) -> None:
        """Reproduces: renaming an agent that ignores SIGTERM, then SIGKILLing eyried while the reload waits
        out its stop_timeout, left the old agent running and its files in place."""
        slow = FAST_DEFAULTS.replace("stop_timeout: 5s", "stop_timeout: 4s")
        fleet = fleet_yaml(agent("alpha"), agent("stubborn", "--ignore-sigterm"), defaults=slow)
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "stubborn")
            stubborn = d.instance("stubborn")["id"]
            d.write_fleet(fleet_yaml(agent("alpha"), agent("stubborn-2", "--ignore-sigterm"), defaults=slow))
            d.signal(signal.SIGHUP)
            wait_for(
                lambda: d.instance("stubborn").get("status_detail") == "stopping", 20, "the reload's stop"
            )
            d.kill()
            assert pid_alive(pids["stubborn"])
            _restart(d)
            d.wait_running("stubborn-2")
            _removed_cleanly(d, "stubborn", pids["stubborn"], stubborn)


class TestCopiedHome:
    def test_the_originals_daemon_leaves_a_copys_agents_alone(self, tmp_path: Path) -> None:
        """Reproduces: after `cp -a` of a home, starting the original's daemon killed the copy's agent as a
        leftover of its own (processes were matched by bare instance id, which the copy shares)."""
        original, copy = tmp_path / "original", tmp_path / "copy"
        original.mkdir()
        with running_daemon(original, fleet_yaml(agent("alpha"))) as d:
            d.wait_running("alpha")
            assert d.terminate() == 0
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        with running_daemon(copy, fleet_yaml(agent("alpha"))) as theirs:
            copied = theirs.wait_running("alpha")["alpha"]
            assert _env(copied).get("EYRIE_HOME") == str(copy)
            with running_daemon(original, fleet_yaml(agent("alpha"))) as ours:
                mine = ours.wait_running("alpha")["alpha"]
                assert mine != copied
                assert theirs.instance("alpha")["pid"] == copied and pid_alive(copied)


class TestOfflinePlan:
    def test_dry_run_while_down_shows_removals_and_restarts(self, tmp_path: Path) -> None:
        """With eyried down, `reload --dry-run` plans against the fleet last applied: what the next start
        removes and restarts, not only what it adds."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"), agent("gamma"))) as d:
            d.wait_running("alpha", "beta", "gamma")
            assert d.terminate() == 0
            d.write_fleet(fleet_yaml(agent("alpha", gen="1"), agent("gamma"), agent("delta")))
            result = eyriectl(tmp_path, "reload", "--dry-run", "--json")
            assert result.returncode == 3, result.stderr
            plan = json.loads(result.stdout)
            assert (plan["added"], plan["removed"], plan["restarted"], plan["unchanged"]) == (
                ["delta"],
                ["beta"],
                ["alpha"],
                ["gamma"],
            )


class TestSweepCutShort:
    def test_leftover_of_a_crash_is_swept_by_the_next_image(self, tmp_path: Path) -> None:
        """Reproduces: an agent's group killed, the agent respawned, then eyried SIGKILLed before its
        (batched, delayed) sweep of the crashed run's leftovers: the new image adopted the new process and
        never swept the old run's grandchild, which lived on under pid 1."""
        with running_daemon(tmp_path, survival_fleet(with_grandchild("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            pid_file = tmp_path / "instances" / d.instance("alpha")["id"] / "state" / "grandchild.pid"
            grandchild = wait_for(
                lambda: pid_file.exists() and int(pid_file.read_text() or 0), 10, "grandchild"
            )
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            d.wait_new_pid("alpha", pid, 10)
            d.kill()
            assert pid_alive(grandchild)
            _restart(d)
            wait_for(lambda: not pid_alive(grandchild), 20, "the old run's grandchild to be swept")
            d.wait_running("alpha")
