"""The proof: an agent turned attacker, run confined by a real eyried as users run it, tries everything the
attack on an unconfined fleet did. Each attempt is refused, nothing changes, and the attempt is on record;
the same agent still does its own job (its workspace, its TMPDIR, its port, its note).

Run as root in CI: a confined agent must hold even with the uid that could otherwise read anything."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.fleet import parse_fleet
from supervisor.paths import Home
from supervisor.sandbox.confine import landlock_abi
from supervisor.testing import hostile
from tests._daemon import FAST_DEFAULTS, DaemonProcess, running_daemon

pytestmark = pytest.mark.skipif(
    landlock_abi() < 6, reason="needs Landlock ABI 6 (scoped signals and sockets)"
)

_KIND = {"own-workspace-file": "dir", "own-tmp-file": "dir", "bind-own-port": "port"}
_OWN_JOB = {
    ("own-workspace-file", "dir"),
    ("own-tmp-file", "dir"),
    ("bind-own-port", "port"),
    ("api", "POST /self/note"),
}


def _fleet(*extra: str, max_children: int = 8) -> str:
    return (
        f"version: 1\ndaemon:\n  agent_api: {{max_children: {max_children}}}\n{FAST_DEFAULTS}instances:\n"
        "  - {name: boss, framework: embedded, role: commander}\n"
        "  - {name: cap, framework: embedded, role: captain, project: apollo, parent: boss}\n"
        "  - {name: victim, framework: embedded, role: talon, project: apollo, parent: cap}\n"
        + "".join(extra)
    )


def _hostile_entry(name: str, role: str, flags: list[str], parent: str = "cap") -> str:
    # a literal brace (the JSON bodies) is doubled in a command; "{instance_dir}" stays a placeholder
    literal = [
        f if f.startswith("{instance_dir}") else f.replace("{", "{{").replace("}", "}}") for f in flags
    ]
    command = ", ".join(json.dumps(arg) for arg in hostile(*literal))
    where = "project: apollo, " if role != "commander" else ""
    return (
        f"  - {{name: {name}, framework: embedded, role: {role}, {where}parent: {parent},\n"
        f"     command: [{command}]}}\n"
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _report(d: DaemonProcess, name: str) -> list[dict[str, Any]]:
    workspace = Path(d.instance(name)["workspace_path"])
    path = workspace / "hostile-report.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


_EVIL = json.dumps({"name": "evil", "role": "talon", "project": "apollo"})


class TestHostileTalon:
    def test_every_attack_is_refused_and_its_own_job_is_done(self, tmp_path: Path) -> None:
        with running_daemon(tmp_path, _fleet()) as d:
            pids = d.wait_running("boss", "cap", "victim")
            assert d.proc is not None
            victim = d.instance("victim")
            victim_dir = tmp_path / "instances" / victim["id"]
            flags = [
                "--read-file", str(victim_dir / "secrets" / "token"),
                "--read-file", str(victim_dir / "instance.json"),
                "--read-file", str(tmp_path / "fleet.yaml"),
                "--read-environ", str(pids["victim"]),
                "--read-environ", str(d.proc.pid),
                "--write-file", str(tmp_path / "fleet.yaml"),
                "--write-file", "{instance_dir}/instance.json",
                "--write-file", "{instance_dir}/logs/embedded.log",
                "--signal", f"{d.proc.pid}:SIGTERM",
                "--signal", f"{pids['victim']}:SIGTERM",
                "--unix-get", str(tmp_path / "run" / "eyried.sock"),
                "--unix-get", "@" + Home(tmp_path).operator_socket[1:],
                "--escape",
                "--bind-port", str(victim["port"]),
                "--api", "POST", "/instances", _EVIL,
                "--api", "GET", "/instances",
                "--api", "DELETE", "/instances/victim",
                "--api", "POST", "/self/note", json.dumps({"note": "doing my own job"}),
                "--own-job",
            ]  # fmt: skip
            fleet = _fleet(_hostile_entry("mallory", "talon", flags))
            d.write_fleet(fleet)
            victim_token = _sha(victim_dir / "secrets" / "token")
            d.signal(signal.SIGHUP)
            d.wait_running("mallory", timeout=60)  # ready only once its attempts are made
            report = _report(d, "mallory")

            refused = [r for r in report if r["outcome"] == "refused"]
            succeeded = [r for r in report if r["outcome"] == "succeeded"]
            failed = [r for r in report if r["outcome"] == "failed"]
            assert not failed, f"attempts that neither succeeded nor were refused: {failed}"
            done = {
                (r["attempt"], r["target"] if r["attempt"] == "api" else _KIND[r["attempt"]])
                for r in succeeded
            }
            assert done == _OWN_JOB, f"attacks that succeeded: {succeeded}"
            attempted = {r["attempt"] for r in refused}
            assert {
                "read-file",
                "read-environ",
                "write-file",
                "signal",
                "unix-get",
                "abstract-get",
                "bind-port",
                "api",
            } <= attempted
            assert (
                sum(1 for r in refused if r["variant"] == "escape") >= 2
            )  # both sockets, from the escapee too
            assert len(refused) == 18  # every attack above, the two socket ones twice

            # nothing changed
            assert (tmp_path / "fleet.yaml").read_text() == fleet
            assert _sha(victim_dir / "secrets" / "token") == victim_token
            assert d.proc.poll() is None
            assert d.wait_running("boss", "cap", "victim") == pids
            assert "evil" not in d.instances()
            assert d.instance("mallory")["note"] == "doing my own job"

            # on record: the agent API's refusals name the agent; the operator socket's name the pid
            log = d.log()
            assert '"agent_api_call"' in log and '"mallory"' in log
            assert '"control_connection_refused"' in log


class TestHostileCommander:
    def test_max_children_holds_against_a_runaway_commander(self, tmp_path: Path) -> None:
        talon = json.dumps({"name": "t1", "role": "talon", "project": "apollo"})
        extra = json.dumps({"name": "t2", "role": "talon", "project": "apollo"})
        flags = [
            "--at",
            "request",
            "--api",
            "POST",
            "/instances",
            talon,
            "--api",
            "POST",
            "/instances",
            extra,
        ]
        fleet = _fleet(max_children=1).replace(
            "  - {name: boss, framework: embedded, role: commander}\n",
            _hostile_entry("boss", "commander", flags, parent='""'),
        )
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running("boss", "cap", "victim")
            boss = d.instance("boss")
            answer = httpx.post(f"http://127.0.0.1:{boss['port']}/attack", timeout=60).json()
            outcomes = [(r["target"], r["outcome"], r["http_status"]) for r in answer]
            assert outcomes == [
                ("POST /instances", "succeeded", 201),
                ("POST /instances", "refused", 429),
            ]
            d.wait_running("t1")
            assert "t2" not in d.instances()
            assert d.instance("t1")["created_by"] == boss["id"]
            assert "t2" not in parse_fleet((tmp_path / "fleet.yaml").read_text()).names()
