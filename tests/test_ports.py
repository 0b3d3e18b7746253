"""Port allocation: skips ports that instances use or anyone has bound, names the range when it runs out,
and never hands one port to two provisionings racing in threads or in processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.errors import PortsExhausted
from supervisor.models import Instance, new_instance_id
from supervisor.paths import Home
from supervisor.ports import (
    PORT_RANGE_END,
    PORT_RANGE_START,
    allocate_port,
    holder_pid,
    port_holder,
    port_in_use,
    port_reservation,
)
from supervisor.store import Store

WRITER = Path(__file__).parent / "programs" / "store_writer.py"


def with_port(port: int) -> Instance:
    return Instance(id=new_instance_id(), name=f"p{port}", framework="embedded", port=port)


@contextlib.contextmanager
def listening(host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """A socket listening on ``host`` (an ephemeral port unless given) for the block; yields its port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as real servers do
        sock.bind((host, port))
        sock.listen()
        yield sock.getsockname()[1]


def _blocked_without_reuse(port: int) -> bool:
    """True while a plain bind (no SO_REUSEADDR) fails: here, because of a TIME_WAIT connection."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class TestPortInUse:
    def test_listener_is_in_use_and_closed_port_is_not(self) -> None:
        """A port with a listener is in use; once the listener closes it is free again."""
        with listening() as port:
            assert port_in_use(port)
        assert not port_in_use(port)

    def test_bound_but_not_listening_is_in_use(self) -> None:
        """A socket bound without listening still holds the port."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            assert port_in_use(sock.getsockname()[1])

    def test_wildcard_listener_holds_loopback(self) -> None:
        """A listener on 0.0.0.0 makes the port unusable on 127.0.0.1 too."""
        with listening("0.0.0.0") as port:
            assert port_in_use(port)

    @pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
    def test_ipv6_only_listener_counts(self) -> None:
        """A listener on ::1 only makes the port in use, because agents told "localhost" may use either."""
        with listening("::1") as port:
            assert port_in_use(port)
            assert port_in_use(port, "::1")

    def test_address_the_machine_lacks_holds_nothing(self) -> None:
        """Checking an address not configured here reads as free instead of raising."""
        assert not port_in_use(PORT_RANGE_START, "192.0.2.1")

    def test_time_wait_does_not_count(self) -> None:
        """A port left in TIME_WAIT by a stopped server is free for the next server."""
        # Like every real server (asyncio, Go, Node) this one sets SO_REUSEADDR; the kernel lets the next
        # bind through TIME_WAIT only when the old socket had it too.
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            conn, _ = server.accept()
            conn.close()  # the server closes first, so its side ends in TIME_WAIT
            client.close()
        deadline = time.monotonic() + 10
        while not _blocked_without_reuse(port):
            assert time.monotonic() < deadline, "the kernel never showed TIME_WAIT on the port"
            time.sleep(0.01)
        assert not port_in_use(port)


class TestAllocatePort:
    def test_range_is_the_seeds(self) -> None:
        """The instance range is eyrie's 43000–43999."""
        assert (PORT_RANGE_START, PORT_RANGE_END) == (43000, 43999)

    def test_result_is_in_range_and_free(self) -> None:
        """The chosen port lies in the range, and can be bound."""
        port = allocate_port([])
        assert PORT_RANGE_START <= port <= PORT_RANGE_END
        with listening(port=port):
            pass

    def test_ports_of_existing_instances_are_skipped(self) -> None:
        """Ports recorded by instances are never handed out again, even when nothing listens on them."""
        first = allocate_port([])
        taken = [with_port(first), with_port(first + 1)]
        assert allocate_port(taken) not in {first, first + 1}

    def test_bound_ports_are_skipped(self) -> None:
        """A bound port at the start of the range is skipped for a later one."""
        with listening() as port:  # an ephemeral port: the kernel guarantees nobody else has it
            got = allocate_port([], start=port, end=port + 100)
        assert port < got <= port + 100

    def test_exhausted_range_is_a_clear_error(self) -> None:
        """When every port is taken, PortsExhausted names the range."""
        every = [with_port(p) for p in range(PORT_RANGE_START, PORT_RANGE_END + 1)]
        with pytest.raises(PortsExhausted, match=f"{PORT_RANGE_START}-{PORT_RANGE_END}"):
            allocate_port(every)

    def test_exhausted_by_bound_ports(self) -> None:
        """A small range whose only free-looking port is bound by someone is exhausted too."""
        with listening() as port, pytest.raises(PortsExhausted, match=f"{port}-{port}"):
            allocate_port([], start=port, end=port)


class TestPortHolder:
    def test_names_the_listening_process(self) -> None:
        """The holder of a port we listen on is this very process, by pid and name."""
        with listening() as port:
            holder = port_holder(port)
        assert holder is not None
        assert holder.startswith(f"pid {os.getpid()} (")

    def test_free_port_has_no_holder(self) -> None:
        """A port nobody has bound has no holder."""
        with listening() as port:
            pass
        assert port_holder(port) is None


class TestHolderPid:
    def test_the_listener_is_found_by_pid(self) -> None:
        """The pid listening on a port is this very process."""
        with listening() as port:
            assert holder_pid(port) == os.getpid()

    def test_only_a_listener_counts(self) -> None:
        """A port with only a client's socket on it, or nothing, has no listening holder; `port_holder`
        still names the client."""
        with listening() as server_port, socket.create_connection(("127.0.0.1", server_port)) as client:
            client_port = client.getsockname()[1]
            assert holder_pid(client_port) is None
            assert port_holder(client_port) == port_holder(server_port)
        assert holder_pid(server_port) is None


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The next line the process prints, failing (not hanging) if none comes before the deadline."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"pid {proc.pid} printed nothing within {timeout}s")
    return proc.stdout.readline().strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()


class TestPortReservation:
    def test_yields_a_free_port_not_used_by_the_store(self, home: Home) -> None:
        """A reservation skips the ports of saved instances."""
        store = Store(home)
        with port_reservation(store) as first:
            store.create(with_port(first))
        with port_reservation(store) as second:
            assert second != first

    def test_unsaved_reservation_releases_the_port(self, home: Home) -> None:
        """Leaving the block without saving gives the same port to the next reservation."""
        store = Store(home)
        with port_reservation(store) as first:
            pass
        with port_reservation(store) as again:
            assert again == first

    def test_store_lock_is_held_for_the_block(self, home: Home) -> None:
        """While a reservation is open the store-wide lock cannot be taken; afterwards it can."""
        store = Store(home)

        def lock_is_free() -> bool:
            fd = os.open(store.lock(), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            finally:
                os.close(fd)
            return True

        with port_reservation(store):
            assert not lock_is_free()
        assert lock_is_free()

    def test_threads_racing_get_distinct_ports(self, home: Home) -> None:
        """Eight threads each reserving and saving five times get forty distinct ports."""
        store = Store(home)
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def work(tag: int) -> None:
            try:
                start.wait(10)
                for i in range(5):
                    with port_reservation(store) as port:
                        store.create(
                            Instance(
                                id=new_instance_id(), name=f"t{tag}-{i}", framework="embedded", port=port
                            )
                        )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        ports = [inst.port for inst in store.list()]
        assert len(ports) == 40 and len(set(ports)) == 40

    def test_processes_racing_get_distinct_ports(
        self, home: Home, processes: list[subprocess.Popen[str]]
    ) -> None:
        """Two processes each reserving and saving 25 ports at the same time never get the same one."""
        store = Store(home)
        for tag in ("left", "right"):
            processes.append(_start("reserve", str(store.root), tag, "25"))
        for proc in processes:
            assert _read_line(proc) == "ready"
        for proc in processes:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        got: list[int] = []
        for proc in processes:
            while (line := _read_line(proc, timeout=60)) != "done":
                got.append(int(line))
            assert proc.wait(timeout=10) == 0
        assert len(got) == 50 and len(set(got)) == 50
        assert sorted(got) == sorted(inst.port for inst in store.list())
