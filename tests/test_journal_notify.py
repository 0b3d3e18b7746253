"""``notify`` hooks with a real eyried: a command that records its stdin, a URL served by a real local HTTP
server, a hook that hangs and is killed, and a fleet file that declares them wrongly."""

from __future__ import annotations

import contextlib
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from supervisor.daemon._notify import _Matcher
from supervisor.engine.events import Event
from supervisor.errors import FleetFileError
from supervisor.fleet.loader import load_fleet
from tests._cli import eyriectl, ok
from tests._daemon import embedded, fleet_yaml, pid_alive, running_daemon, wait_for

SECRET = "s3cr3t-token-value"

RECORDER = "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read())"
"""A hook command: append the payload it is given on stdin to the file named by its argument."""

HANGER = (
    "import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time;"
    " time.sleep(600)']); open(sys.argv[1], 'w').write(f'{child.pid}\\n'); time.sleep(600)"
)
"""A hook command that starts a grandchild, writes its pid, and never ends."""


def _hook(on: str, argv: list[str], *, timeout: str = "10s") -> str:
    return f"  - on: [{on}]\n    command: {json.dumps(argv)}\n    timeout: {timeout}\n"


def _with_notify(fleet: str, hooks: str) -> str:
    return fleet.replace("defaults:\n", f"defaults:\n  notify:\n{hooks}", 1)


def _payloads(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _missing_binary(name: str, policy: str) -> str:
    return embedded(name, f"command: [/nonexistent/agent-{name}]\nrestart: {{policy: {policy}}}")


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _http_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/{SECRET}", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class TestCommandHooks:
    def test_crash_loop_and_error_fire_once_each(self, tmp_path: Path) -> None:
        """An instance whose binary is missing crash-loops into error: the command hook gets one crash_loop
        and one error payload on stdin, with the event's fields and no secret; a rejected reload fires the
        daemon's hook after them."""
        out = tmp_path / "told.jsonl"
        recorder = [sys.executable, "-c", RECORDER, str(out)]
        hooks = _hook("error, crash_loop, reload_rejected", recorder)
        broken = _missing_binary("broken", "on-failure") + f"    env: {{API_TOKEN: {SECRET}}}\n"
        fleet = _with_notify(fleet_yaml(broken, embedded("steady")), hooks)
        with running_daemon(tmp_path, fleet) as d:
            d.wait_status("broken", "error", timeout=30)
            d.wait_running("steady")
            wait_for(lambda: len(_payloads(out)) >= 2, what="two payloads")
            d.write_fleet("version: 1\ninstances: [\n")
            assert json.loads(eyriectl(tmp_path, "reload", "--json").stdout)["ok"] is False
            wait_for(
                lambda: any(p["kind"] == "reload_rejected" for p in _payloads(out)),
                what="the reload_rejected payload",
            )
        told = _payloads(out)
        kinds = sorted(p["kind"] for p in told)
        assert kinds == ["crash_loop", "error", "reload_rejected"], told
        error = next(p for p in told if p["kind"] == "error")
        assert error["instance"] == "broken" and error["to_status"] == "error" and error["instance_id"]
        assert error["home"] == str(tmp_path) and error["event_id"]
        assert SECRET not in out.read_text()

    def test_hanging_hook_is_killed_and_supervision_goes_on(self, tmp_path: Path) -> None:
        """A hook that never ends is killed with its whole process group at its timeout, the failure is
        logged, and the daemon goes on supervising: another instance still restarts on request."""
        pids = tmp_path / "hook.pid"
        hooks = _hook("error", [sys.executable, "-c", HANGER, str(pids)], timeout="500ms")
        fleet = _with_notify(fleet_yaml(_missing_binary("broken", "never"), embedded("steady")), hooks)
        with running_daemon(tmp_path, fleet) as d:
            d.wait_status("broken", "error")
            grandchild = int(wait_for(lambda: pids.exists() and pids.read_text().strip(), what="hook pid"))
            wait_for(lambda: not pid_alive(grandchild), what="the hook's grandchild to be killed")
            wait_for(lambda: "notify_hook_failed" in d.log(), what="the failure in the log")
            assert "killed after its timeout of 0.5s" in d.log()
            old = d.wait_running("steady")["steady"]
            ok(eyriectl(tmp_path, "restart", "steady", "--wait"))
            d.wait_new_pid("steady", old)

    def test_missing_hook_program_is_logged(self, tmp_path: Path) -> None:
        """A hook whose program does not exist costs a log line, nothing else."""
        hooks = _hook("error", ["/nonexistent/pager"])
        fleet = _with_notify(fleet_yaml(_missing_binary("broken", "never")), hooks)
        with running_daemon(tmp_path, fleet) as d:
            d.wait_status("broken", "error")
            wait_for(lambda: "notify_hook_failed" in d.log(), what="the failure in the log")
            assert "/nonexistent/pager" in d.log()
            ok(eyriectl(tmp_path, "ps"))


class TestUrlHooks:
    def test_post_reaches_a_local_server(self, tmp_path: Path) -> None:
        """A URL hook of an instance POSTs the JSON payload to a real HTTP server; the log never shows the
        URL's path, where a webhook keeps its secret."""
        refused = f"http://127.0.0.1:1/hook/{SECRET}?key={SECRET}"  # nothing listens on port 1
        with _http_receiver() as (url, bodies):
            hooks = f"[{{on: [error], url: '{url}'}}, {{on: [error], url: '{refused}'}}]"
            instance = _missing_binary("broken", "never") + f"    notify: {hooks}\n"
            with running_daemon(tmp_path, fleet_yaml(instance)) as d:
                d.wait_status("broken", "error")
                wait_for(lambda: bodies, what="the POST")
                wait_for(lambda: "notify_hook_failed" in d.log(), what="the refused hook's failure")
                log = d.log()
        assert bodies[0]["kind"] == "error" and bodies[0]["instance"] == "broken"
        assert '"hook": "http://127.0.0.1:1"' in log and SECRET not in log


class TestFleetFile:
    @pytest.mark.parametrize(
        ("notify", "line", "message"),
        [
            ("[{on: [error]}]", 5, "either a command or a url"),
            ("[{on: [error], command: [x], url: 'http://h/'}]", 5, "either a command or a url"),
            ("[{on: [sometimes], command: [x]}]", 5, "notify[0].on[0]"),
            ("[{on: [error], url: 'file:///etc/passwd'}]", 5, "http:// or https://"),
            ("[{on: [error], command: []}]", 5, "at least the program"),
            ("[{on: [reload_rejected], command: [x]}]", 5, "set it in defaults.notify"),
            ("[{on: [], command: [x]}]", 5, "notify[0].on"),
        ],
    )
    def test_bad_hooks_name_their_line(self, tmp_path: Path, notify: str, line: int, message: str) -> None:
        """A wrong hook is refused with the file, the line and the key."""
        path = tmp_path / "fleet.yaml"
        head = "version: 1\ninstances:\n  - name: a\n    framework: embedded\n"
        path.write_text(f"{head}    notify: {notify}\n")
        with pytest.raises(FleetFileError) as caught:
            load_fleet(path)
        assert f"fleet.yaml:{line}:" in str(caught.value) and message in str(caught.value)

    def test_defaults_and_instance_hooks_are_read(self, tmp_path: Path) -> None:
        """Hooks in defaults (any event) and in an instance (its own events) are read with their timeout."""
        path = tmp_path / "fleet.yaml"
        path.write_text(
            "version: 1\ndefaults:\n  notify:\n    - {on: [reload_rejected, error], url: 'https://h/x'}\n"
            "instances:\n  - name: a\n    notify:\n"
            "      - {on: [memory_restart], command: [pager], timeout: 2s}\n"
        )
        fleet = load_fleet(path)
        assert fleet.defaults.notify[0].url == "https://h/x" and fleet.defaults.notify[0].timeout == 10.0
        own = fleet.instances[0].notify[0]
        assert own.command == ["pager"] and own.timeout == 2.0


def _transition(to: str, *, frm: str = "running", count: int = 0, detail: str = "", **data: Any) -> Event:
    return Event(
        time=datetime.now(UTC),
        event="transition",
        instance="a",
        instance_id="id-a",
        from_status=frm,
        to_status=to,
        detail=detail,
        data={"restart_count": count, **data},
    )


class TestWhatFires:
    def test_crash_loop_once_per_round(self) -> None:
        """crash_loop fires when restart_count reaches 3, not again at 4, and again after a reset."""
        matcher = _Matcher()
        counts = [1, 2, 3, 3, 4, 0, 1, 2, 3]
        fired = [matcher.kinds(_transition("stopped", count=c)) for c in counts]
        assert [i for i, kinds in enumerate(fired) if "crash_loop" in kinds] == [2, 8]

    def test_memory_restart_once_until_running(self) -> None:
        """The sampler's memory_limit event fires memory_restart once, and again only after the instance ran
        again; the transitions of the restart itself fire nothing more."""
        matcher = _Matcher()
        limit = _transition("running", detail="memory limit 1 GiB exceeded (1.2 GiB)").model_copy(
            update={"event": "memory_limit"}
        )
        first = matcher.kinds(limit)
        restarting = matcher.kinds(_transition("stopped", detail="restarting: memory limit 1 GiB exceeded"))
        again = matcher.kinds(limit)
        matcher.kinds(_transition("running", frm="starting"))
        later = matcher.kinds(limit)
        assert (first, restarting, again, later) == (["memory_restart"], [], [], ["memory_restart"])

    def test_error_on_entry_and_rejected_reloads(self) -> None:
        """error fires on the move into error only; a reload event fires only when it was rejected."""
        matcher = _Matcher()
        assert matcher.kinds(_transition("error", frm="starting")) == ["error"]
        assert matcher.kinds(_transition("error", frm="error")) == []
        reload = Event(time=datetime.now(UTC), event="reload", data={"ok": False, "error": "bad"})
        assert matcher.kinds(reload) == ["reload_rejected"]
        assert matcher.kinds(reload.model_copy(update={"data": {"ok": True}})) == []
