"""The stop journal: a crowd of operator stops is on disk in one file before its signals, a daemon killed
after the signals does not start again what was stopped, a hostile journal changes nothing, and a clean
stop leaves no journal behind."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from supervisor._fs import locked
from supervisor.client import ControlClient
from supervisor.engine._stop_journals import StopJournals
from supervisor.models import Instance
from supervisor.paths import Home
from supervisor.stop_journal import JOURNAL_PREFIX, apply_journals, read_journal, write_journal
from supervisor.store import Store
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon, wait_for

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
BOOT = "boot-of-this-test"


def _journals(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"{JOURNAL_PREFIX}*") if not p.name.endswith(".tmp"))


def _ids(home: Path) -> dict[str, str]:
    return {inst.name: inst.id for inst in Store(Home(home)).list()}


@contextlib.contextmanager
def _records_held(home: Path, ids: list[str]) -> Iterator[None]:
    """Hold every instance's write lock, as another writer of ``instance.json`` (``eyriectl``) does: the
    daemon's record writes wait for it."""
    with contextlib.ExitStack() as stack:
        for instance_id in ids:
            stack.enter_context(locked(home / "instances" / instance_id / ".lock"))
        yield


def _stop_in_background(home: Path, names: list[str]) -> threading.Thread:
    """``POST /v1/stop`` from a thread: its answer waits for the records, which may never come."""

    async def stop() -> None:
        async with ControlClient(Home(home)) as client:
            await client.stop_many(names, wait=False)

    def run() -> None:
        with contextlib.suppress(Exception):  # the daemon is killed under it
            anyio.run(stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    with running_daemon(tmp_path, fleet_yaml(*(embedded(name) for name in NAMES))) as daemon:
        daemon.wait_running(*NAMES)
        yield daemon


class TestCrash:
    def test_killed_after_the_signals_the_next_daemon_keeps_them_stopped(self, fleet: DaemonProcess) -> None:
        """With every record write held, ``POST /v1/stop`` still ends every agent (the journal is on disk
        first); the daemon SIGKILLed then leaves records that say "running", and the next daemon applies
        the journal: nothing is started again, every record says stopped, and the journal is gone."""
        home = fleet.home
        pids = fleet.wait_running(*NAMES)
        ids = _ids(home)
        with _records_held(home, list(ids.values())):
            stopper = _stop_in_background(home, list(NAMES))
            wait_for(lambda: not any(pid_alive(pid) for pid in pids.values()), 20, "every agent ended")
            journals = _journals(home / "instances")
            assert len(journals) == 1
            assert set(read_journal(journals[0]).ids) == set(ids.values())
            fleet.kill()
            stopper.join(10)
        assert all(fleet.instance(name)["desired"] == "running" for name in NAMES)  # no record landed

        fleet.start()
        fleet.wait_serving()
        for name in NAMES:
            inst = fleet.wait_status(name, "stopped")
            assert inst["desired"] == "stopped" and not inst.get("pid")
        assert not _journals(home / "instances")
        assert "stop_journal_applied" in fleet.log()
        assert not any(pid_alive(inst.get("pid")) for inst in fleet.instances().values())


class TestCleanStop:
    def test_no_journal_left_after_a_stop_of_many(self, fleet: DaemonProcess) -> None:
        """A stop of the whole fleet leaves every record stopped and no journal in the instances
        directory."""
        pids = fleet.wait_running(*NAMES)

        async def stop() -> None:
            async with ControlClient(Home(fleet.home)) as client:
                await client.stop_many(list(NAMES), wait=True)

        anyio.run(stop)
        assert not any(pid_alive(pid) for pid in pids.values())
        assert all(fleet.instance(name)["desired"] == "stopped" for name in NAMES)
        wait_for(lambda: not _journals(fleet.home / "instances"), 10, "the journal removed")


def _store_with(home: Home, *names: str) -> tuple[Store, list[Instance]]:
    store = Store(home)
    made = []
    for i, name in enumerate(names):
        inst = Instance(id=f"id-{name}", name=name, framework="embedded", port=47900 + i)
        inst.desired, inst.desired_boot_id = "running", BOOT
        store.save(inst)
        made.append(inst)
    return store, made


class TestHostile:
    def _plant(self, root: Path, outside: Path) -> list[Path]:
        garbage = root / f"{JOURNAL_PREFIX}garbage.json"
        garbage.write_bytes(b'{"version": 1, "desired": "stopped", "ids": ["id-al')  # torn
        other = root / f"{JOURNAL_PREFIX}other.json"
        other.write_text(json.dumps({"version": 9, "ids": ["id-alpha"]}))
        link = root / f"{JOURNAL_PREFIX}link.json"
        journal = {"version": 1, "desired": "stopped", "desired_boot_id": BOOT, "ids": []}
        outside.write_text(json.dumps(journal))
        link.symlink_to(outside)
        fifo = root / f"{JOURNAL_PREFIX}fifo.json"
        os.mkfifo(fifo)
        huge = root / f"{JOURNAL_PREFIX}huge.json"
        with huge.open("wb") as f:
            f.truncate(64 * 1024 * 1024)
        return [garbage, other, link, fifo, huge]

    def test_unreadable_journals_are_left_with_a_warning(self, home: Home, tmp_path: Path) -> None:
        """A torn file, another format, a symlink, a FIFO and a huge file: each is warned about and left
        where it is (the symlink's target untouched), and no record changes."""
        store, made = _store_with(home, "alpha", "beta")
        outside = tmp_path / "outside.json"
        planted = self._plant(store.root, outside)
        before = outside.read_bytes()
        with capture_logs() as logs:
            assert apply_journals(store) == []
        warned = [e for e in logs if e["event"] == "stop_journal_ignored"]
        assert len(warned) == len(planted)
        assert all(p.is_symlink() or p.exists() for p in planted)
        assert outside.read_bytes() == before
        assert all(store.get(inst.id).desired == "running" for inst in made)

    def test_unknown_and_bad_ids_are_skipped_the_rest_applied(self, home: Home) -> None:
        """A journal naming an instance that does not exist and a string that is no id: both warned about,
        the real instance recorded stopped, the journal removed."""
        store, (alpha, beta) = _store_with(home, "alpha", "beta")
        path = store.root / f"{JOURNAL_PREFIX}mixed.json"
        write_journal(path, ["id-nosuch", "../../etc", alpha.id], BOOT)
        with capture_logs() as logs:
            assert apply_journals(store) == [alpha.id]
        events = {e["event"] for e in logs}
        assert {"stop_journal_unknown_instance", "stop_journal_bad_ids"} <= events
        assert (store.get(alpha.id).desired, store.get(alpha.id).desired_boot_id) == ("stopped", BOOT)
        assert store.get(beta.id).desired == "running"
        assert not path.exists()

    def test_daemon_starts_beside_hostile_journals(self, tmp_path: Path) -> None:
        """A daemon starting on a home with hostile journals starts its fleet as declared and says why it
        ignored each."""
        home = tmp_path / "home"
        (home / "instances").mkdir(parents=True)
        planted = self._plant(home / "instances", tmp_path / "outside.json")
        write_journal(home / "instances" / f"{JOURNAL_PREFIX}unknown.json", ["id-nosuch"], BOOT)
        with running_daemon(home, fleet_yaml(embedded("alpha"), embedded("beta"))) as daemon:
            daemon.wait_running("alpha", "beta")
            log = daemon.log()
            assert log.count("stop_journal_ignored") == len(planted)
            assert "stop_journal_unknown_instance" in log


class TestRelease:
    @pytest.mark.anyio
    async def test_a_start_before_the_records_land_leaves_the_journal(self, home: Home) -> None:
        """Three stops share one journal; one wanted running again before its record landed is taken out
        of the file at once; the file goes when the other two records land."""
        store = Store(home)
        store.root.mkdir(parents=True)
        journals = StopJournals(store.root, BOOT)
        for instance_id in ("a", "b", "c"):
            journals.cover(instance_id)
        assert await journals.saved("a") and await journals.saved("b")
        (path,) = _journals(store.root)
        assert set(read_journal(path).ids) == {"a", "b", "c"} and journals.written == 1
        journals.release("b")
        assert set(read_journal(path).ids) == {"a", "c"}
        journals.landed("a", "stopped", BOOT)
        journals.landed("c", "running", BOOT)  # not a stop: c stays covered
        assert path.exists()
        journals.landed("c", "stopped", BOOT)
        assert not path.exists()

    @pytest.mark.anyio
    async def test_records_landed_first_need_no_file(self, home: Home) -> None:
        """Stops whose records land before any signal needs them write no journal at all."""
        store = Store(home)
        journals = StopJournals(store.root, BOOT)
        journals.cover("a")
        journals.landed("a", "stopped", BOOT)
        assert not await journals.saved("a")
        assert journals.written == 0 and not _journals(store.root)
