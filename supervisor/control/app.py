"""The control API as an ASGI app: JSON routes over a `ControlTarget` (the daemon), nothing else.

The app holds no state of its own beyond the open event streams and a short event history; every answer comes
from the target. Errors leave as ``{"error": "...", "kind": "<class name>"}`` with a status code chosen by
the error's group (`ERROR_STATUS`) and the header the client rebuilds the error from, never as a traceback.

Routes::

    GET    /v1/instances[?view=ps]               list of InstanceView (view=ps: only the fields ps reads)
    POST   /v1/instances                         AddRequest → InstanceView (201)
    GET    /v1/instances/{ref}                   InstanceView (ref = name or id)
    GET    /v1/instances/{ref}/status            InstanceDetail: process tree, probes, log tail
    DELETE /v1/instances/{ref}?purge=1           204 (the directory goes to the trash unless purge)
    POST   /v1/instances/{ref}/{action}?wait=1   start | stop | restart | enable | disable → InstanceView
    POST   /v1/stop?wait=1                       {"names": [..]} → per name {name, instance} or {name, error}
    POST   /v1/reload                            ReloadResult (200 even when the fleet file is invalid)
    GET    /v1/reload/plan                       ReloadResult with dry_run: what a reload would do now
    GET    /v1/status                            DaemonStatus, with the instances not as desired
    GET    /v1/events?replay=N                   text/event-stream of Event JSON; with Last-Event-ID: resumed
    GET    /v1/events/recent?limit=N             list of recent Event
    GET    /metrics                              Prometheus text format
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from supervisor import errors
from supervisor.control._desired import not_as_desired
from supervisor.control._error_answer import details_headers
from supervisor.control._listing import Fields, listing_body
from supervisor.control._ps_row import PS_FIELDS, PS_VIEW
from supervisor.control._sse import EventHistory, EventStreamResponse, EventStreams
from supervisor.control._stop_many import MAX_NAMES, stop_each
from supervisor.control.schema import AddRequest, InstanceView, ReloadResult
from supervisor.control.validation import validated
from supervisor.models import check_name

if TYPE_CHECKING:
    from supervisor.control.target import ControlTarget

__all__ = ["ERROR_STATUS", "close_event_streams", "create_app", "error_response"]

log = structlog.get_logger("supervisor.control")

ERROR_STATUS: dict[type[errors.EyrieError], int] = {
    errors.EyrieError: 400,
    errors.NotFound: 404,
    errors.InvalidRequest: 422,
    errors.InvalidID: 400,
    errors.ConfigurationError: 422,
    errors.Conflict: 409,
}
"""Status code per error group; the most specific class in the MRO wins. An id that cannot even name a path is
a malformed reference (400), not a field to correct (422)."""

_MAX_BODY = 64 * 1024
_MAX_REPLAY = 1000
_ACTIONS = ("start", "stop", "restart", "enable", "disable")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

Endpoint = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    """The request itself is malformed (a body that is not JSON, a bad query value, an unknown action)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_response(
    message: str, kind: str, status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind}, status_code=status, headers=headers)


def _status_for(exc: errors.EyrieError) -> int:
    return next(ERROR_STATUS[cls] for cls in type(exc).__mro__ if cls in ERROR_STATUS)


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Translate every failure into a JSON error; unexpected ones are logged and answered 500."""

    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _BadRequest as exc:
            return error_response(str(exc), "BadRequest", exc.status)
        except errors.EyrieError as exc:
            return error_response(str(exc), type(exc).__name__, _status_for(exc), details_headers(exc))
        except HTTPException:  # the request's own fault (a body over the limit): answered by `http_error`
            raise
        except Exception:
            log.exception("control_request_failed", method=request.method, path=request.url.path)
            return error_response("internal error in eyried; see its log", "InternalError", 500)

    return run


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _BadRequest(f"query parameter {name!r} must be 0 or 1, not {raw!r}")


def _count(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"query parameter {name!r} must be a whole number, not {raw!r}") from None
    if not 0 <= value <= _MAX_REPLAY:
        raise _BadRequest(f"query parameter {name!r} must be between 0 and {_MAX_REPLAY}")
    return value


def _model(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def _models(models: list[Any]) -> JSONResponse:
    return JSONResponse([m.model_dump(mode="json") for m in models])


def _instance_list(views: list[InstanceView], fields: Fields = None) -> Response:
    """The listing from the rows' kept JSON (`listing_body`)."""
    return Response(listing_body(views, fields), media_type="application/json")


def _listing_fields(request: Request) -> Fields:
    """``view=ps``: the fields ``eyriectl ps`` reads (`PS_FIELDS`); no ``view``: whole rows."""
    view = request.query_params.get("view")
    if view is None:
        return None
    if view != PS_VIEW:
        raise _BadRequest(f"query parameter 'view' must be {PS_VIEW!r} or left out, not {view!r}")
    return PS_FIELDS


async def _add_request(request: Request) -> AddRequest:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequest("the request body must be a JSON object") from None
    add = validated(lambda: AddRequest.model_validate(body), "add request")
    check_name(add.name)
    validated(
        add.declaration, "add request"
    )  # the fleet file's own checks (a persona name, say) are the request's too
    return add


async def _names(request: Request) -> list[str]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequest("the request body must be a JSON object") from None
    names = body.get("names") if isinstance(body, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _BadRequest('the request body must be {"names": [instance names or ids, at least one]}')
    if len(names) > MAX_NAMES:
        raise _BadRequest(f"at most {MAX_NAMES} names per request, not {len(names)}")
    return names


def create_app(target: ControlTarget, *, keepalive: float = 15.0, history: int = 200) -> Starlette:
    """The control API over ``target``; ``keepalive`` s between SSE comments, ``history`` events kept."""
    streams = EventStreams()
    recent_events = EventHistory(history)

    async def list_instances(request: Request) -> Response:
        fields = _listing_fields(request)
        return _instance_list(await target.list_instances(), fields)

    async def get_instance(request: Request) -> Response:
        return _model(await target.get_instance(request.path_params["ref"]))

    async def instance_status(request: Request) -> Response:
        return _model(await target.instance_status(request.path_params["ref"]))

    async def create_instance(request: Request) -> Response:
        return _model(await target.create_instance(await _add_request(request)), status=201)

    async def delete_instance(request: Request) -> Response:
        purge = _flag(request, "purge")
        if purge and _flag(request, "keep_files"):  # keep_files: the default, named by older clients
            raise _BadRequest("purge and keep_files contradict each other")
        await target.delete_instance(request.path_params["ref"], purge=purge)
        return Response(status_code=204)

    async def act(request: Request) -> Response:
        ref, action = request.path_params["ref"], request.path_params["action"]
        if action == "enable":
            return _model(await target.enable(ref))
        if action == "disable":
            return _model(await target.disable(ref))
        wait = _flag(request, "wait")
        if action == "start":
            return _model(await target.start(ref, wait=wait))
        if action == "stop":
            return _model(await target.stop(ref, wait=wait))
        if action == "restart":
            return _model(await target.restart(ref, wait=wait))
        raise _BadRequest(f"unknown action {action!r} (use one of: {', '.join(_ACTIONS)})", status=404)

    async def stop_many(request: Request) -> Response:
        wait = _flag(request, "wait")
        names = await _names(request)
        return JSONResponse(await stop_each(lambda name: target.stop(name, wait=wait), names))

    async def reload(request: Request) -> Response:
        try:
            result = await target.reload()
        except (errors.FleetFileError, errors.HierarchyError) as exc:
            result = ReloadResult(ok=False, error=str(exc))
        return _model(result)

    async def plan_reload(request: Request) -> Response:
        return _model(await target.plan_reload())

    async def status(request: Request) -> Response:
        answer = target.status()
        answer.not_as_desired = [
            view
            for view in await target.list_instances()
            if not_as_desired(view.status, view.desired, view.autostart, view.flags)
        ]
        return _model(answer)

    async def events(request: Request) -> Response:
        return EventStreamResponse(
            target.subscribe,
            streams=streams,
            keepalive=keepalive,
            history=recent_events,
            replay=_count(request, "replay", 0),
            last_event_id=request.headers.get("last-event-id"),
        )

    async def recent(request: Request) -> Response:
        return _models(recent_events.recent(_count(request, "limit", 50)))

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(await target.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.detail, "HTTPError", exc.status_code, headers=exc.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            await tg.start(recent_events.record, functools.partial(target.subscribe, kept=True))
            yield
            streams.close_all()
            tg.cancel_scope.cancel()

    routes = [
        Route("/v1/instances", _guarded(list_instances), methods=["GET"]),
        Route("/v1/instances", _guarded(create_instance), methods=["POST"]),
        Route("/v1/instances/{ref}", _guarded(get_instance), methods=["GET"]),
        Route("/v1/instances/{ref}", _guarded(delete_instance), methods=["DELETE"]),
        Route("/v1/instances/{ref}/status", _guarded(instance_status), methods=["GET"]),
        Route("/v1/instances/{ref}/{action}", _guarded(act), methods=["POST"]),
        Route("/v1/stop", _guarded(stop_many), methods=["POST"]),
        Route("/v1/reload", _guarded(reload), methods=["POST"]),
        Route("/v1/reload/plan", _guarded(plan_reload), methods=["GET"]),
        Route("/v1/status", _guarded(status), methods=["GET"]),
        Route("/v1/events", _guarded(events), methods=["GET"]),
        Route("/v1/events/recent", _guarded(recent), methods=["GET"]),
        Route("/metrics", _guarded(metrics), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
        max_body_size=_MAX_BODY,
    )
    app.state.event_streams = streams
    return app


def close_event_streams(app: Starlette) -> None:
    """End every open ``/v1/events`` stream now (called by the server before it shuts down)."""
    streams: EventStreams = app.state.event_streams
    streams.close_all()
