"""``python -m supervisor.testing.hostile_agent``: an agent turned attacker, for proving confinement.

It serves ``GET /health`` and ``GET /ready`` on its port (``--port``, else ``$EYRIE_PORT``) like any agent,
so eyried's probes pass, and makes every attempt its command line names against the targets given there:
read a file, read a process's environment, open a file for writing, signal a process, ``GET`` over a Unix
socket (a path, or ``@name`` for an abstract one), bind a TCP port, call the agent API (``$EYRIE_URL`` with
the token in ``$EYRIE_AUTH_TOKEN_FILE``), and with ``--own-job`` what an agent is there to do (a file in its
workspace and in ``$TMPDIR``, its own port). ``--escape`` repeats the socket attempts from a grandchild
that left the session with an empty environment.

Each outcome is one JSON line (`Outcome`) in the report (``--report``, default ``hostile-report.jsonl`` in
the working directory, its workspace) and on stdout, its log. The attempts run once at start, and
``/ready`` answers 200 only after them (``--at request``: not at start, and ready at once); each
``POST /attack`` runs them again and answers their outcomes; ``GET /report`` answers the report so far.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from supervisor.testing._attempts import (
    Outcome,
    api_call,
    bind_port,
    escaped,
    own_file,
    read_environ,
    read_file,
    send_signal,
    unix_get,
    write_file,
)

__all__ = ["main"]

REPORT_NAME = "hostile-report.jsonl"
Attempt = Callable[[], Outcome]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hostile_agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("EYRIE_PORT", "0") or 0))
    p.add_argument("--report", type=Path, default=None, help=f"JSON lines report (default ./{REPORT_NAME})")
    p.add_argument("--at", choices=("start", "request"), default="start", help="when the attempts run")
    p.add_argument("--read-file", action="append", default=[], metavar="PATH")
    p.add_argument("--read-environ", action="append", default=[], type=int, metavar="PID")
    p.add_argument("--write-file", action="append", default=[], metavar="PATH")
    p.add_argument("--signal", action="append", default=[], metavar="PID[:SIG]", help="default SIGCONT")
    p.add_argument("--unix-get", action="append", default=[], metavar="PATH|@NAME")
    p.add_argument("--bind-port", action="append", default=[], type=int, metavar="PORT")
    p.add_argument(
        "--api", action="append", default=[], nargs="+", metavar="ARG", help="METHOD PATH [JSON BODY]"
    )
    p.add_argument("--api-url", default=os.environ.get("EYRIE_URL", ""))
    p.add_argument("--token-file", default=os.environ.get("EYRIE_AUTH_TOKEN_FILE", ""))
    p.add_argument(
        "--escape", action="store_true", help="repeat the socket attempts from an escaped grandchild"
    )
    p.add_argument("--own-job", action="store_true", help="workspace and TMPDIR files, its own port")
    args = p.parse_args(argv)
    for call in args.api:
        if len(call) not in (2, 3):
            p.error(f"--api takes METHOD PATH [BODY], not {call}")
    return args


def _signal_target(spec: str) -> tuple[int, int]:
    pid, _, name = spec.partition(":")
    signum = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"] if name else signal.SIGCONT
    return int(pid), int(signum)


def _plan(args: argparse.Namespace) -> list[Attempt]:
    """Every attempt the command line names, in a fixed order."""
    plan: list[Attempt] = []
    plan += [functools.partial(read_file, path) for path in args.read_file]
    plan += [functools.partial(read_environ, pid) for pid in args.read_environ]
    plan += [functools.partial(write_file, path) for path in args.write_file]
    plan += [functools.partial(send_signal, *_signal_target(spec)) for spec in args.signal]
    sockets = [functools.partial(unix_get, address) for address in args.unix_get]
    plan += sockets
    if args.escape:
        plan += [functools.partial(escaped, attempt) for attempt in sockets]
    plan += [functools.partial(bind_port, port) for port in args.bind_port]
    plan += [functools.partial(api_call, args.api_url, args.token_file, *call) for call in args.api]
    if args.own_job:
        plan.append(functools.partial(own_file, os.getcwd(), "own-workspace-file"))
        plan.append(functools.partial(own_file, tempfile.gettempdir(), "own-tmp-file"))
    return plan


class _Report:
    """The outcomes so far: appended to the report file and printed, one JSON line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        line = outcome.to_json()
        with self._lock:
            self.outcomes.append(outcome)
            with self.path.open("a") as file:
                file.write(line + "\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def run(self, plan: list[Attempt]) -> list[Outcome]:
        made = []
        for attempt in plan:
            made.append(attempt())
            self.add(made[-1])
        return made


def _handler(report: _Report, plan: list[Attempt], ready: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, {"status": "ok"})
            elif self.path == "/ready":
                self._answer(200 if ready.is_set() else 503, {"ready": ready.is_set()})
            elif self.path == "/report":
                self._answer(200, [json.loads(o.to_json()) for o in report.outcomes])
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/attack":
                self._answer(404, {"error": "not found"})
                return
            self._answer(200, [json.loads(o.to_json()) for o in report.run(plan)])

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Requests are not logged: the log holds the outcomes."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    report = _Report(args.report or Path.cwd() / REPORT_NAME)
    plan = _plan(args)
    ready = threading.Event()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(report, plan, ready))
    except OSError as exc:
        report.add(Outcome("bind-own-port", f"127.0.0.1:{args.port}", "failed", errno=exc.errno))
        return 1
    if args.own_job:
        report.add(Outcome("bind-own-port", f"127.0.0.1:{server.server_port}", "succeeded"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"hostile agent {os.getpid()} listening on 127.0.0.1:{server.server_port}", flush=True)
    if args.at == "start":
        report.run(plan)
        print(f"hostile agent made {len(plan)} attempts", flush=True)
    ready.set()
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
