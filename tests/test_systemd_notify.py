"""sd_notify: messages on a real datagram socket, and a real Type=notify unit kept alive by its watchdog."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from supervisor.systemd.notify import Notifier, NotifySocketError, watchdog_loop
from tests.sandbox.systemd import UserManager, user_manager

PROGRAM = Path(__file__).parent / "sandbox" / "notify_program.py"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for the manager, and the NOTIFY_SOCKET value for it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    found = []
    try:
        while True:
            found.append(sock.recv(4096))
    except BlockingIOError:
        return found
    finally:
        sock.settimeout(5)


class TestNotifier:
    def test_messages_reach_a_path_socket(self, receiver: tuple[socket.socket, str]) -> None:
        """ready, stopping, status and watchdog each send their sd_notify line as one datagram."""
        sock, address = receiver
        notifier = Notifier(address)
        assert notifier.enabled
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        assert notifier.status("3 running, 1 backoff, 0 error")
        assert sock.recv(4096) == b"STATUS=3 running, 1 backoff, 0 error"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"

    def test_reloading_carries_monotonic_usec(self, receiver: tuple[socket.socket, str]) -> None:
        """RELOADING=1 comes with MONOTONIC_USEC taken from CLOCK_MONOTONIC, as systemd 253+ wants."""
        sock, address = receiver
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        Notifier(address).reloading()
        first, second = sock.recv(4096).decode().split("\n")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert first == "RELOADING=1"
        key, value = second.split("=")
        assert key == "MONOTONIC_USEC"
        assert before <= int(value) <= after

    def test_status_cannot_inject_fields(self, receiver: tuple[socket.socket, str]) -> None:
        """A newline in a status text becomes a space, so it cannot smuggle READY=1 or other fields."""
        sock, address = receiver
        Notifier(address).status("bad\nREADY=1\tx")
        assert sock.recv(4096) == b"STATUS=bad READY=1 x"

    def test_abstract_socket(self) -> None:
        """An @name address reaches the abstract socket of that name."""
        name = f"eyrie-test-{uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
            assert notifier.ready()
            assert sock.recv(4096) == b"READY=1"

    def test_unset_is_a_no_op(self) -> None:
        """Without NOTIFY_SOCKET nothing is sent, nothing fails, and there is no watchdog."""
        notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert notifier.watchdog_interval() is None

    def test_unreachable_socket_returns_false(self, tmp_path: Path) -> None:
        """A manager that went away makes send() return False instead of raising."""
        assert Notifier(str(tmp_path / "gone.sock")).ready() is False

    def test_unsupported_address_is_refused(self) -> None:
        """A NOTIFY_SOCKET that is neither a path nor @name is a clear error naming it."""
        with pytest.raises(NotifySocketError, match="vsock:2:1234"):
            Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})

    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({"WATCHDOG_USEC": "2000000"}, 1.0),
            ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
            ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
            ({"WATCHDOG_USEC": "soon"}, None),
            ({"WATCHDOG_USEC": "0"}, None),
            ({}, None),
        ],
    )
    def test_watchdog_interval(self, env: dict[str, str], expected: float | None) -> None:
        """Half of WATCHDOG_USEC when WATCHDOG_PID is unset or ours; None otherwise."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/x", **env})
        assert notifier.watchdog_interval() == expected


class TestWatchdogLoop:
    @pytest.mark.anyio
    async def test_pings_while_the_loop_turns_and_not_while_it_is_stuck(
        self, receiver: tuple[socket.socket, str]
    ) -> None:
        """The loop sends WATCHDOG=1 repeatedly; while the event loop is blocked, no ping goes out."""
        sock, address = receiver
        notifier = Notifier(address, watchdog_usec="40000")
        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog_loop, notifier)
            with anyio.fail_after(5):
                for _ in range(3):
                    assert await anyio.to_thread.run_sync(sock.recv, 4096) == b"WATCHDOG=1"
            _drain(sock)
            time.sleep(0.2)  # noqa: ASYNC251 - the event loop itself is blocked: ten intervals, no ping
            assert _drain(sock) == []
            tg.cancel_scope.cancel()

    @pytest.mark.anyio
    async def test_returns_without_a_watchdog(self) -> None:
        """No WATCHDOG_USEC: the loop ends at once instead of spinning."""
        with anyio.fail_after(1):
            await watchdog_loop(Notifier("/run/x"))


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


def _notify_unit(record: Path, *, extra_args: str = "", restart: str = "on-watchdog") -> str:
    return f"""\
[Service]
Type=notify
NotifyAccess=main
ExecStart={sys.executable} {PROGRAM} --record {record} {extra_args}
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=500ms
Restart={restart}
RestartSec=100ms
LimitCORE=0
TimeoutStopSec=2s
"""


def _pings(record: Path) -> tuple[int, int]:
    try:
        pid, count = (record.with_name(record.name + ".pings")).read_text().split()
    except (FileNotFoundError, ValueError):
        return (0, 0)
    return int(pid), int(count)


@pytest.mark.systemd
class TestNotifyUnit:
    def test_ready_status_and_watchdog_keep_the_unit_alive(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """READY=1 makes the unit active, STATUS= shows, and pings keep it alive over 3+ watchdog periods."""
        record = tmp_path / "good.jsonl"
        manager.write_unit("good.service", _notify_unit(record))
        manager.systemctl("daemon-reload")
        manager.systemctl("start", "good.service")  # returns once READY=1 arrived
        assert manager.is_active("good.service") == "active"
        assert manager.show("good.service", "StatusText") == "serving"
        pid = manager.main_pid("good.service")
        # 8 pings at 250 ms are 2 s: four times WatchdogSec without a restart.
        manager.wait_until(lambda: _pings(record)[1] >= 8, what="8 watchdog pings")
        assert manager.main_pid("good.service") == pid
        assert manager.show("good.service", "NRestarts") == "0"

        manager.systemctl("reload", "good.service")
        manager.wait_until(lambda: manager.show("good.service", "StatusText") == "reloaded", what="reload")
        assert manager.is_active("good.service") == "active"
        manager.systemctl("stop", "good.service")
        assert manager.show("good.service", "Result") == "success"

    def test_a_stuck_loop_is_killed_by_the_watchdog_and_restarted(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """A service whose loop stops pinging is killed by systemd's watchdog and started again."""
        record = tmp_path / "stall.jsonl"
        manager.write_unit("stall.service", _notify_unit(record, extra_args="--stall-after 2"))
        manager.systemctl("daemon-reload")
        manager.systemctl("start", "stall.service")
        first = manager.main_pid("stall.service")
        manager.wait_until(
            lambda: int(manager.show("stall.service", "NRestarts") or 0) >= 1, what="a watchdog restart"
        )
        starts = manager.wait_until(
            lambda: [json.loads(line)["pid"] for line in record.read_text().splitlines()][1:],
            what="the second start",
        )
        assert starts[0] != first
        manager.systemctl("stop", "stall.service")
