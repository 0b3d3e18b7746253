"""The event stream across a crash storm: a client that reads nothing while 40 agents are SIGKILLed three
times (more events than the history keeps) still gets every event, in id order, without a ``gap``; and a
client resuming from an id within the history gets exactly what followed it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests._daemon import DaemonProcess, fleet_yaml, running_daemon

AGENTS = 40
STORMS = 3
DEFAULTS = """\
defaults:
  restart: {policy: always, initial_delay: 10ms, factor: 2, max_delay: 1s, jitter: 0, max_retries: 1000}
  health: {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 30s}
  stop_timeout: 5s
"""
SLEEPER = (
    "  - name: s{i:02d}\n    framework: embedded\n    command: [sleep, '600']\n    sandbox: off\n"
    "    ready: {{kind: process, seconds: 0}}\n    live: {{kind: process, seconds: 0}}\n"
)
NAMES = [f"s{i:02d}" for i in range(AGENTS)]


def _events(lines: Iterator[str], until: str) -> list[dict[str, Any]]:
    """The events of an SSE stream (with their ``id``) up to and including the first of kind ``until``."""
    found: list[dict[str, Any]] = []
    event_id = ""
    for line in lines:
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            found.append({**json.loads(line.removeprefix("data: ")), "sse_id": event_id})
            if found[-1]["event"] == until:
                return found
    raise AssertionError(f"the stream ended before a {until} event")


def _storm(d: DaemonProcess) -> None:
    pids = d.wait_running(*NAMES, timeout=60)
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    for name, pid in pids.items():
        d.wait_new_pid(name, pid, timeout=60)


def _sequence(event: dict[str, Any]) -> int:
    return int(event["id"].rpartition("-")[2])


class TestCrashStorm:
    def test_a_client_reading_nothing_during_storms_loses_no_event(self, tmp_path: Path) -> None:
        """Three storms of 40 crashes (more events than the history's 200) reach a client that read nothing
        meanwhile, every one: consecutive ids, no gap, a new ``running`` per crash; a client resuming from an
        id within the history gets exactly the events after it."""
        fleet = fleet_yaml(*(SLEEPER.format(i=i) for i in range(AGENTS)), defaults=DEFAULTS)
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running(*NAMES, timeout=60)
            transport = httpx.HTTPTransport(uds=str(tmp_path / "run" / "eyried.sock"))
            with (
                httpx.Client(transport=transport, base_url="http://eyried", timeout=60) as http,
                http.stream("GET", "/v1/events") as slow,
            ):
                lines = slow.iter_lines()
                assert next(lines) == ": connected"
                for _ in range(STORMS):
                    _storm(d)
                http.post("/v1/reload").raise_for_status()  # marks the end of what the slow client must get
                events = _events(lines, until="reload")
            ids = [_sequence(e) for e in events]
            assert not [e for e in events if e["event"] == "gap"]
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            assert len(events) > 200
            running = [e for e in events if e["event"] == "transition" and e["to_status"] == "running"]
            assert sorted(e["instance"] for e in running) == sorted(NAMES * STORMS)
            assert all(e["sse_id"] == e["id"] for e in events)

            resume_from = events[-100]["id"]
            with (
                httpx.Client(transport=transport, base_url="http://eyried", timeout=60) as http,
                http.stream("GET", "/v1/events", headers={"Last-Event-ID": resume_from}) as resumed,
            ):
                again = _events(resumed.iter_lines(), until="reload")
            assert [e["id"] for e in again] == [e["id"] for e in events[-99:]]
