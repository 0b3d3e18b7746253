"""``python -m supervisor.testing.faulty_agent``: an agent that misbehaves on request, for engine tests.

Standard library only, so it starts fast and runs wherever the package is installed.

It serves ``GET /health`` and ``GET /ready`` on its port (``--http``) or just accepts connections
(``--tcp``), and can: crash on start or after a delay, exit 0, never become ready, turn unhealthy, ignore
SIGTERM, leave a grandchild running in its own session, fork children that stay in its process group (and
may ignore SIGTERM), flood its output with numbered lines, print a ready
line, print a heartbeat, rewrite its process title as Node programs do, or grow its memory after a delay.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=int(os.environ.get("EYRIE_PORT", "0") or 0))
    p.add_argument("--http", action="store_true", help="serve /health and /ready")
    p.add_argument("--tcp", action="store_true", help="accept TCP connections only")
    p.add_argument("--ready-delay", type=float, default=0.0, help="seconds before listening / ready line")
    p.add_argument("--ready-line", default="", help="print this line once ready")
    p.add_argument("--never-ready", action="store_true", help="never listen, never print the ready line")
    p.add_argument("--unhealthy-after", type=float, default=None, help="/health answers 503 after this")
    p.add_argument("--crash-on-start", type=int, default=None, metavar="CODE", help="exit CODE at once")
    p.add_argument("--crash-if-exists", type=Path, default=None, help="exit 3 at once while this file exists")
    p.add_argument("--crash-after", type=float, default=None, help="exit with --exit-code after this")
    p.add_argument("--exit-code", type=int, default=1)
    p.add_argument("--exit-after", type=float, default=None, help="exit 0 after this many seconds")
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument(
        "--linger-on-term", type=float, default=0.0, help="on SIGTERM say so, exit this much later"
    )
    p.add_argument("--grandchild", type=Path, default=None, help="leave a grandchild in its own session")
    p.add_argument("--children", type=int, default=0, help="fork this many children into our process group")
    p.add_argument("--children-ignore-sigterm", action="store_true", help="the --children ignore SIGTERM")
    p.add_argument("--flood", type=int, default=0, help="write this many numbered lines at once")
    p.add_argument("--flood-width", type=int, default=100, help="bytes per flood line")
    p.add_argument("--done-file", type=Path, default=None, help="create this file when the flood is written")
    p.add_argument("--heartbeat", type=float, default=None, help="print 'heartbeat' every this many seconds")
    p.add_argument("--pid-file", type=Path, default=None)
    p.add_argument("--retitle", default=None, help="rewrite /proc/self/cmdline to this once started")
    p.add_argument("--allocate-mib", type=int, default=0, help="allocate and touch this many MiB, once")
    p.add_argument("--allocate-after", type=float, default=0.0, help="seconds before --allocate-mib")
    return p.parse_args()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _leave_grandchild(pid_file: Path) -> None:
    """Double fork + setsid: the grandchild is in its own session, reparented away from us."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(read_end)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            tmp = pid_file.with_suffix(".tmp")
            tmp.write_text(str(os.getpid()))
            tmp.rename(pid_file)
            os.write(write_end, b"x")
            os.close(write_end)
            while True:
                time.sleep(3600)
        os._exit(0)
    os.close(write_end)
    os.read(read_end, 1)
    os.close(read_end)
    os.wait()


def _retitle(title: str) -> None:
    """Overwrite the argv area in place, as libuv's ``uv_set_process_title`` does for ``process.title``: the
    kernel then shows ``title`` as the whole command line, while the environment is left as it was."""
    fields = Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()
    arg_start, arg_end = int(fields[45]), int(fields[46])  # fields 48 and 49 of proc(5), counted from state
    text = title.encode()[: arg_end - arg_start - 1]
    ctypes.memmove(arg_start, text.ljust(arg_end - arg_start, b"\0"), arg_end - arg_start)


def _fork_children(count: int, ignore_sigterm: bool) -> None:
    """Children that share our process group and outlive us unless the group is signalled."""
    for _ in range(count):
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_sigterm else signal.SIG_DFL)
            while True:
                time.sleep(3600)


def _flood(lines: int, width: int) -> None:
    out = sys.stdout.buffer
    for n in range(1, lines + 1):
        head = f"line {n:08d} "
        out.write((head + "x" * max(width - len(head) - 1, 0) + "\n").encode())
        if n % 64 == 0:
            out.flush()
    out.flush()


def _respond(conn: socket.socket, healthy: bool, ready: bool) -> None:
    try:
        conn.settimeout(2)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
        ok = {"/health": healthy, "/ready": ready and healthy}.get(path)
        status = "404 Not Found" if ok is None else ("200 OK" if ok else "503 Service Unavailable")
        body = b'{"status": "ok"}' if ok else b'{"status": "no"}'
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
    except OSError:
        pass
    finally:
        conn.close()


def main() -> int:
    args = _parse()
    started = time.monotonic()
    terminating: list[float] = []
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.linger_on_term:

        def on_term(*_: object) -> None:
            _say("got SIGTERM")
            terminating.append(time.monotonic() + args.linger_on_term)

        signal.signal(signal.SIGTERM, on_term)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.pid_file:
        args.pid_file.write_text(str(os.getpid()))
    _say(f"faulty {os.getpid()} starting")
    if args.crash_on_start is not None:
        _say(f"crashing on start with {args.crash_on_start}")
        return int(args.crash_on_start)
    if args.crash_if_exists is not None and args.crash_if_exists.exists():
        _say("crashing: marker file exists")
        return 3
    if args.grandchild is not None:
        _leave_grandchild(args.grandchild)
    if args.retitle:
        _retitle(args.retitle)
        _say(f"retitled {args.retitle}")
    if args.children:
        _fork_children(args.children, args.children_ignore_sigterm)
    if args.flood:
        _flood(args.flood, args.flood_width)
        if args.done_file:
            args.done_file.write_text("done")
    sel = selectors.DefaultSelector()
    listener: socket.socket | None = None
    ready = False
    hoard: list[bytearray] = []
    next_beat = started + args.heartbeat if args.heartbeat else None
    while True:
        now = time.monotonic()
        age = now - started
        if terminating and now >= terminating[0]:
            return 0
        if args.crash_after is not None and age >= args.crash_after:
            _say(f"crashing with {args.exit_code}")
            return int(args.exit_code)
        if args.exit_after is not None and age >= args.exit_after:
            _say("exiting cleanly")
            return 0
        if not ready and not args.never_ready and age >= args.ready_delay:
            if args.http or args.tcp:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", args.port))
                listener.listen(64)
                sel.register(listener, selectors.EVENT_READ)
            if args.ready_line:
                _say(args.ready_line)
            ready = True
        if args.allocate_mib and not hoard and age >= args.allocate_after:
            hoard.extend(bytearray(b"\1" * (1 << 20)) for _ in range(args.allocate_mib))  # touched: resident
            _say(f"allocated {args.allocate_mib} MiB")
        if next_beat is not None and now >= next_beat:
            _say("heartbeat")
            next_beat = now + float(args.heartbeat)
        healthy = args.unhealthy_after is None or age < args.unhealthy_after
        for _key, _ in sel.select(timeout=0.02):
            assert listener is not None
            conn, _addr = listener.accept()
            if args.http:
                _respond(conn, healthy, ready)
            else:
                conn.close()


if __name__ == "__main__":
    sys.exit(main())
