"""Talk to a running eyried over its control socket: the routes as async methods returning schema models.

It dials the operator's abstract socket first and the socket file when that fails (see `OperatorTransport`).

Errors are translated at this boundary: callers never see httpx. A missing or dead socket is
`DaemonNotRunning`; an error answer becomes the exception the daemon raised, same class, message and details
(a `FleetFileError` keeps its path, line and key), or `EyrieError` when the kind is not one of ours.

A followed event stream outlives the daemon's restarts: it reconnects and resumes from the last event id.
"""

from __future__ import annotations

import contextlib
import functools
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from pydantic import ValidationError

from supervisor.control._answers import (
    closed_without_answer,
    connect_failed,
    error_answer,
    no_answer_in_time,
    not_json,
)
from supervisor.control._dial import OperatorTransport
from supervisor.control._error_answer import error_from_answer
from supervisor.control.schema import (
    AddRequest,
    DaemonStatus,
    Event,
    InstanceDetail,
    InstanceView,
    ReloadResult,
)
from supervisor.daemon.absent import daemon_not_running
from supervisor.daemon.lock import read_daemon_pid
from supervisor.errors import EyrieError, NotFound
from supervisor.paths import ID_PATTERN, Home

__all__ = ["ControlClient", "daemon_not_running"]

_BASE_URL = "http://eyried"
_TIMEOUT = 30.0
_RECONNECT_FOR = 30.0
_REPLAY_ALL = 1000  # the most the daemon replays; more than its history keeps


class ControlClient:
    """``async with ControlClient(home) as client: await client.list_instances()``.

    ``transport`` replaces the Unix-socket transport (tests pass ``httpx.ASGITransport(app)``).
    """

    def __init__(
        self, home: Home, *, transport: httpx.AsyncBaseTransport | None = None, timeout: float = _TIMEOUT
    ) -> None:
        self.home = home
        self._operator = None
        if transport is None:
            transport = self._operator = OperatorTransport(
                abstract=home.operator_socket,
                path=home.socket_path,
                daemon_pid=functools.partial(read_daemon_pid, home),
            )
        self._http = httpx.AsyncClient(
            transport=transport,
            base_url=_BASE_URL,
            timeout=timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def socket_used(self) -> str | None:
        """The socket the latest connection went to, abstract ones shown as ``@name``; None before any."""
        used = self._operator.used if self._operator else None
        return "@" + used.removeprefix("\0") if used and used.startswith("\0") else used

    # --- instances

    async def list_instances(self) -> list[InstanceView]:
        return [InstanceView.model_validate(v) for v in await self._json("GET", "/v1/instances")]

    async def get_instance(self, ref: str) -> InstanceView:
        return InstanceView.model_validate(await self._json("GET", f"/v1/instances/{_quote(ref)}"))

    async def instance_status(self, ref: str) -> InstanceDetail:
        """One instance on one screen (``eyriectl status NAME``)."""
        data = await self._json("GET", f"/v1/instances/{_quote(ref)}/status")
        return InstanceDetail.model_validate(data)

    async def add(self, request: AddRequest) -> InstanceView:
        """Declare, provision and (unless ``request.start`` is false) start an instance; may take a while."""
        body = request.model_dump(mode="json")
        return InstanceView.model_validate(await self._json("POST", "/v1/instances", json=body, timeout=None))

    async def remove(self, ref: str, *, purge: bool = False) -> None:
        """Stop, undeclare and deprovision: the directory goes to the trash, or with ``purge`` is deleted."""
        params = {"purge": "1"} if purge else {}
        await self._request("DELETE", f"/v1/instances/{_quote(ref)}", params=params, timeout=None)

    async def start(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._act(ref, "start", wait=wait)

    async def stop(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._act(ref, "stop", wait=wait)

    async def stop_many(
        self, refs: list[str], *, wait: bool = False
    ) -> list[InstanceView | EyrieError] | None:
        """Stop all of ``refs`` through one request (their stops begin at once): per ref, in order, the
        instance as it stands after its stop or the error its stop raised. None when eyried predates the
        request (stop them one by one then)."""
        params = {"wait": "1"} if wait else {}
        with self._translated():
            response = await self._http.post(
                "/v1/stop", params=params, json={"names": refs}, timeout=None if wait else _TIMEOUT
            )
        if response.status_code in (404, 405) and _kind(response) == "HTTPError":
            return None
        if response.is_error:
            raise _error_from(response)
        try:
            answers = response.json()
            return [_stop_answer(answer) for answer in answers]
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError, ValidationError):
            raise not_json("POST", "/v1/stop") from None

    async def restart(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._act(ref, "restart", wait=wait)

    async def enable(self, ref: str) -> InstanceView:
        return await self._act(ref, "enable")

    async def disable(self, ref: str) -> InstanceView:
        return await self._act(ref, "disable")

    # --- the daemon

    async def reload(self) -> ReloadResult:
        return ReloadResult.model_validate(await self._json("POST", "/v1/reload", timeout=None))

    async def plan_reload(self) -> ReloadResult:
        """What a reload would do now (``dry_run`` set); nothing is applied."""
        return ReloadResult.model_validate(await self._json("GET", "/v1/reload/plan", timeout=None))

    async def status(self) -> DaemonStatus:
        return DaemonStatus.model_validate(await self._json("GET", "/v1/status"))

    async def metrics(self) -> str:
        return (await self._request("GET", "/metrics")).text

    async def recent_events(self, limit: int = 50) -> list[Event]:
        data = await self._json("GET", "/v1/events/recent", params={"limit": str(limit)})
        return [Event.model_validate(e) for e in data]

    @contextlib.asynccontextmanager
    async def events(
        self, *, replay: int = 0, reconnect_for: float = _RECONNECT_FOR
    ) -> AsyncIterator[AsyncIterator[Event]]:
        """``replay`` recent events, then every new one, until the block exits.

        When the stream drops (the daemon restarted or re-executed), it is opened again, resuming after the
        last event received (``Last-Event-ID``), for up to ``reconnect_for`` seconds while the daemon is
        down; after that, or with 0, the iterator ends. The daemon tells of events it can no longer give by
        a ``gap`` event.
        """
        response = await self._open_events({"replay": str(replay)} if replay else {}, None)
        follower = _EventFollower(self, response, reconnect_for)
        try:
            yield follower.events()
        finally:
            await follower.aclose()

    async def _open_events(self, params: dict[str, str], last_event_id: str | None) -> httpx.Response:
        with self._translated():
            response = await self._send_events(params, last_event_id)
        if response.is_error:
            await response.aread()
            await response.aclose()
            raise _error_from(response)
        return response

    async def _send_events(self, params: dict[str, str], last_event_id: str | None) -> httpx.Response:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        request = self._http.build_request(
            "GET", "/v1/events", params=params, headers=headers, timeout=httpx.Timeout(_TIMEOUT, read=None)
        )
        return await self._http.send(request, stream=True)

    # --- plumbing

    async def _act(self, ref: str, action: str, *, wait: bool = False) -> InstanceView:
        params = {"wait": "1"} if wait else {}
        data = await self._json(
            "POST", f"/v1/instances/{_quote(ref)}/{action}", params=params, timeout=None if wait else _TIMEOUT
        )
        return InstanceView.model_validate(data)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise not_json(method, path) from None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._translated():
            response = await self._http.request(method, path, **kwargs)
        if response.is_error:
            raise _error_from(response)
        return response

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        socket = self.home.socket_path
        try:
            yield
        except httpx.ConnectError as exc:
            raise connect_failed(socket, _os_error(exc)) or daemon_not_running(self.home) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise closed_without_answer(socket, exc) from None
        except httpx.TimeoutException:
            raise no_answer_in_time(socket) from None
        except httpx.HTTPError as exc:
            raise EyrieError(f"talking to eyried on {socket} failed: {exc}") from None


def _quote(ref: str) -> str:
    """``ref`` as one path segment; what cannot be a name or an id is not sent at all."""
    if not ID_PATTERN.fullmatch(ref):
        raise NotFound(f"no instance is called {ref!r}: names and ids use only letters, digits, '-' and '_'")
    return urllib.parse.quote(ref, safe="")


def _os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _kind(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    return str(body.get("kind", "")) if isinstance(body, dict) else ""


def _stop_answer(answer: dict[str, Any]) -> InstanceView | EyrieError:
    if "instance" in answer:
        return InstanceView.model_validate(answer["instance"])
    return error_from_answer(answer, {}) or EyrieError(f"{answer['name']}: no answer")


def _error_from(response: httpx.Response) -> EyrieError:
    return error_answer(response.status_code, response.reason_phrase, response.content, response.headers)


class _EventFollower:
    """One followed event stream across reconnects: the current response and the last event id seen."""

    def __init__(self, client: ControlClient, response: httpx.Response, reconnect_for: float) -> None:
        self._client = client
        self._response: httpx.Response | None = response
        self._reconnect_for = reconnect_for
        self.last_id = ""

    async def events(self) -> AsyncIterator[Event]:
        while self._response is not None:
            async for event in self._parse(self._response):
                yield event
            await self._response.aclose()
            self._response = await self._reopen()

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    async def _parse(self, response: httpx.Response) -> AsyncIterator[Event]:
        data: list[str] = []
        event_id = ""
        try:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("id:"):
                    event_id = line[3:].removeprefix(" ")
                elif line == "":
                    if event_id:
                        self.last_id = event_id
                    if data:
                        yield _event("\n".join(data))
                    data, event_id = [], ""
        except httpx.HTTPError:
            return  # the daemon went away: the stream ends here, and may be resumed

    async def _reopen(self) -> httpx.Response | None:
        """The stream again, after the last event seen; None when the daemon stays away too long."""
        deadline = anyio.current_time() + self._reconnect_for
        delay = 0.05
        while anyio.current_time() < deadline:
            # without an id, the restarted daemon's whole history: everything after the old stream
            params = {} if self.last_id else {"replay": str(_REPLAY_ALL)}
            try:
                response = await self._client._send_events(params, self.last_id or None)
            except httpx.TransportError:
                pass  # not serving yet
            else:
                if not response.is_error:
                    return response
                await response.aclose()
                return None
            await anyio.sleep(min(delay, max(deadline - anyio.current_time(), 0)))
            delay = min(delay * 2, 1.0)
        return None


def _event(text: str) -> Event:
    try:
        return Event.model_validate_json(text)
    except ValidationError as exc:
        raise EyrieError(f"eyried sent an event that is not valid: {exc.errors()[0]['msg']}") from None
