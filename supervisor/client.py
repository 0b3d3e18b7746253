"""Talk to a running eyried over its control socket: the routes as async methods returning schema models.

It dials the operator's abstract socket first and the socket file when that fails (see `OperatorTransport`).

Errors are translated at this boundary: callers never see httpx. A missing or dead socket is
`DaemonNotRunning`; an error answer becomes the exception the daemon raised, same class, message and details
(a `FleetFileError` keeps its path, line and key), or `EyrieError` when the kind is not one of ours.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shlex
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import ValidationError

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
from supervisor.daemon.lock import read_daemon_pid
from supervisor.errors import DaemonNotRunning, EyrieError, NotFound
from supervisor.paths import ID_PATTERN, Home
from supervisor.systemd.names import unit_name

__all__ = ["ControlClient", "daemon_not_running"]

_BASE_URL = "http://eyried"
_TIMEOUT = 30.0
_NOT_RUNNING = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK}


def daemon_not_running(home: Home) -> DaemonNotRunning:
    try:
        service = f" or `systemctl --user start {shlex.quote(unit_name(home.root, os.environ))}`"
    except EyrieError:  # a home too long for a unit name has none
        service = ""
    return DaemonNotRunning(
        f"eyried is not running for {home.root}; start it with `eyried --home {home.root}`{service}"
    )


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
    async def events(self, *, replay: int = 0) -> AsyncIterator[AsyncIterator[Event]]:
        """``replay`` recent events, then every new one, until the block exits or the daemon stops."""
        params = {"replay": str(replay)} if replay else {}
        request = self._http.build_request(
            "GET", "/v1/events", params=params, timeout=httpx.Timeout(_TIMEOUT, read=None)
        )
        with self._translated():
            response = await self._http.send(request, stream=True)
        try:
            if response.is_error:
                await response.aread()
                raise _error_from(response)
            yield _parse_events(response)
        finally:
            await response.aclose()

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
            raise EyrieError(f"eyried sent an answer that is not JSON for {method} {path}") from None

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
            cause = _os_error(exc)
            if cause is None or cause.errno in _NOT_RUNNING:
                raise daemon_not_running(self.home) from None
            if cause.errno in (errno.EACCES, errno.EPERM):
                raise EyrieError(f"permission denied on {socket}: it belongs to another user") from None
            raise EyrieError(f"cannot connect to {socket}: {cause.strerror or cause}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise EyrieError(
                f"eyried closed the connection on {socket} without answering ({exc}); it accepts only its"
                " owner's uid"
            ) from None
        except httpx.TimeoutException:
            raise EyrieError(f"eyried did not answer on {socket} in time") from None
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


def _error_from(response: httpx.Response) -> EyrieError:
    """The exception an error answer stands for (see `error_from_answer`)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    error = error_from_answer(body, response.headers)
    return error or EyrieError(f"eyried answered {response.status_code} {response.reason_phrase}")


async def _parse_events(response: httpx.Response) -> AsyncIterator[Event]:
    data: list[str] = []
    try:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                yield _event("\n".join(data))
                data = []
    except httpx.HTTPError:
        return  # the daemon went away: the stream simply ends


def _event(text: str) -> Event:
    try:
        return Event.model_validate_json(text)
    except ValidationError as exc:
        raise EyrieError(f"eyried sent an event that is not valid: {exc.errors()[0]['msg']}") from None
