"""The agent API as an ASGI app: each agent, known by its own bearer token, does what its role allows.

Every answer to a known agent, allowed or refused, is a log line and an event naming the agent (name and
id), the action, the target and the outcome; a request without a valid token is answered 401 and logged with
the peer's address, never with what it sent. Errors have the control API's shape,
``{"error": "...", "kind": "..."}``.

Routes::

    GET    /v1/self                        InstanceView of the caller (no secrets)
    POST   /v1/self/note                   Note → InstanceView
    GET    /v1/instances                   list of InstanceView the caller may see
    POST   /v1/instances                   CreateChild → InstanceView (201)
    GET    /v1/instances/{name}            InstanceView
    POST   /v1/instances/{name}/{action}   start | stop → InstanceView
    DELETE /v1/instances/{name}            204 (the directory goes to the trash)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from supervisor import errors
from supervisor.agentapi._tokens import TokenIndex
from supervisor.agentapi.permissions import Action, Decision, Member, decide, visible
from supervisor.agentapi.schema import CreateChild, Note
from supervisor.agentapi.target import AgentTarget
from supervisor.control.app import ERROR_STATUS, error_response
from supervisor.control.schema import AddRequest, Event
from supervisor.control.validation import validated
from supervisor.models import HierarchyRole, check_name, utcnow

__all__ = ["create_agent_app"]

log = structlog.get_logger("supervisor.agentapi")

_MAX_BODY = 8 * 1024
_MANAGE_ACTIONS = {"start": Action.START, "stop": Action.STOP}
_SUBJECTS = {Action.LIST: "the fleet", Action.CREATE: "a new instance"}
"""What a call is about, for the log, before (or without) a named target."""


class _Refused(Exception):
    """An answer other than success, already decided: status, kind and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def _status_for(exc: errors.EyrieError) -> int:
    return next(ERROR_STATUS[cls] for cls in type(exc).__mro__ if cls in ERROR_STATUS)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise errors.InvalidRequest("the request body must be a JSON object") from None


def _bearer(request: Request) -> bytes | None:
    value = request.headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    token = credentials.strip().encode()
    return token if scheme.lower() == "bearer" and token else None


def _model(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


class _Call:
    """One request of one known agent: decides, acts, and reports the outcome once."""

    def __init__(self, target: AgentTarget, caller: Member, action: Action, subject: str) -> None:
        self.target = target
        self.caller = caller
        self.action = action
        self.subject = subject

    def check(self, decision: Decision) -> None:
        if not decision.allowed:
            raise _Refused(403, "Forbidden", f"{self.caller.name!r} may not do this: {decision.reason}")

    def report(self, outcome: str, reason: str) -> None:
        fields = {
            "agent": self.caller.name,
            "agent_id": self.caller.instance_id,
            "action": self.action.value,
            "target": self.subject,
            "outcome": outcome,
            "reason": reason,
        }
        if outcome == "allowed":
            log.info("agent_api_call", **fields)
        else:
            log.warning("agent_api_call", **fields)
        self.target.publish(
            Event(
                time=utcnow(),
                event="agent_api",
                instance=self.caller.name,
                instance_id=self.caller.instance_id,
                detail=f"{self.action.value} {self.subject}: {outcome}" + (f" ({reason})" if reason else ""),
                data=fields,
            )
        )


def create_agent_app(target: AgentTarget) -> Starlette:
    """The agent API over ``target``; agents authenticate with the content of their ``secrets/token``."""
    tokens = TokenIndex(target.members, target.token)
    creating = anyio.Lock()  # one creation at a time, so `max_children` holds against a burst

    def member(name: str) -> Member:
        found = next((m for m in target.members() if m.name == name), None)
        if found is None:
            raise errors.NotFound(f"instance {name!r} is not managed by this daemon")
        return found

    async def self_view(call: _Call, request: Request) -> Response:
        return _model(await target.view(call.caller.name))

    async def note(call: _Call, request: Request) -> Response:
        body = await _body(request)
        text = validated(lambda: Note.model_validate(body)).note
        await target.write_note(call.caller.instance_id, text)
        return _model(await target.view(call.caller.name))

    async def list_instances(call: _Call, request: Request) -> Response:
        call.check(decide(call.caller, Action.LIST))
        names = {m.name for m in target.members() if visible(call.caller, m)}
        views = [v for v in await target.views() if v.name in names]
        return JSONResponse([v.model_dump(mode="json") for v in views])

    async def get_instance(call: _Call, request: Request) -> Response:
        call.check(decide(call.caller, Action.READ, member(call.subject)))
        return _model(await target.view(call.subject))

    async def create(call: _Call, request: Request) -> Response:
        body = await _body(request)
        child = validated(lambda: CreateChild.model_validate(body))
        check_name(child.name)
        call.subject = child.name
        caller = call.caller
        project = child.project or (caller.project if caller.role is HierarchyRole.CAPTAIN else "")
        proposed = Member(child.name, "", child.role, project, caller.instance_id)
        call.check(decide(caller, Action.CREATE, proposed))
        add = AddRequest(
            name=child.name,
            framework=child.framework,
            role=child.role,
            persona=child.persona,
            project=project,
            parent=_parent(caller, proposed, target.members()),
            model=child.model,
            created_by=caller.instance_id,
            start=child.start,
        )
        validated(add.declaration)
        async with creating:
            made = sum(1 for m in target.members() if m.created_by == caller.instance_id)
            if made >= target.max_children:
                raise _Refused(
                    429,
                    "TooManyChildren",
                    f"{caller.name!r} has created {made} live instances, the limit"
                    f" (daemon.agent_api.max_children = {target.max_children}); remove one first",
                )
            view = await target.create(add)
        return _model(view, status=201)

    async def act(call: _Call, request: Request) -> Response:
        action = _MANAGE_ACTIONS.get(request.path_params["action"])
        if action is None:
            raise _Refused(404, "BadRequest", f"unknown action (use one of: {', '.join(_MANAGE_ACTIONS)})")
        call.action = action
        call.check(decide(call.caller, action, member(call.subject)))
        view = await (target.start if action is Action.START else target.stop)(call.subject)
        return _model(view)

    async def remove(call: _Call, request: Request) -> Response:
        call.check(decide(call.caller, Action.REMOVE, member(call.subject)))
        await target.remove(call.subject)
        return Response(status_code=204)

    def route(
        path: str, method: str, action: Action, handler: Callable[[_Call, Request], Awaitable[Response]]
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            caller = await _authenticated(request)
            if caller is None:
                return error_response(
                    "missing or invalid bearer token", "Unauthorized", 401, {"WWW-Authenticate": "Bearer"}
                )
            subject = _SUBJECTS.get(action, caller.name)
            call = _Call(target, caller, action, request.path_params.get("name", subject))
            try:
                response = await handler(call, request)
            except _Refused as exc:
                call.report("refused", str(exc))
                return error_response(str(exc), exc.kind, exc.status)
            except errors.EyrieError as exc:
                call.report("failed", str(exc))
                return error_response(str(exc), type(exc).__name__, _status_for(exc))
            except HTTPException as exc:
                call.report("failed", str(exc.detail))
                raise
            except Exception:
                log.exception("agent_api_request_failed", agent=caller.name, action=call.action.value)
                call.report("failed", "internal error")
                return error_response("internal error in eyried; see its log", "InternalError", 500)
            call.report("allowed", "")
            return response

        return Route(path, endpoint, methods=[method])

    async def _authenticated(request: Request) -> Member | None:
        presented = _bearer(request)
        caller = await tokens.find(presented) if presented is not None else None
        if caller is None:
            peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
            log.warning(
                "agent_api_unauthorized",
                peer=peer,
                reason="no bearer token" if presented is None else "unknown token",
                path=request.url.path,
            )
        return caller

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.detail, "HTTPError", exc.status_code, headers=exc.headers)

    routes = [
        route("/v1/self", "GET", Action.READ_SELF, self_view),
        route("/v1/self/note", "POST", Action.NOTE, note),
        route("/v1/instances", "GET", Action.LIST, list_instances),
        route("/v1/instances", "POST", Action.CREATE, create),
        route("/v1/instances/{name}", "GET", Action.READ, get_instance),
        route("/v1/instances/{name}/{action}", "POST", Action.START, act),
        route("/v1/instances/{name}", "DELETE", Action.REMOVE, remove),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, max_body_size=_MAX_BODY)


def _parent(caller: Member, child: Member, members: list[Member]) -> str:
    """The child's parent: its creator, except a commander's talon, whose parent the hierarchy says is the
    captain of its project (the commander stays its ``created_by``)."""
    if caller.role is HierarchyRole.CAPTAIN or child.role is HierarchyRole.CAPTAIN:
        return caller.name
    captain = next(
        (m for m in members if m.role is HierarchyRole.CAPTAIN and m.project == child.project), None
    )
    if captain is None:
        where = f"project {child.project!r}" if child.project else "a talon without a project"
        message = f"{where} has no captain, and a talon's parent is a captain: create the captain first"
        raise _Refused(409, "Conflict", message)
    return captain.name
