"""The daemon's limit on open files: room made once its fleet needs it (what it holds placed above its soft
limit; the soft limit raised to the hard one for the image a re-exec makes), the original given to its agents
(confined or not, before and after a re-exec), the unit's ``LimitNOFILE=``, and ``doctor``'s checks of the
limit and of the port range against the fleet's size."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.engine.open_files import fds_needed
from supervisor.paths import Home
from supervisor.systemd._open_files_check import open_files_check, process_limit
from supervisor.systemd.doctor import run_checks
from supervisor.systemd.unit import render_unit
from tests._daemon import FAST_DEFAULTS, DaemonProcess, fleet_yaml, kill_quietly, running_daemon, wait_for

SOFT, HARD = 128, 2048
"""A soft limit two instances need more than (`fds_needed`), as a few hundred need more than 1024."""
REPORT = "grep 'Max open files' /proc/self/limits > limits.txt; exec sleep 600"


def _agent(name: str, sandbox: str) -> str:
    return (
        f'  - name: {name}\n    framework: embedded\n    command: [sh, -c, "{REPORT}"]\n'
        f"    ready: {{kind: process, seconds: 0}}\n    live: {{kind: process, seconds: 0}}\n"
        f"    sandbox: {sandbox}\n"
    )


def _start_limited(d: DaemonProcess, soft: int = SOFT) -> None:
    """eyried started with a soft limit of ``soft``, a hard limit of HARD (as systemd gives 1024:524288)."""
    env = {**os.environ, "EYRIE_HOME": str(d.home)}
    env.pop("NOTIFY_SOCKET", None)
    argv = [sys.executable, "-m", "supervisor.daemon", "--home", str(d.home)]
    with open(d.output, "ab") as out:
        d.proc = subprocess.Popen(
            ["prlimit", f"--nofile={soft}:{HARD}", "--", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def _reported(d: DaemonProcess, name: str) -> tuple[int, int] | None:
    """What the agent's shell read from its own /proc/self/limits: (soft, hard)."""
    path = Path(d.instance(name)["workspace_path"]) / "limits.txt"
    words = path.read_text().split() if path.exists() else []
    return (int(words[3]), int(words[4])) if len(words) >= 5 else None


@pytest.mark.skipif(not os.path.exists("/usr/bin/prlimit"), reason="needs util-linux prlimit")
class TestDaemonLimit:
    def test_raised_for_the_daemon_and_restored_for_its_agents(self, tmp_path: Path) -> None:
        """eyried keeps its soft limit when its fleet needs more (what it holds goes above it), and raises it
        to the hard one for the image a re-exec makes; an unconfined and a confined agent each read the soft
        limit eyried was started with, also when spawned by that image."""
        d = DaemonProcess(tmp_path)
        d.write_fleet(fleet_yaml(_agent("loose", "off"), _agent("confined", "on"), defaults=FAST_DEFAULTS))
        try:
            _start_limited(d)
            d.wait_serving()
            pids = d.wait_running("loose", "confined")
            assert d.proc is not None
            assert process_limit(d.proc.pid) == (SOFT, HARD)
            for name in pids:
                assert wait_for(functools.partial(_reported, d, name), what="limits") == (SOFT, HARD)
            readies = d.log().count('"event": "daemon_ready"')
            d.signal(signal.SIGUSR2)
            wait_for(lambda: d.log().count('"event": "daemon_ready"') > readies, 30, "the new image")
            proc = d.proc
            wait_for(lambda: process_limit(proc.pid) == (HARD, HARD), 30, "the new image's raised limit")
            for name, pid in pids.items():
                (Path(d.instance(name)["workspace_path"]) / "limits.txt").unlink()
                kill_quietly(pid)
                d.wait_new_pid(name, pid)
                assert wait_for(functools.partial(_reported, d, name), what="limits") == (SOFT, HARD)
            assert "open_files_limit" in d.log()
        finally:
            d.close()

    def test_left_alone_while_the_fleet_fits(self, tmp_path: Path) -> None:
        """A fleet that fits in the soft limit leaves it as it is: agents are then exec'd directly."""
        d = DaemonProcess(tmp_path)
        d.write_fleet(fleet_yaml(_agent("loose", "off"), defaults=FAST_DEFAULTS))
        try:
            soft = fds_needed(1) + 64
            _start_limited(d, soft=soft)
            d.wait_serving()
            d.wait_running("loose")
            assert d.proc is not None
            assert process_limit(d.proc.pid) == (soft, HARD)
            assert wait_for(functools.partial(_reported, d, "loose"), what="limits") == (soft, HARD)
        finally:
            d.close()


class TestUnit:
    def test_unit_sets_the_soft_and_hard_limit(self) -> None:
        """The unit gives eyried room to raise its soft limit (hard 524288, systemd's default) and keeps the
        soft limit its agents inherit at 1024."""
        text = render_unit(eyried=Path("/usr/bin/eyried"), home=Path("/home/u/.eyrie"), stop_timeout=10)
        assert "LimitNOFILE=1024:524288" in text.splitlines()


@pytest.mark.skipif(not os.path.exists("/usr/bin/prlimit"), reason="needs util-linux prlimit")
class TestDoctor:
    def test_a_hard_limit_too_low_for_the_fleet_fails(self) -> None:
        """A daemon whose hard limit is below what the fleet needs fails the check, and says how to fix it."""
        proc = subprocess.Popen(["prlimit", "--nofile=512:1024", "--", "sleep", "60"])
        try:
            wait_for(lambda: process_limit(proc.pid) == (512, 1024), 10, "the limited process")
            check = open_files_check(400, proc.pid)
            assert not check.ok
            assert f"need about {fds_needed(400)}" in check.detail and "LimitNOFILE" in check.fix
            assert open_files_check(10, proc.pid).ok
        finally:
            proc.kill()
            proc.wait()

    def test_a_port_range_smaller_than_the_fleet_fails(self, tmp_path: Path) -> None:
        """doctor says so when the fleet declares more instances than daemon.ports holds."""
        instances = "".join(f"  - name: a{i}\n    framework: embedded\n" for i in range(5))
        fleet = f"version: 1\ndaemon: {{ports: {{first: 54990, last: 54992}}}}\n{FAST_DEFAULTS}instances:\n"
        (tmp_path / "fleet.yaml").write_text(fleet + instances)
        ports = next(c for c in run_checks(Home(tmp_path).root) if c.name == "ports")
        assert not ports.ok
        assert "declares 5 instances but daemon.ports holds 3" in ports.detail
        assert "widen daemon.ports" in ports.fix

    def test_a_daemon_given_too_few_ports_says_so(self, tmp_path: Path) -> None:
        """An instance that finds no port in daemon.ports is not provisioned, and the log names the range."""
        sleepers = "".join(
            f"  - name: a{i}\n    framework: embedded\n    command: [sleep, '600']\n    sandbox: off\n"
            "    ready: {kind: process, seconds: 0}\n    live: {kind: process, seconds: 0}\n"
            for i in range(3)
        )
        fleet = f"version: 1\ndaemon: {{ports: {{first: 54993, last: 54994}}}}\n{FAST_DEFAULTS}instances:\n"
        with running_daemon(tmp_path, fleet + sleepers) as d:
            wait_for(lambda: "no free port in 54993-54994" in d.log(), what="a word about the range")
            assert "instance_provision_failed" in d.log()
