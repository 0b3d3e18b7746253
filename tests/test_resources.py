"""Resources end to end, through the real ``eyriectl`` against a real eyried: each instance's CPU, memory and
process count in ``ps --json``, the memory limit restarting a tree that stays above it (through the restart
policy, as a failure), ``status NAME``, ``top`` and ``/metrics``."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.client import ControlClient
from supervisor.paths import Home
from tests._cli import EYRIECTL, eyriectl, ok, ps
from tests._daemon import DaemonProcess, embedded, fleet_yaml, running_daemon, wait_for

RECORDER = "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read())"
"""A notify hook's command: append the payload on its stdin to the file named by its argument."""

_AGENT = '["{python}", -m, supervisor.testing.faulty_agent, --http, --port, "{port}"'


def hog(name: str, *, allocate_mib: int, extra: str = "") -> str:
    """An agent that allocates ``allocate_mib`` MiB a moment after it is ready."""
    flags = f', --allocate-mib, "{allocate_mib}", --allocate-after, "0.5"'
    text = (
        f"  - name: {name}\n"
        f"    framework: embedded\n"
        f"    command: {_AGENT}{flags}]\n"
        f"    ready: {{kind: http, path: /ready, expect: 200}}\n"
    )
    return text + "".join(f"    {line}\n" for line in extra.splitlines())


def _events(home: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in ok(eyriectl(home, "events", "-n", "500", "--json")).stdout.splitlines()
    ]


def _metrics(home: Path) -> str:
    async def fetch() -> str:
        async with ControlClient(Home(home)) as client:
            return await client.metrics()

    return anyio.run(fetch)


def _sampled_twice(d: DaemonProcess, name: str) -> dict[str, Any]:
    """``name``'s ps row once it has a CPU percentage (two samples taken)."""

    def row() -> dict[str, Any]:
        found = ps(d.home)[name]
        return found if found["cpu_percent"] is not None else {}

    return wait_for(row, 20, f"two samples of {name}")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    """alpha (the embedded agent) running, sampled every 500 ms."""
    with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as daemon:
        daemon.wait_running("alpha")
        yield daemon


class TestSampling:
    def test_ps_json_shows_the_trees_resources(self, fleet: DaemonProcess) -> None:
        """ps --json gives the running tree's RSS, process count, CPU seconds and (from the second sample on)
        its CPU percentage."""
        row = _sampled_twice(fleet, "alpha")
        assert row["memory_bytes"] > 1024 * 1024
        assert row["processes"] == 1
        assert row["cpu_seconds"] >= 0 and row["cpu_percent"] >= 0

    def test_stopped_instance_has_no_resources(self, fleet: DaemonProcess) -> None:
        """A stopped instance shows no figures (null, rendered as a dash), not stale ones."""
        ok(eyriectl(fleet.home, "stop", "alpha", "--wait"))
        row = ps(fleet.home)["alpha"]
        assert (row["cpu_percent"], row["memory_bytes"], row["cpu_seconds"], row["processes"]) == (None,) * 4


class TestMemoryLimit:
    def test_on_failure_restarts_the_tree_with_a_reason(self, tmp_path: Path) -> None:
        """A tree above max_memory for memory_grace samples is ended and restarted as a failure: last_exit
        carries the reason, last_error says it, a memory_limit event tells subscribers and fires the
        instance's memory_restart notify hook."""
        told = tmp_path / "told.jsonl"
        hook = json.dumps([sys.executable, "-c", RECORDER, str(told)])
        extra = f"max_memory: 64MiB\nmemory_grace: 2\nnotify: [{{on: [memory_restart], command: {hook}}}]"
        fleet = fleet_yaml(hog("hog", allocate_mib=96, extra=extra))
        with running_daemon(tmp_path, fleet) as d:
            first = d.wait_running("hog")["hog"]
            inst = wait_for(
                lambda: (i := d.instance("hog")).get("total_restarts", 0) >= 1 and i, 30, "restart"
            )
            assert inst["last_exit"]["reason"].startswith("memory limit 64 MiB exceeded (")
            assert inst["last_error"].startswith("memory limit 64 MiB exceeded (")
            d.wait_new_pid("hog", first)
            limit = [e for e in _events(d.home) if e["event"] == "memory_limit"]
            assert limit and limit[0]["instance"] == "hog"
            assert limit[0]["detail"].startswith("memory limit 64 MiB exceeded (")
            assert limit[0]["data"]["max_memory"] == 64 * 1024 * 1024
            assert limit[0]["data"]["memory_bytes"] > 64 * 1024 * 1024
            text: str = wait_for(lambda: told.read_text() if told.exists() else "", 20, "the notify hook")
            payload = json.loads(text)
            assert (payload["kind"], payload["instance"]) == ("memory_restart", "hog")
            assert payload["detail"].startswith("memory limit 64 MiB exceeded (")

    def test_never_leaves_it_in_error(self, tmp_path: Path) -> None:
        """With restart policy never, the tree is ended and the instance stays in error, saying why."""
        extra = "max_memory: 64MiB\nmemory_grace: 1\nrestart: {policy: never}"
        with running_daemon(tmp_path, fleet_yaml(hog("hog", allocate_mib=96, extra=extra))) as d:
            d.wait_running("hog")
            inst = d.wait_status("hog", "error", timeout=30)
            assert inst["last_error"].startswith("memory limit 64 MiB exceeded (")
            assert inst["last_exit"]["reason"] == inst["last_error"]
            assert inst.get("pid") is None
            shown = ok(eyriectl(d.home, "status", "hog")).stdout
            assert "Last error: memory limit 64 MiB exceeded" in shown

    def test_limit_from_defaults_applies_live_on_reload(self, tmp_path: Path) -> None:
        """A limit added to defaults by a reload is a policy change: the agent is not restarted by the
        reload, and the limit then acts on it."""
        with running_daemon(tmp_path, fleet_yaml(hog("hog", allocate_mib=96))) as d:
            pid = d.wait_running("hog")["hog"]
            wait_for(
                lambda: (ps(d.home)["hog"]["memory_bytes"] or 0) > 96 * 1024 * 1024, 20, "the allocation"
            )
            text = d.fleet_file.read_text().replace(
                "  stop_timeout: 5s\n", "  stop_timeout: 5s\n  max_memory: 64MiB\n"
            )
            d.write_fleet(text)
            result = json.loads(ok(eyriectl(d.home, "reload", "--json")).stdout)
            assert result["updated"] == ["hog"] and result["restarted"] == []
            inst = d.wait_new_pid("hog", pid, timeout=30)
            assert inst["last_exit"]["reason"].startswith("memory limit 64 MiB exceeded")

    def test_a_bad_size_is_refused_with_its_line(self, fleet: DaemonProcess) -> None:
        """max_memory that is not a size: the reload changes nothing and names the file, line and key."""
        fleet.write_fleet(fleet_yaml(embedded("alpha", "max_memory: lots")))
        result = eyriectl(fleet.home, "reload")
        assert result.returncode == 1
        assert "fleet.yaml:" in result.stderr + result.stdout
        assert (
            "max_memory" in result.stderr + result.stdout
            and "not a size: 'lots'" in result.stderr + result.stdout
        )


class TestInstanceStatus:
    def test_one_screen(self, fleet: DaemonProcess) -> None:
        """status NAME shows status, process tree, restarts, probes, paths and the log's last lines."""
        pid = fleet.instance("alpha")["pid"]
        _sampled_twice(fleet, "alpha")
        out = ok(eyriectl(fleet.home, "status", "alpha")).stdout
        assert out.startswith("● alpha (embedded, id ")
        assert "Status: running, healthy since " in out
        assert f"Process: pid {pid}, port " in out
        assert f"└─ {pid} " in out
        assert "Restarts: 0 since the last stable run, 0 in all" in out
        assert "Probes: readiness " in out
        assert "Log: " in out and "EMBEDDED_READY" in out

    def test_json(self, fleet: DaemonProcess) -> None:
        """status NAME --json is one JSON object with the tree, probes and log lines."""
        wait_for(lambda: ps(fleet.home)["alpha"]["memory_bytes"] is not None, 20, "a sample")
        data = json.loads(ok(eyriectl(fleet.home, "status", "alpha", "--json")).stdout)
        assert data["name"] == "alpha" and data["status"] == "running"
        row = data["processes"][0]
        assert row["pid"] == data["pid"] and row["rss_bytes"] > 0 and 0 < row["pss_bytes"] <= row["rss_bytes"]
        assert "supervisor" in data["processes"][0]["command"]
        assert {p["role"] for p in data["probes"]} >= {"readiness"}
        assert data["log_path"].endswith("embedded.log") and 1 <= len(data["log_lines"]) <= 10

    def test_log_lines_are_escaped(self, fleet: DaemonProcess) -> None:
        """A log line holding a terminal escape reaches the screen as text."""
        log = Path(json.loads(ok(eyriectl(fleet.home, "status", "alpha", "--json")).stdout)["log_path"])
        with log.open("ab") as f:
            f.write(b"evil \x1b[2J line\n")
        out = ok(eyriectl(fleet.home, "status", "alpha")).stdout
        assert "evil \\x1b[2J line" in out and "\x1b" not in out

    def test_unknown_name(self, fleet: DaemonProcess) -> None:
        """An unknown NAME is a clear error and exit code 1."""
        result = eyriectl(fleet.home, "status", "nosuch")
        assert result.returncode == 1
        assert "nosuch" in result.stderr and "not found" in result.stderr


class TestTop:
    def test_pipe_prints_one_snapshot(self, fleet: DaemonProcess) -> None:
        """On a pipe, top prints one table and exits 0."""
        wait_for(lambda: ps(fleet.home)["alpha"]["memory_bytes"] is not None, 20, "a sample")
        result = ok(eyriectl(fleet.home, "top"))
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "STATUS", "PID", "CPU%", "MEM", "PROCS", "RESTARTS", "UPTIME"]
        assert lines[1].split()[:2] == ["alpha", "running"] and "MiB" in lines[1]
        assert "1/1 running" in result.stdout

    def test_terminal_refreshes_and_quits_on_ctrl_c(self, fleet: DaemonProcess) -> None:
        """Under a terminal top redraws in place until Ctrl-C, then exits 0 with the cursor shown again."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc = subprocess.Popen(
            [str(EYRIECTL), "--home", str(fleet.home), "top", "--interval", "0.3"],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        output = b""
        try:
            deadline = time.monotonic() + 30
            while output.count(b"alpha") < 3:
                assert time.monotonic() < deadline, f"no refresh; printed: {output!r}"
                if select.select([master], [], [], 0.5)[0]:
                    output += os.read(master, 65536)
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(15) == 0
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        assert b"\x1b[?25l" in output and output.rstrip().endswith(b"\x1b[?25h")
        assert b"Traceback" not in output and b"Aborted" not in output


class TestMetrics:
    def test_names_and_types(self, fleet: DaemonProcess) -> None:
        """/metrics parses with prometheus_client's parser; counters are counters; the new families exist."""
        wait_for(lambda: ps(fleet.home)["alpha"]["memory_bytes"] is not None, 20, "a sample")
        ok(eyriectl(fleet.home, "reload"))
        fleet.write_fleet("version: [")
        eyriectl(fleet.home, "reload")
        families = {f.name: f for f in text_string_to_metric_families(_metrics(fleet.home))}
        types = {name: f.type for name, f in families.items() if name.startswith("eyrie_")}
        assert types == {
            "eyrie_build_info": "gauge",
            "eyrie_reloads": "counter",
            "eyrie_last_reload_timestamp_seconds": "gauge",
            "eyrie_last_reload_success": "gauge",
            "eyrie_instance_status": "gauge",
            "eyrie_instance_up": "gauge",
            "eyrie_instance_healthy": "gauge",
            "eyrie_instance_restart_count": "gauge",
            "eyrie_instance_restarts": "counter",
            "eyrie_instance_uptime_seconds": "gauge",
            "eyrie_instance_start_time_seconds": "gauge",
            "eyrie_instance_cpu_seconds": "counter",
            "eyrie_instance_memory_bytes": "gauge",
            "eyrie_instance_processes": "gauge",
        }

        def samples(family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families[family].samples}

        reloads = samples("eyrie_reloads")
        assert reloads[("eyrie_reloads_total", (("result", "success"),))] == 1
        assert reloads[("eyrie_reloads_total", (("result", "failure"),))] == 1
        assert samples("eyrie_last_reload_success")[("eyrie_last_reload_success", ())] == 0
        assert (
            abs(
                samples("eyrie_last_reload_timestamp_seconds")[("eyrie_last_reload_timestamp_seconds", ())]
                - time.time()
            )
            < 60
        )
        assert [s.name for s in families["eyrie_instance_restarts"].samples] == [
            "eyrie_instance_restarts_total"
        ]
        assert [s.name for s in families["eyrie_instance_cpu_seconds"].samples] == [
            "eyrie_instance_cpu_seconds_total"
        ]
        memory = samples("eyrie_instance_memory_bytes")[
            ("eyrie_instance_memory_bytes", (("instance", "alpha"),))
        ]
        assert memory > 1024 * 1024
        started = samples("eyrie_instance_start_time_seconds")
        assert (
            abs(started[("eyrie_instance_start_time_seconds", (("instance", "alpha"),))] - time.time()) < 300
        )
        build = families["eyrie_build_info"].samples[0]
        assert build.value == 1 and build.labels["version"]
