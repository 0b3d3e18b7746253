"""A crash storm and the listing beside it: ``GET /v1/instances`` during 50 respawns at once shows every
instance once, with a pid it really had, and each one's new pid once it is back; the listing's body, joined
from the rows' kept JSON, is byte for byte what pydantic writes; eyriectl's quick client reads any HTTP/1.1
answer framing (a length, chunks, or the end of the connection) and reuses its connection."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from supervisor.cli._quick_client import QuickClient
from supervisor.control._listing import Listing, RowJSON, listing_body
from supervisor.control.schema import InstanceView
from supervisor.paths import Home
from tests._daemon import fleet_yaml, pid_alive, running_daemon, wait_for

AGENTS = 50
DEFAULTS = """\
defaults:
  restart: {policy: always, initial_delay: 0, factor: 2, max_delay: 1s, jitter: 0, max_retries: 100000}
  health: {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 30s}
  stop_timeout: 5s
"""
SLEEPER = (
    "  - name: s{i:02d}\n    framework: embedded\n    command: [sleep, '600']\n    sandbox: off\n"
    "    ready: {{kind: process, seconds: 0}}\n    live: {{kind: process, seconds: 0}}\n"
)
NAMES = [f"s{i:02d}" for i in range(AGENTS)]
_LIST = TypeAdapter(list[InstanceView])


def _listing(home: Path) -> list[dict[str, object]]:
    with QuickClient(Home(home)) as client:
        rows: list[dict[str, object]] = client.get("/v1/instances")
    return rows


class TestListingDuringAStorm:
    def test_every_instance_listed_once_with_a_pid_it_had_then_its_new_one(self, tmp_path: Path) -> None:
        """50 agents SIGKILLed at once: each listing while they come back names every instance once, each
        running one with its old pid or its new one; once all are back the listing shows every new pid,
        the one in its instance.json, alive."""
        fleet = fleet_yaml(*(SLEEPER.format(i=i) for i in range(AGENTS)), defaults=DEFAULTS)
        with running_daemon(tmp_path, fleet) as d:
            old = d.wait_running(*NAMES, timeout=60)
            seen: dict[str, set[int]] = {name: set() for name in NAMES}
            listings = 0
            for pid in old.values():
                os.kill(pid, signal.SIGKILL)

            def all_back() -> bool:
                nonlocal listings
                rows = _listing(tmp_path)
                listings += 1
                names = [str(row["name"]) for row in rows]
                assert sorted(names) == NAMES, names
                running = {str(row["name"]): row["pid"] for row in rows if row["status"] == "running"}
                for name, pid in running.items():
                    assert isinstance(pid, int)
                    seen[name].add(pid)
                return len(running) == AGENTS and all(running[n] != old[n] for n in NAMES)

            wait_for(all_back, 60, "every instance listed running with a new pid")
            new = {name: d.instance(name)["pid"] for name in NAMES}
            final = {str(row["name"]): row["pid"] for row in _listing(tmp_path)}
            assert final == new and all(pid_alive(pid) for pid in new.values())
        assert listings >= 1
        for name in NAMES:
            assert seen[name] <= {old[name], new[name]}, (name, seen[name], old[name], new[name])

    def test_the_body_is_what_pydantic_writes(self, tmp_path: Path) -> None:
        """The body of a real daemon's listing, read back as views, dumps to the same bytes."""
        fleet = fleet_yaml(*(SLEEPER.format(i=i) for i in range(3)), defaults=DEFAULTS)
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running("s00", "s01", "s02", timeout=60)
            with QuickClient(Home(tmp_path)) as client:
                body = json.dumps(client.get("/v1/instances"), separators=(",", ":")).encode()
        assert _LIST.dump_json(_LIST.validate_json(body)) == body


class TestListingBody:
    def test_kept_rows_and_fresh_ones_join_as_pydantic_dumps_them(self) -> None:
        """Kept rows with a new uptime (tiny, large, none), a name holding the uptime key, a row not kept and
        an extra field: the same bytes as pydantic's dump of the list; an empty listing is ``[]``."""
        kept = [
            InstanceView(name="a", pid=3, uptime_seconds=1.0, flags=["DRIFT"], cmdline=["x"]),
            InstanceView(name='q"uptime_seconds":null', uptime_seconds=None),
            InstanceView(name="b", uptime_seconds=2.0),
            InstanceView(name="c", uptime_seconds=3.0),
        ]
        listing = Listing()
        for view in kept:
            listing.add(view, RowJSON(view))
        listing.add(InstanceView(name="fresh", uptime_seconds=5e-05, cpu_percent=1.5))
        kept[0].uptime_seconds, kept[2].uptime_seconds, kept[3].uptime_seconds = 1234.000001, 2e-05, 3e16
        assert listing_body(listing) == _LIST.dump_json(listing)
        assert listing_body(Listing()) == _LIST.dump_json([]) == b"[]"

    def test_a_plain_list_or_a_replaced_view_is_dumped(self) -> None:
        """What the listing did not keep, or a view put in place of a kept one, is encoded as it is now."""
        view = InstanceView(name="a", uptime_seconds=1.0)
        listing = Listing()
        listing.add(view, RowJSON(view))
        listing[0] = InstanceView(name="b", uptime_seconds=2.0)
        assert listing_body(listing) == _LIST.dump_json(listing)
        assert listing_body([view]) == _LIST.dump_json([view])


def _serve_once(path: Path, answers: list[bytes]) -> threading.Thread:
    """A listener on ``path`` that sends ``answers`` in turn on one connection, one per request read."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(20)

    def serve() -> None:
        with contextlib.closing(listener):
            conn, _ = listener.accept()
            with contextlib.closing(conn):
                conn.settimeout(20)
                for answer in answers:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(65536)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


class TestQuickClientFraming:
    @pytest.mark.parametrize(
        "answer",
        [
            b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n[{"a":1}]',
            b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n[{"a\r\n5;x=y\r\n":1}]\r\n0\r\n\r\n',
            b'HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n[{"a":1}]',
        ],
        ids=["length", "chunked", "until-close"],
    )
    def test_reads_each_framing(self, tmp_path: Path, answer: bytes) -> None:
        """A body framed by its length, in chunks, or by the end of the connection reads the same."""
        home = Home(tmp_path)
        home.ensure_run_dir()
        server = _serve_once(home.socket_path, [answer])
        try:
            with QuickClient(home, timeout=20) as client:
                assert client.get("/v1/instances") == [{"a": 1}]
        finally:
            server.join(30)

    def test_two_requests_share_one_connection(self, tmp_path: Path) -> None:
        """A second GET goes over the connection the first one kept open."""
        home = Home(tmp_path)
        home.ensure_run_dir()
        one = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1"
        two = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n2"
        server = _serve_once(home.socket_path, [one, two])
        try:
            with QuickClient(home, timeout=20) as client:
                assert (client.get("/v1/status"), client.get("/v1/instances")) == (1, 2)
        finally:
            server.join(30)
