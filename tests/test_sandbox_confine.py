"""Confined children, for real: a Python child spawned under an instance's policy tries what an attacker
would, and reports what the kernel answered."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.engine.process import SpawnedProcess, spawn
from supervisor.sandbox.confine import Sandboxes
from supervisor.sandbox.policy import SandboxPolicy
from tests._daemon import kill_quietly, wait_for

ABI = Sandboxes().abi
pytestmark = pytest.mark.skipif(ABI < 6, reason=f"needs Landlock ABI 6 (this kernel: {ABI})")

TRY = """
import json, os, socket, sys
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as exc:
        return f"denied {exc.errno}"
def read(p):
    return lambda: open(p).read()
def write(p):
    return lambda: open(p, "a").write("x")
def bind(port):
    def go():
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    return go
def kill(pid):
    return lambda: os.kill(pid, 0)
def connect_abstract(name):
    def go():
        with socket.socket(socket.AF_UNIX) as s:
            s.connect("\\0" + name)
    return go
results = {name: attempt(eval(call)) for name, call in json.loads(sys.argv[1]).items()}
print(json.dumps(results), flush=True)
"""


class Instance:
    """An instance directory laid out as provisioning leaves it, with a port of its own."""

    def __init__(self, home: Path, name: str, port: int) -> None:
        self.home = home
        self.dir = home / "instances" / name
        (self.dir / "secrets").mkdir(parents=True)
        (self.dir / "logs").mkdir()
        (self.dir / "secrets" / "token").write_text(f"token-of-{name}")
        (self.dir / "config.json").write_text("{}")
        (self.dir / "instance.json").write_text("{}")
        self.port = port

    def policy(self, argv: tuple[str, ...], **extra: tuple[str, ...]) -> SandboxPolicy:
        return SandboxPolicy(
            instance_dir=str(self.dir),
            workspace=str(self.dir / "workspace"),
            config=str(self.dir / "config.json"),
            token=str(self.dir / "secrets" / "token"),
            port=self.port,
            argv=argv,
            search_path=os.environ.get("PATH", os.defpath),
            **extra,
        )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "fleet.yaml").write_text("version: 1\n")
    (tmp_path / "run").mkdir()
    return tmp_path


@pytest.fixture
def ports() -> tuple[int, int]:
    """Two ports free now, chosen by the kernel (held open together, so they differ)."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    boxes = Sandboxes()
    yield boxes
    boxes.close()


def _warn(event: str, **fields: object) -> None:
    raise AssertionError(f"unexpected warning {event}: {fields}")


def run_confined(
    sandboxes: Sandboxes, inst: Instance, attempts: dict[str, str], **extra: tuple[str, ...]
) -> dict[str, str]:
    """Run the attempts in a child confined as ``inst``; each is ``ok`` or ``denied <errno>``."""
    argv = (sys.executable, "-c", TRY, json.dumps(attempts))
    confinement = sandboxes.prepare(inst.dir.name, inst.policy(argv, **extra), _warn)
    log = inst.dir / "logs" / "probe.log"
    proc = spawn(
        argv, env=dict(os.environ), cwd=inst.dir / "workspace", log_path=log, confine=confinement.confiner
    )
    _wait_exit(proc)
    lines = log.read_text().splitlines()
    assert lines, "the confined child printed nothing"
    return dict(json.loads(lines[-1]))


def _wait_exit(proc: SpawnedProcess) -> None:
    wait_for(lambda: not proc.alive(), timeout=20, what="the confined child to exit")
    proc.release()


def start_sleeper(sandboxes: Sandboxes, inst: Instance) -> SpawnedProcess:
    """A confined agent that waits, with a secret in its environment."""
    argv = (sys.executable, "-c", "import time\nprint('up', flush=True)\ntime.sleep(60)")
    confinement = sandboxes.prepare(inst.dir.name, inst.policy(argv), _warn)
    log = inst.dir / "logs" / "sleeper.log"
    env = {**os.environ, "EYRIE_AUTH_TOKEN": "sibling-secret"}
    proc = spawn(argv, env=env, cwd=inst.dir / "workspace", log_path=log, confine=confinement.confiner)
    wait_for(lambda: log.exists() and "up" in log.read_text(), what="the sleeper to start")
    return proc


class TestOwnAreas:
    def test_reads_and_writes_its_workspace_state_and_tmp(self, home: Path, sandboxes: Sandboxes) -> None:
        """Workspace, state/ and tmp/ are the agent's own: it creates, writes and reads files there."""
        inst = Instance(home, "a", 43001)
        got = run_confined(
            sandboxes,
            inst,
            {
                "workspace": f"write({str(inst.dir / 'workspace' / 'note')!r})",
                "state": f"write({str(inst.dir / 'state' / 'db')!r})",
                "tmp": f"write({str(inst.dir / 'tmp' / 'scratch')!r})",
                "workspace_again": f"read({str(inst.dir / 'workspace' / 'note')!r})",
            },
        )
        assert got == {"workspace": "ok", "state": "ok", "tmp": "ok", "workspace_again": "ok"}

    def test_reads_but_cannot_change_its_config_and_token(self, home: Path, sandboxes: Sandboxes) -> None:
        """Its config file and its token are readable, not writable."""
        inst = Instance(home, "a", 43001)
        config, token = inst.dir / "config.json", inst.dir / "secrets" / "token"
        got = run_confined(
            sandboxes,
            inst,
            {
                "read_config": f"read({str(config)!r})",
                "read_token": f"read({str(token)!r})",
                "write_config": f"write({str(config)!r})",
                "write_token": f"write({str(token)!r})",
            },
        )
        assert got == {
            "read_config": "ok",
            "read_token": "ok",
            "write_config": "denied 13",
            "write_token": "denied 13",
        }


class TestDaemonsFiles:
    def test_other_instances_and_the_daemons_files_are_out_of_reach(
        self, home: Path, sandboxes: Sandboxes
    ) -> None:
        """Another instance's token, fleet.yaml, its own instance.json and log files, run/: all refused."""
        inst = Instance(home, "a", 43001)
        Instance(home, "b", 43002)
        got = run_confined(
            sandboxes,
            inst,
            {
                "other_token": f"read({str(home / 'instances' / 'b' / 'secrets' / 'token')!r})",
                "fleet": f"write({str(home / 'fleet.yaml')!r})",
                "read_fleet": f"read({str(home / 'fleet.yaml')!r})",
                "own_instance_json": f"write({str(inst.dir / 'instance.json')!r})",
                "read_instance_json": f"read({str(inst.dir / 'instance.json')!r})",
                "own_log": f"write({str(inst.dir / 'logs' / 'probe.log')!r})",
                "run": f"write({str(home / 'run' / 'planted')!r})",
            },
        )
        assert set(got.values()) == {"denied 13"}, got
        assert (home / "fleet.yaml").read_text() == "version: 1\n"
        assert (inst.dir / "instance.json").read_text() == "{}"


class TestProcesses:
    def test_cannot_read_a_sibling_agents_environment(self, home: Path, sandboxes: Sandboxes) -> None:
        """A sibling agent's and the daemon's /proc/<pid>/environ (their secrets) are refused, root or not."""
        sibling = start_sleeper(sandboxes, Instance(home, "b", 43002))
        try:
            got = run_confined(
                sandboxes,
                Instance(home, "a", 43001),
                {
                    "environ": f"read('/proc/{sibling.pid}/environ')",
                    "daemon_environ": f"read('/proc/{os.getpid()}/environ')",
                    "own_environ": "read('/proc/self/environ')",
                    "sibling_status": f"read('/proc/{sibling.pid}/status')",
                },
            )
        finally:
            kill_quietly(sibling.pid)
            _wait_exit(sibling)
        assert got["environ"] == got["daemon_environ"] == "denied 13"
        assert got["own_environ"] == "ok"
        assert got["sibling_status"] == "ok"  # public facts stay public

    def test_cannot_signal_the_daemon_or_a_sibling(self, home: Path, sandboxes: Sandboxes) -> None:
        """Signals are scoped: the daemon (this test process) and a sibling agent are out of reach."""
        sibling = start_sleeper(sandboxes, Instance(home, "b", 43002))
        try:
            got = run_confined(
                sandboxes,
                Instance(home, "a", 43001),
                {
                    "daemon": f"kill({os.getpid()})",
                    "sibling": f"kill({sibling.pid})",
                    "itself": "kill(os.getpid())",
                },
            )
            assert sibling.alive()
        finally:
            kill_quietly(sibling.pid)
            _wait_exit(sibling)
        assert got == {"daemon": "denied 1", "sibling": "denied 1", "itself": "ok"}

    def test_cannot_reach_an_abstract_socket_outside_its_sandbox(
        self, home: Path, sandboxes: Sandboxes
    ) -> None:
        """Abstract Unix sockets are scoped: one the daemon listens on refuses a confined agent."""
        name = f"eyrie-test-{os.getpid()}-{id(home)}"
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind("\0" + name)
            listener.listen()
            got = run_confined(
                sandboxes, Instance(home, "a", 43001), {"abstract": f"connect_abstract({name!r})"}
            )
        assert got == {"abstract": "denied 1"}

    @pytest.mark.skipif(os.geteuid() != 0, reason="the capability drop applies to a root daemon")
    def test_a_root_agent_has_no_capabilities(self, home: Path, sandboxes: Sandboxes) -> None:
        """As root, the child's effective, permitted and bounding sets are empty and no_new_privs is set."""
        inst = Instance(home, "a", 43001)
        argv = (sys.executable, "-c", "print(open('/proc/self/status').read(), flush=True)")
        confinement = sandboxes.prepare("a", inst.policy(argv), _warn)
        log = inst.dir / "logs" / "caps.log"
        proc = spawn(argv, env=dict(os.environ), cwd=inst.dir, log_path=log, confine=confinement.confiner)
        _wait_exit(proc)
        status = dict(line.split(":\t", 1) for line in log.read_text().splitlines() if ":\t" in line)
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[key], 16) == 0, (key, status[key])
        assert status["NoNewPrivs"].strip() == "1"


@pytest.mark.skipif(ABI < 4, reason="TCP bind rules need Landlock ABI 4")
class TestPorts:
    def test_binds_its_own_port_and_kernel_chosen_ones_only(
        self, home: Path, sandboxes: Sandboxes, ports: tuple[int, int]
    ) -> None:
        """Its own port and port 0 bind; another instance's port is refused."""
        own, other = ports
        got = run_confined(
            sandboxes,
            Instance(home, "a", own),
            {"own": f"bind({own})", "other": f"bind({other})", "ephemeral": "bind(0)"},
        )
        assert got == {"own": "ok", "other": "denied 13", "ephemeral": "ok"}


class TestExtraPaths:
    def test_read_and_write_paths_are_granted(
        self, home: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """``read`` paths are readable, not writable; ``write`` ones writable, made when missing."""
        outside = tmp_path_factory.mktemp("outside")
        (outside / "ro").mkdir()
        (outside / "ro" / "data").write_text("shared")
        rw = outside / "rw" / "made"
        inst = Instance(home, "a", 43001)
        boxes = Sandboxes()
        try:
            got = run_confined(
                boxes,
                inst,
                {
                    "read": f"read({str(outside / 'ro' / 'data')!r})",
                    "write_ro": f"write({str(outside / 'ro' / 'data')!r})",
                    "write": f"write({str(rw / 'file')!r})",
                    "elsewhere": f"write({str(outside / 'other')!r})",
                },
                read=(str(outside / "ro"),),
                write=(str(rw),),
            )
        finally:
            boxes.close()
        assert got == {"read": "ok", "write_ro": "denied 13", "write": "ok", "elsewhere": "denied 13"}

    def test_a_write_path_that_is_a_file_is_granted_as_it_is(self, home: Path, sandboxes: Sandboxes) -> None:
        """``write: [/dev/null]`` (OpenClaw's definition): granted, not made a directory; the spawn works."""
        inst = Instance(home, "a", 43001)
        got = run_confined(sandboxes, inst, {"devnull": "write('/dev/null')"}, write=("/dev/null",))
        assert got == {"devnull": "ok"}

    def test_a_missing_read_path_is_skipped_with_a_warning(self, home: Path) -> None:
        """A ``read`` path that does not exist is left out and said so; the agent still starts."""
        inst = Instance(home, "a", 43001)
        warnings: list[tuple[str, dict[str, object]]] = []
        boxes = Sandboxes()
        try:
            boxes.prepare(
                "a",
                inst.policy(("true",), read=(str(home / "nope"),)),
                lambda e, **f: warnings.append((e, f)),
            )
        finally:
            boxes.close()
        assert warnings == [("sandbox_path_missing", {"path": str(home / "nope")})]


class TestRulesetCache:
    def test_a_respawn_reuses_the_ruleset_and_a_new_policy_replaces_it(self, home: Path) -> None:
        """The same policy gives the same confinement; a changed one a new ruleset, the old one closed."""
        inst = Instance(home, "a", 43001)
        boxes = Sandboxes()
        before = len(os.listdir("/proc/self/fd"))
        first = boxes.prepare("a", inst.policy(("true",)), _warn)
        assert boxes.prepare("a", inst.policy(("true",)), _warn) is first
        second = boxes.prepare("a", inst.policy(("true",), read=("/srv",)), _warn)
        assert second is not first
        assert len(os.listdir("/proc/self/fd")) == before + 1
        boxes.forget("a")
        assert len(os.listdir("/proc/self/fd")) == before


def test_unconfined_spawn_is_untouched(tmp_path: Path) -> None:
    """Without a confiner (``sandbox: off``) the child keeps no_new_privs unset."""
    log = tmp_path / "out.log"
    argv = (sys.executable, "-c", "print(open('/proc/self/status').read(), flush=True)")
    proc = spawn(argv, env=dict(os.environ), cwd=tmp_path, log_path=log)
    _wait_exit(proc)
    assert "NoNewPrivs:\t0" in log.read_text()


def test_a_config_rewritten_by_rename_stays_readable(home: Path, sandboxes: Sandboxes) -> None:
    """A rule holds an inode: a config replaced by rename (re-rendered) is granted again at the next spawn."""
    inst = Instance(home, "a", 43001)
    config = inst.dir / "config.json"
    assert run_confined(sandboxes, inst, {"config": f"read({str(config)!r})"}) == {"config": "ok"}
    fresh = inst.dir / "config.json.new"
    fresh.write_text('{"port": 43002}')
    fresh.rename(config)
    assert run_confined(sandboxes, inst, {"config": f"read({str(config)!r})"}) == {"config": "ok"}
