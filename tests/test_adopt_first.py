"""A daemon that follows one that did not stop adopts its agents before it imports and serves its APIs; the
event history still has the whole start-up."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from supervisor.control._sse import EventHistory
from supervisor.control.hub import EventHub
from supervisor.daemon.lock import DaemonLock
from supervisor.engine.events import Event
from supervisor.models import utcnow
from supervisor.paths import Home
from tests._cli import eyriectl
from tests._daemon import DaemonProcess, embedded, fleet_yaml, logged_order, wait_for


def _events(home: Path) -> list[dict[str, Any]]:
    result = eyriectl(home, "events", "--json", "-n", "200")
    if result.returncode != 0:
        return []
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


class TestAdoptionFirst:
    def test_after_a_kill_the_fleet_is_adopted_before_the_api_is_served(self, tmp_path: Path) -> None:
        """kill -9 of eyried: its successor logs ``fleet ready`` before ``control_listening``, restarts
        nothing, and its event history (served afterwards) has the adoption and the ``fleet ready``."""
        daemon = DaemonProcess(tmp_path)
        daemon.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta")))
        try:
            daemon.start()
            daemon.wait_serving()
            pids = daemon.wait_running("alpha", "beta")
            daemon.kill()
            daemon.start()

            def ready() -> list[dict[str, Any]]:
                return [e for e in _events(tmp_path) if e["detail"] == "fleet ready"]

            event = wait_for(ready, 30, "the successor's fleet ready event")[0]
            assert event["data"]["adopted"] == 2 and event["data"]["cpu_seconds"] > 0
            order = logged_order(daemon.log(), "fleet_ready", "control_listening", "agent_api_listening")
            assert order == ["fleet_ready", "control_listening", "agent_api_listening"]
            adopted = [e for e in _events(tmp_path) if (e.get("detail") or "").startswith("adopted pid")]
            assert {e["instance"] for e in adopted} == {"alpha", "beta"}
            assert daemon.wait_running("alpha", "beta") == pids
        finally:
            daemon.close()


class TestPredecessor:
    def test_a_pid_file_of_this_boot_says_a_daemon_did_not_stop(self, tmp_path: Path) -> None:
        """The pid file a killed daemon left is seen; the lock's own pid file replaces it."""
        home = Home(tmp_path)
        home.ensure_run_dir()
        home.pid_file.write_text("12345\n")
        lock = DaemonLock(home)
        lock.acquire()
        try:
            assert lock.predecessor_left
            assert home.pid_file.read_text() == f"{os.getpid()}\n"
        finally:
            lock.release()

    @pytest.mark.parametrize("left", ["none", "before boot"])
    def test_no_pid_file_of_this_boot_is_no_predecessor(self, tmp_path: Path, left: str) -> None:
        """A clean stop removes the pid file; one from before the last boot names no live daemon's agents."""
        home = Home(tmp_path)
        home.ensure_run_dir()
        if left == "before boot":
            home.pid_file.write_text("12345\n")
            booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
            os.utime(home.pid_file, (booted - 60, booted - 60))
        lock = DaemonLock(home)
        lock.acquire()
        try:
            assert not lock.predecessor_left
        finally:
            lock.release()


def _event(detail: str) -> Event:
    return Event(time=utcnow(), event="daemon", detail=detail)


class TestKeptEvents:
    @pytest.mark.anyio
    async def test_a_subscriber_gets_what_was_kept_until_served(self) -> None:
        """Events published before the API's history subscribed are replayed to it (it asks for them); a
        client subscribing before `served` too gets only what comes next."""
        hub = EventHub(keep_until_served=True)
        hub.publish(_event("one"))
        hub.publish(_event("two"))
        async with hub.subscribe(kept=True) as history:
            hub.publish(_event("three"))
            async with hub.subscribe() as later:
                hub.publish(_event("four"))
                with anyio.fail_after(5):
                    assert [(await anext(history)).detail for _ in range(4)] == [
                        "one",
                        "two",
                        "three",
                        "four",
                    ]
                    assert (await anext(later)).detail == "four"

    @pytest.mark.anyio
    async def test_a_client_that_subscribes_before_served_gets_nothing_kept(self) -> None:
        """A client whose connection waited in the backlog may subscribe before `served`: it gets only the
        events published after it subscribed, not the start-up the history was kept for."""
        hub = EventHub(keep_until_served=True)
        hub.publish(_event("start-up"))
        async with hub.subscribe(kept=True), hub.subscribe() as client:
            hub.publish(_event("after"))
            with anyio.fail_after(5):
                assert (await anext(client)).detail == "after"

    @pytest.mark.anyio
    async def test_the_history_holds_what_was_kept_once_it_has_subscribed(self) -> None:
        """The API's history has taken in every kept event by the time it reports itself subscribed (before
        the API answers a request): a stream opened then starts after them, not behind them."""
        hub = EventHub(keep_until_served=True)
        for n in range(80):
            hub.publish(_event(f"start-up {n}"))
        history = EventHistory(200)
        async with anyio.create_task_group() as tg:
            await tg.start(history.record, functools.partial(hub.subscribe, kept=True))
            assert history.last_id == f"{hub.start}-80"
            assert len(history.all()) == 80
            tg.cancel_scope.cancel()

    @pytest.mark.anyio
    async def test_a_hub_that_keeps_nothing_replays_nothing(self) -> None:
        """The default hub (the in-memory target's, the tests') keeps nothing."""
        hub = EventHub()
        hub.publish(_event("before"))
        async with hub.subscribe() as events:
            hub.publish(_event("after"))
            with anyio.fail_after(5):
                assert (await anext(events)).detail == "after"
