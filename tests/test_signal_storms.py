"""Signals in every window: SIGHUP and SIGUSR2 sent while eyried re-executes, or in quick succession
right after, never end the daemon and never lose an edit. Reproduces what a 30-minute chaos soak found:
a SIGHUP during a re-exec killed eyried (its handlers were gone while an idle worker thread could still
take the signal), and the edits of a SIGHUP storm after a re-exec were not applied."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests._daemon import DaemonProcess, fleet_yaml, pid_alive, running_daemon, wait_for
from tests.test_convergence import agent

_REEXECS = 4


def _readies(d: DaemonProcess) -> int:
    return d.log().count('"event": "daemon_ready"')


def _env(pid: int) -> dict[str, str]:
    try:
        return dict(psutil.Process(pid).environ())
    except psutil.Error:
        return {}


@contextmanager
def _sighup_storm(d: DaemonProcess) -> Iterator[list[int]]:
    """SIGHUP to eyried about every millisecond until the block ends; yields the count sent so far."""
    assert d.proc is not None
    pid = d.proc.pid
    sent = [0]
    done = threading.Event()

    def storm() -> None:
        while not done.is_set():
            try:
                psutil.Process(pid).send_signal(signal.SIGHUP)
            except psutil.NoSuchProcess:
                return
            sent[0] += 1
            done.wait(0.001)

    thread = threading.Thread(target=storm)
    thread.start()
    try:
        yield sent
    finally:
        done.set()
        thread.join()


def _alive_through(d: DaemonProcess, seconds: float) -> None:
    """eyried still runs, the same process, after ``seconds`` of storm."""
    assert d.proc is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert d.proc.poll() is None, f"eyried died with {d.proc.returncode}:\n{d.log()[-3000:]}"
        threading.Event().wait(0.05)


def _reexec_and_survive(d: DaemonProcess) -> None:
    proc = d.proc
    assert proc is not None
    before = _readies(d)
    d.signal(signal.SIGUSR2)
    wait_for(lambda: _readies(d) > before or proc.poll() is not None, 30, "a re-exec")
    _alive_through(d, 0.2)


class TestReexecUnderFire:
    def test_sighups_throughout_reexecs_neither_kill_eyried_nor_lose_the_edit(self, tmp_path: Path) -> None:
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            assert d.proc is not None
            daemon_pid = d.proc.pid
            d.write_fleet(fleet_yaml(agent("alpha", gen="1"), agent("beta")))
            with _sighup_storm(d) as sent:
                wait_for(lambda: sent[0] > 20, 10, "the storm to begin")
                for _ in range(_REEXECS):
                    _reexec_and_survive(d)
            assert sent[0] > 200
            _alive_through(d, 0.5)
            assert d.proc.pid == daemon_pid
            renewed = d.wait_new_pid("alpha", pids["alpha"], 30)
            assert _env(renewed["pid"]).get("CONV_GEN") == "1"
            assert d.wait_running("beta") == {"beta": pids["beta"]}

    def test_sigusr2_twice_between_sighups_ends_in_one_serving_daemon(self, tmp_path: Path) -> None:
        """A second SIGUSR2 while the first re-exec runs may be coalesced with it (re-executing once is
        what was asked); either way one daemon serves and the agent is adopted, never restarted."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"))) as d:
            pids = d.wait_running("alpha")
            assert d.proc is not None
            before = _readies(d)
            for sig in (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR2, signal.SIGHUP):
                d.signal(sig)
                threading.Event().wait(0.005)
            wait_for(lambda: _readies(d) > before, 30, "the re-executed eyried to be ready")
            _alive_through(d, 1.0)
            d.wait_serving()
            assert d.wait_running("alpha") == pids  # adopted twice, never restarted
            assert pid_alive(pids["alpha"])

    def test_sigterm_right_after_sigusr2_stops_the_fleet(self, tmp_path: Path) -> None:
        """A stop request that lands while eyried re-executes is carried to the new image and obeyed."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"))) as d:
            pids = d.wait_running("alpha")
            d.signal(signal.SIGUSR2)
            d.signal(signal.SIGTERM)
            assert d.proc is not None
            assert d.proc.wait(60) == 0
            wait_for(lambda: not pid_alive(pids["alpha"]), 20, "alpha to be stopped")


class TestSighupStormAfterReexec:
    def test_every_edit_of_a_storm_is_applied(self, tmp_path: Path) -> None:
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), agent("beta"), agent("gamma"))) as d:
            pids = d.wait_running("alpha", "beta", "gamma")
            before = _readies(d)
            d.signal(signal.SIGUSR2)
            wait_for(lambda: _readies(d) > before, 30, "the re-executed eyried to be ready")
            edits = [
                fleet_yaml(agent("alpha", gen="1"), agent("beta"), agent("gamma")),
                fleet_yaml(agent("alpha", gen="2"), agent("beta"), agent("gamma")),
                fleet_yaml(agent("alpha", gen="2"), agent("gamma")),
                fleet_yaml(agent("alpha", gen="2")),
            ]
            for text in edits:
                d.write_fleet(text)
                d.signal(signal.SIGHUP)
                threading.Event().wait(0.002)
            wait_for(lambda: not pid_alive(pids["beta"]) and not pid_alive(pids["gamma"]), 30, "removals")

            def alpha_at_gen_2() -> bool:
                inst = d.instance("alpha")
                pid = inst.get("pid")
                return (
                    inst.get("status") == "running"
                    and isinstance(pid, int)
                    and _env(pid).get("CONV_GEN") == "2"
                )

            wait_for(alpha_at_gen_2, 30, "alpha running with CONV_GEN=2")
            wait_for(lambda: set(d.instances()) == {"alpha"}, 20, "only alpha left in the store")


class TestChildrenMask:
    def test_agents_start_with_no_signal_blocked(self, tmp_path: Path) -> None:
        """eyried blocks its signals in every thread; its agents must not inherit that mask (they would
        ignore SIGTERM), neither at start nor after a re-exec."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            assert d.proc is not None
            assert _blocked(d.proc.pid) != 0  # the daemon's own mask: what the agent must not get
            assert _blocked(pid) == 0
            _reexec_and_survive(d)
            d.signal(signal.SIGTERM)  # reaches an agent that could not block it
            assert d.proc.wait(30) == 0
            wait_for(lambda: not pid_alive(pid), 10, "alpha to be stopped by SIGTERM")


def _blocked(pid: int) -> int:
    """The SigBlk mask of ``pid``'s main thread."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk line for pid {pid}")


class TestRemovalDuringARestart:
    def test_removal_while_a_change_restarts_the_agent(self, tmp_path: Path) -> None:
        """An env change restarts an agent that leaves a grandchild; its removal, reloaded a moment later,
        ends every process of it and trashes its files (the soak's wave 491)."""
        with running_daemon(tmp_path, fleet_yaml(agent("alpha"), _with_grandchild("beta", tmp_path))) as d:
            pids = d.wait_running("alpha", "beta")
            beta = d.instance("beta")["id"]
            wait_for(lambda: _marked(beta), 10, "beta's grandchild")
            for text in (
                fleet_yaml(agent("alpha"), _with_grandchild("beta", tmp_path, gen="1")),
                fleet_yaml(agent("alpha", gen="1"), _with_grandchild("beta", tmp_path, gen="1")),
                fleet_yaml(agent("alpha", gen="1")),
            ):
                d.write_fleet(text)
                d.signal(signal.SIGHUP)
                threading.Event().wait(0.002)
            wait_for(lambda: not _marked(beta), 30, "every process of beta to end")
            wait_for(lambda: "beta" not in d.instances(), 20, "beta's files to leave the store")
            assert not pid_alive(pids["beta"])


def _with_grandchild(name: str, home: Path, gen: str = "0") -> str:
    return agent(name, "--grandchild", str(home / f"{name}-grandchild.pid"), gen=gen)


def _marked(instance_id: str) -> list[int]:
    """Live processes carrying ``instance_id`` as their marker."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get("EYRIE_INSTANCE_ID") == instance_id
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found
