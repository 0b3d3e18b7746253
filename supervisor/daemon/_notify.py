"""``notify`` hooks: tell someone when an instance enters ``error``, crash-loops or is restarted for memory,
or when the daemon rejects a reload, by running a command or POSTing JSON to a URL.

The hooks listen to the daemon's event bus and never hold up supervision: a matched event is queued (a
full queue drops it, with a log line), a few workers run the hooks, each within its ``timeout`` (a command
is then killed with its whole process group). What fires:

- ``error``: an instance moves into ``error`` (a failure its policy does not restart, a crash loop past
  ``max_retries``, an actor that kept failing);
- ``crash_loop``: an instance's ``restart_count`` reaches `CRASH_LOOP_RESTARTS` (consecutive unplanned
  restarts without the healthy run that resets it); once per round;
- ``memory_restart``: the ``memory_limit`` event the resource sampler emits when a tree stays above its
  ``max_memory`` (the restart policy then restarts it, or leaves it in ``error``); once until it runs again;
- ``reload_rejected``: a ``reload`` event that was not applied (from ``defaults.notify`` only).

The payload names its fields one by one (`payload`): never the instance's environment, config, token or
secrets. A command gets it as JSON on stdin, a minimal environment (no variable of the daemon's but the
locale, ``PATH`` and ``HOME``) and ``EYRIE_NOTIFY_*`` variables; it runs without a shell, in the home.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from supervisor.engine.bounded_command import wait_or_kill_group
from supervisor.engine.child_setup import empty_signal_mask
from supervisor.engine.events import Event

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from supervisor.fleet import FleetFile
    from supervisor.fleet.sections import NotifyHook

__all__ = ["CRASH_LOOP_RESTARTS", "Notifications", "payload"]

log = structlog.get_logger("supervisor.notify")

CRASH_LOOP_RESTARTS = 3
"""An instance restarted this many times in a row, without a healthy run in between, is crash-looping."""

_QUEUE = 64  # notifications waiting for a worker; more are dropped
_WORKERS = 4  # hooks running at once
_MAX_DETAIL = 2000  # characters of an event's detail a payload carries
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME")


@dataclass(slots=True, eq=False)
class _Job:
    hook: NotifyHook
    kind: str
    body: dict[str, Any]


def payload(kind: str, event: Event, home: Path) -> dict[str, Any]:
    """What a hook is told: the event's public fields, named one by one."""
    return {
        "kind": kind,
        "time": event.time.isoformat(),
        "host": socket.gethostname(),
        "home": str(home),
        "instance": event.instance,
        "instance_id": event.instance_id,
        "framework": event.framework,
        "pid": event.pid,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "detail": event.detail[:_MAX_DETAIL],
        "restart_count": event.data.get("restart_count"),
        "event_id": event.id,
    }


class _Matcher:
    """Which notifications an event stands for; remembers per instance what already fired."""

    def __init__(self) -> None:
        self._restarts: dict[str, int] = {}
        self._memory_told: set[str] = set()

    def kinds(self, event: Event) -> list[str]:
        if event.event == "reload":
            return [] if event.data.get("ok", True) else ["reload_rejected"]
        if not event.instance_id:
            return []
        key = event.instance_id
        if event.event == "memory_limit":
            if key in self._memory_told:
                return []
            self._memory_told.add(key)
            return ["memory_restart"]
        if event.event != "transition":
            return []
        found = []
        if event.to_status == "error" and event.from_status != "error":
            found.append("error")
        count = event.data.get("restart_count")
        if isinstance(count, int):
            if count >= CRASH_LOOP_RESTARTS > self._restarts.get(key, 0):
                found.append("crash_loop")
            self._restarts[key] = count
        if event.to_status == "running":
            self._memory_told.discard(key)
        return found


def _hooks(fleet: FleetFile, kind: str, instance: str) -> list[NotifyHook]:
    hooks = list(fleet.defaults.notify)
    if instance:
        hooks += next((d.notify for d in fleet.instances if d.name == instance), [])
    return [hook for hook in hooks if kind in hook.on]


def _target(hook: NotifyHook) -> str:
    """The hook as a log line may show it: the program, or the URL's scheme and host (a webhook's path and
    query often hold its secret)."""
    if hook.command is not None:
        return hook.command[0]
    scheme, _, rest = (hook.url or "").partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}"


class Notifications:
    """Runs the fleet's ``notify`` hooks for the events of the daemon's bus; ``fleet`` gives the fleet file
    in force, read at each event so a reload changes the hooks at once."""

    def __init__(self, fleet: Callable[[], FleetFile], home: Path) -> None:
        self._fleet = fleet
        self._home = home
        self._matcher = _Matcher()
        self._send, self._receive = anyio.create_memory_object_stream[_Job](_QUEUE)

    async def run(
        self,
        subscribe: Callable[[], AbstractAsyncContextManager[AsyncIterator[Event]]],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen until cancelled; ``task_status`` fires once subscribed."""
        async with subscribe() as events, anyio.create_task_group() as tg:
            for _ in range(_WORKERS):
                tg.start_soon(self._work)
            task_status.started()
            async for event in events:
                try:
                    self._queue(event)
                except Exception:  # a bug here must not end the daemon's event bus
                    log.exception("notify_failed", event_id=event.id)

    def _queue(self, event: Event) -> None:
        for kind in self._matcher.kinds(event):
            for hook in _hooks(self._fleet(), kind, "" if kind == "reload_rejected" else event.instance):
                job = _Job(hook, kind, payload(kind, event, self._home))
                try:
                    self._send.send_nowait(job)
                except anyio.WouldBlock:
                    log.warning("notify_dropped", kind=kind, instance=event.instance, hook=_target(hook))

    async def _work(self) -> None:
        async for job in self._receive:
            try:
                if job.hook.command is not None:
                    await self._run_command(job, job.hook.command)
                else:
                    await self._post(job, job.hook.url or "")
            except Exception as exc:
                log.warning(
                    "notify_hook_failed",
                    kind=job.kind,
                    instance=job.body["instance"],
                    hook=_target(job.hook),
                    error=str(exc) or type(exc).__name__,
                )

    async def _run_command(self, job: _Job, argv: list[str]) -> None:
        proc = self._start(job, argv)
        try:
            with anyio.fail_after(job.hook.timeout):
                code = await wait_or_kill_group(proc)
        except TimeoutError:
            raise RuntimeError(f"killed after its timeout of {job.hook.timeout:g}s") from None
        if code != 0:
            raise RuntimeError(f"exited with code {code}")
        log.debug("notify_hook_done", kind=job.kind, instance=job.body["instance"], hook=_target(job.hook))

    def _start(self, job: _Job, argv: list[str]) -> subprocess.Popen[bytes]:
        """The command in its own session (so a timeout ends all of it), its payload already on stdin."""
        env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
        env |= {
            "EYRIE_NOTIFY_KIND": job.kind,
            "EYRIE_NOTIFY_INSTANCE": job.body["instance"],
            "EYRIE_NOTIFY_HOME": str(self._home),
        }
        with empty_signal_mask():
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self._home,
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), proc.stdin:
            proc.stdin.write(json.dumps(job.body).encode() + b"\n")  # smaller than a pipe's buffer
        return proc

    async def _post(self, job: _Job, url: str) -> None:
        import httpx

        try:
            with anyio.fail_after(job.hook.timeout):
                async with httpx.AsyncClient(timeout=job.hook.timeout, follow_redirects=False) as http:
                    answer = await http.post(url, json=job.body, headers={"User-Agent": "eyried-notify"})
        except TimeoutError:
            raise RuntimeError(f"no answer within its timeout of {job.hook.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{type(exc).__name__}: {str(exc).replace(url, _target(job.hook))}") from None
        if answer.is_error:
            raise RuntimeError(f"answered {answer.status_code} {answer.reason_phrase}")
        log.debug("notify_hook_done", kind=job.kind, instance=job.body["instance"], hook=_target(job.hook))
