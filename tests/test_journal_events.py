"""``events -f`` resumes: SSE ids carry the daemon's start, ``Last-Event-ID`` gets what followed, a gap is
told, and the client reconnects on its own, across a real ``eyriectl daemon restart``."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from supervisor.client import ControlClient
from supervisor.control.app import create_app
from supervisor.control.schema import Event
from supervisor.control.server import serve
from supervisor.paths import Home
from supervisor.testing import MemoryTarget
from tests._cli import eyriectl, following, ok
from tests._daemon import embedded, fleet_yaml, running_daemon


def _event(status: str) -> Event:
    return Event(time=datetime.now(UTC), event="transition", instance="alpha", to_status=status)


@contextlib.asynccontextmanager
async def _serving(target: MemoryTarget, home: Home, history: int = 200) -> AsyncIterator[None]:
    app = create_app(target, keepalive=0.05, history=history)
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(serve, app, socket_path=home.socket_path))
        yield
        tg.cancel_scope.cancel()


async def _read(home: Home, count: int, last_event_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` messages of a new stream: (id, event JSON)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    transport = httpx.AsyncHTTPTransport(uds=str(home.socket_path))
    found: list[tuple[str, dict[str, Any]]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://eyried") as http:
        with anyio.fail_after(5):
            async with http.stream("GET", "/v1/events", headers=headers) as response:
                event_id = ""
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        found.append((event_id, json.loads(line[6:])))
                        if len(found) == count:
                            return found
                    elif not line:
                        event_id = ""
    return found


async def _published(home: Home, target: MemoryTarget, *statuses: str, kept: int = 200) -> list[str]:
    """Publish one event per status; return the ids of those the app's history keeps, once it has them."""
    for status in statuses:
        target.publish(_event(status))
    want = min(len(statuses), kept)
    async with ControlClient(home) as client:
        with anyio.fail_after(5):
            while True:
                recent = await client.recent_events(want)
                if recent and recent[-1].to_status == statuses[-1] and len(recent) == want:
                    return [e.id for e in recent]
                await anyio.sleep(0.01)


async def _subscribers(target: MemoryTarget, count: int) -> None:
    with anyio.fail_after(5):
        while True:
            if target.subscriber_count >= count:
                return
            await anyio.sleep(0.01)


@pytest.fixture
def target(home: Home) -> MemoryTarget:
    return MemoryTarget(str(home.root))


@pytest.mark.anyio
class TestResume:
    async def test_ids_carry_the_start_and_resume_gives_what_followed(
        self, home: Home, target: MemoryTarget
    ) -> None:
        """Ids are ``<start>-<n>``, in order; a stream opened with the first one's id gets the two after it,
        with their ids, and no gap."""
        async with _serving(target, home):
            ids = await _published(home, target, "starting", "running", "stopped")
            starts = {i.rpartition("-")[0] for i in ids}
            assert len(starts) == 1 and [int(i.rpartition("-")[2]) for i in ids] == [1, 2, 3]
            got = await _read(home, 2, last_event_id=ids[0])
        assert [(i, e["to_status"]) for i, e in got] == [(ids[1], "running"), (ids[2], "stopped")]

    async def test_an_id_of_another_start_is_told_as_a_gap(self, home: Home, target: MemoryTarget) -> None:
        """An id from an earlier daemon start gets a ``gap`` event (no id), then the whole history."""
        async with _serving(target, home):
            ids = await _published(home, target, "starting", "running")
            got = await _read(home, 3, last_event_id="123-7")
        assert got[0][0] == "" and got[0][1]["event"] == "gap" and "restarted" in got[0][1]["detail"]
        assert [i for i, _ in got[1:]] == ids

    async def test_an_id_out_of_the_window_is_told_as_a_gap(self, home: Home, target: MemoryTarget) -> None:
        """With two events kept, resuming after the first of four gets a gap, then the last two."""
        async with _serving(target, home, history=2):
            ids = await _published(home, target, "starting", "running", "stopped", "starting", kept=2)
            got = await _read(home, 3, last_event_id=f"{ids[0].rpartition('-')[0]}-1")
        assert got[0][1]["event"] == "gap" and "no longer kept" in got[0][1]["detail"]
        assert [i for i, _ in got[1:]] == ids

    async def test_client_reconnects_on_its_own(self, home: Home, target: MemoryTarget) -> None:
        """The client's stream outlives a server restart: it reconnects with the last id it saw; the
        event published while no server ran is in no history, so it is told of a gap, then gets the next."""
        seen: list[Event] = []
        got_first, got_all = anyio.Event(), anyio.Event()

        async def follow(client: ControlClient) -> None:
            async with client.events(reconnect_for=10) as events:
                async for event in events:
                    seen.append(event)
                    got_first.set()
                    if len(seen) == 3:
                        got_all.set()
                        return

        async with ControlClient(home) as client, anyio.create_task_group() as tg:
            with anyio.fail_after(10):
                async with _serving(target, home):
                    await _subscribers(target, 1)  # the history's
                    tg.start_soon(follow, client)
                    await _subscribers(target, 2)  # and the stream's
                    target.publish(_event("starting"))
                    await got_first.wait()
                target.publish(_event("running"))  # no server: lost
                async with _serving(target, home):
                    target.publish(_event("stopped"))
                    await got_all.wait()
        assert [e.event for e in seen] == ["transition", "gap", "transition"]
        assert seen[0].to_status == "starting" and seen[2].to_status == "stopped"
        assert seen[1].data["last_event_id"] == seen[0].id


class TestFollowAcrossReexec:
    def test_events_f_keeps_going_across_daemon_restart(self, tmp_path: Path) -> None:
        """``eyriectl events -f`` outlives ``eyriectl daemon restart``: events emitted while it was cut off
        (the new daemon adopting alpha, then a restart of alpha) arrive after it reconnects, after a line
        that tells of the gap between the two daemon runs."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            with following(tmp_path, "events", "-f", "--json", "-n", "1") as follower:
                follower.read_until('"id":')  # connected: the last event is replayed
                ok(eyriectl(tmp_path, "restart", "alpha", "--wait"))
                pid = d.wait_running("alpha")["alpha"]
                follower.read_until(f'"pid":{pid},"from_status":"starting","to_status":"running"')
                follower.proc.send_signal(signal.SIGSTOP)  # cut off: it cannot reconnect until SIGCONT
                try:
                    ok(eyriectl(tmp_path, "daemon", "restart"))
                    old = d.wait_running("alpha")["alpha"]
                    ok(eyriectl(tmp_path, "restart", "alpha", "--wait"))
                    d.wait_new_pid("alpha", old)
                finally:
                    follower.proc.send_signal(signal.SIGCONT)
                mark = len(follower.output)
                text = follower.read_until(
                    '"event":"gap"', '"from_status":"starting","to_status":"running"', start=mark
                )
        after = [json.loads(line) for line in text[mark:].splitlines() if line.startswith("{")]
        assert after[0]["event"] == "gap"
        starts = {e["id"].rpartition("-")[0] for e in after[1:]}
        assert len(starts) == 1, "every event after the gap comes from the new daemon run"
        of_alpha = [e["detail"] for e in after[1:] if e["event"] != "daemon"]  # the run's "fleet ready" apart
        assert of_alpha[:2] == [f"adopted pid {old}", "restarting"]
