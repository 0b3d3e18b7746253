"""The control API app driven in-process (``httpx.ASGITransport``) over an in-memory target."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from supervisor.control.app import close_event_streams, create_app
from supervisor.control.schema import Event, ReloadResult
from supervisor.errors import (
    EyrieError,
    FleetFileError,
    HierarchyError,
    InvalidID,
    NameExists,
    NotFound,
    RequiredField,
    UnsupportedFramework,
)
from supervisor.testing import MemoryTarget

pytestmark = pytest.mark.anyio


@pytest.fixture
def target() -> MemoryTarget:
    t = MemoryTarget("/home/test/.eyrie")
    t.put("alpha", status="running", port=43001, restart_count=2, total_restarts=5)
    t.put("beta", status="stopped", port=43002)
    return t


@pytest.fixture
def app(target: MemoryTarget) -> Starlette:
    return create_app(target, keepalive=0.05)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://eyried") as client,
    ):
        yield client


def _event(instance: str, to_status: str) -> Event:
    return Event(time=datetime.now(UTC), event="transition", instance=instance, to_status=to_status)


def _sse_data(body: str) -> list[dict[str, object]]:
    return [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]


async def _wait_for_subscribers(target: MemoryTarget, count: int) -> None:
    with anyio.fail_after(5):
        while True:
            if target.subscriber_count >= count:
                return
            await anyio.sleep(0.01)


class TestInstanceRoutes:
    async def test_list(self, http: httpx.AsyncClient) -> None:
        """GET /v1/instances returns every instance view as a JSON list."""
        response = await http.get("/v1/instances")
        assert response.status_code == 200
        body = response.json()
        assert [v["name"] for v in body] == ["alpha", "beta"]
        assert body[0]["restart_count"] == 2 and body[0]["port"] == 43001
        assert "flags" in body[0] and "auth_token" not in body[0]

    async def test_get_by_name_and_id(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """GET /v1/instances/{ref} finds an instance by its name and by its id."""
        by_name = (await http.get("/v1/instances/beta")).json()
        by_id = (await http.get(f"/v1/instances/{target.instances['beta'].id}")).json()
        assert by_name == by_id and by_name["status"] == "stopped"

    async def test_get_unknown_is_404(self, http: httpx.AsyncClient) -> None:
        """An unknown instance answers 404 with kind NotFound."""
        response = await http.get("/v1/instances/nope")
        assert response.status_code == 404
        assert response.json() == {"error": "instance 'nope' not found", "kind": "NotFound"}

    async def test_create(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """POST /v1/instances creates, starts when asked, and answers 201 with the view."""
        response = await http.post(
            "/v1/instances", json={"name": "gamma", "framework": "embedded", "role": "talon"}
        )
        assert response.status_code == 201
        assert response.json()["status"] == "running" and response.json()["hierarchy_role"] == "talon"
        assert "gamma" in target.instances

    async def test_create_without_start(self, http: httpx.AsyncClient) -> None:
        """start=false leaves the new instance created, enable=false leaves it without autostart."""
        response = await http.post("/v1/instances", json={"name": "delta", "start": False, "enable": False})
        assert response.json()["status"] == "created" and response.json()["autostart"] is False

    async def test_create_existing_name_is_409(self, http: httpx.AsyncClient) -> None:
        """A taken name answers 409 NameExists."""
        response = await http.post("/v1/instances", json={"name": "alpha"})
        assert response.status_code == 409 and response.json()["kind"] == "NameExists"

    async def test_create_invalid_name_is_422(self, http: httpx.AsyncClient) -> None:
        """A name that is not a slug answers 422 InvalidName saying why."""
        response = await http.post("/v1/instances", json={"name": "Bad Name"})
        assert response.status_code == 422
        assert response.json()["kind"] == "InvalidName" and "whitespace" in response.json()["error"]

    async def test_create_unknown_framework_is_422(self, http: httpx.AsyncClient) -> None:
        """An unknown framework answers 422 UnsupportedFramework."""
        response = await http.post("/v1/instances", json={"name": "eps", "framework": "nonesuch"})
        assert response.status_code == 422 and response.json()["kind"] == "UnsupportedFramework"

    async def test_create_bad_body(self, http: httpx.AsyncClient) -> None:
        """A body that is not JSON is 400; unknown or missing fields are 422 naming the field."""
        not_json = await http.post(
            "/v1/instances", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400 and not_json.json()["kind"] == "BadRequest"
        unknown = await http.post("/v1/instances", json={"name": "x", "token": "s3cret"})
        assert unknown.status_code == 422 and "token" in unknown.json()["error"]
        assert "s3cret" not in unknown.text
        missing = await http.post("/v1/instances", json={"framework": "embedded"})
        assert missing.status_code == 422 and "name" in missing.json()["error"]

    async def test_delete(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """DELETE answers 204 and passes purge through; keep_files, the default, is accepted alone."""
        target.put("gamma")
        response = await http.delete("/v1/instances/beta", params={"purge": "1"})
        assert response.status_code == 204
        assert "beta" not in target.instances and ("delete", "beta purge=True") in target.calls
        kept = await http.delete("/v1/instances/gamma", params={"keep_files": "1"})
        assert kept.status_code == 204 and ("delete", "gamma purge=False") in target.calls

    async def test_delete_contradiction(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """purge with keep_files is a bad request, and nothing is removed."""
        response = await http.delete("/v1/instances/beta", params={"purge": "1", "keep_files": "1"})
        assert response.status_code == 400 and "beta" in target.instances

    async def test_reload_plan(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """GET /v1/reload/plan answers the plan (dry_run set) and applies nothing."""
        target.reload_result = ReloadResult(ok=True, removed=["beta"])
        response = await http.get("/v1/reload/plan")
        assert response.status_code == 200
        assert response.json()["dry_run"] is True and response.json()["removed"] == ["beta"]
        assert ("plan_reload", "") in target.calls and ("reload", "") not in target.calls

    async def test_actions(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """start/stop/restart pass wait through; enable/disable flip autostart; each returns the view."""
        started = await http.post("/v1/instances/beta/start", params={"wait": "1"})
        assert started.status_code == 200 and started.json()["status"] == "running"
        assert ("start", "beta wait=True") in target.calls
        stopped = await http.post("/v1/instances/alpha/stop")
        assert stopped.json()["status"] == "stopped" and ("stop", "alpha wait=False") in target.calls
        assert (await http.post("/v1/instances/alpha/restart")).json()["status"] == "running"
        assert (await http.post("/v1/instances/alpha/disable")).json()["autostart"] is False
        assert (await http.post("/v1/instances/alpha/enable")).json()["autostart"] is True

    async def test_unknown_action_is_404(self, http: httpx.AsyncClient) -> None:
        """An action that does not exist answers 404 with a JSON error listing the real ones."""
        response = await http.post("/v1/instances/alpha/explode")
        assert response.status_code == 404 and "restart" in response.json()["error"]

    async def test_bad_query_flag_is_400(self, http: httpx.AsyncClient) -> None:
        """wait=maybe is refused with a message naming the parameter."""
        response = await http.post("/v1/instances/alpha/start", params={"wait": "maybe"})
        assert response.status_code == 400 and "'wait'" in response.json()["error"]


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (NotFound("gone"), 404),
            (NameExists("taken"), 409),
            (RequiredField("framework is required"), 422),
            (UnsupportedFramework("nope"), 422),
            (FleetFileError("bad key", path="fleet.yaml", line=3, key="instances"), 422),
            (HierarchyError("two commanders: a, b"), 422),
            (InvalidID("bad id"), 400),
            (EyrieError("something else"), 400),
        ],
    )
    async def test_status_codes(
        self, http: httpx.AsyncClient, target: MemoryTarget, error: EyrieError, status: int
    ) -> None:
        """Each error class maps to its documented status code, with its class name as kind."""
        target.fail_next["start"] = error
        response = await http.post("/v1/instances/alpha/start")
        assert response.status_code == status
        assert response.json() == {"error": str(error), "kind": type(error).__name__}

    async def test_unexpected_error_is_500_without_traceback(
        self, http: httpx.AsyncClient, target: MemoryTarget
    ) -> None:
        """A bug in the target answers 500 with a generic JSON error, no traceback, no exception text."""
        target.fail_next["stop"] = RuntimeError("secret-detail")  # type: ignore[assignment]
        response = await http.post("/v1/instances/alpha/stop")
        assert response.status_code == 500
        assert response.json()["kind"] == "InternalError"
        assert "secret-detail" not in response.text and "Traceback" not in response.text

    async def test_unknown_route_is_json(self, http: httpx.AsyncClient) -> None:
        """A path that does not exist answers a JSON 404, a wrong method a JSON 405."""
        missing = await http.get("/v2/nothing")
        assert missing.status_code == 404 and missing.json()["kind"] == "HTTPError"
        wrong = await http.put("/v1/reload")
        assert wrong.status_code == 405 and wrong.json()["kind"] == "HTTPError"

    async def test_oversized_body_is_refused(self, http: httpx.AsyncClient) -> None:
        """A request body over 64 KiB is refused with 413."""
        response = await http.post("/v1/instances", content=b"x" * (65 * 1024))
        assert response.status_code == 413


class TestDaemonRoutes:
    async def test_reload_ok(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """POST /v1/reload returns the target's ReloadResult."""
        target.reload_result = ReloadResult(ok=True, added=["gamma"], unchanged=["alpha", "beta"])
        body = (await http.post("/v1/reload")).json()
        assert body["ok"] is True and body["added"] == ["gamma"]

    async def test_reload_invalid_file_is_200(self, http: httpx.AsyncClient, target: MemoryTarget) -> None:
        """A fleet-file error during reload answers 200 with ok=false and the error text."""
        target.fail_next["reload"] = FleetFileError(
            "unknown key", path="/h/fleet.yaml", line=4, key="instancez"
        )
        response = await http.post("/v1/reload")
        assert response.status_code == 200
        assert response.json()["ok"] is False and "/h/fleet.yaml:4" in response.json()["error"]

    async def test_status(self, http: httpx.AsyncClient) -> None:
        """GET /v1/status returns the daemon status with counts per status."""
        body = (await http.get("/v1/status")).json()
        assert body["home"] == "/home/test/.eyrie" and body["instances"] == {"running": 1, "stopped": 1}

    async def test_metrics(self, http: httpx.AsyncClient) -> None:
        """GET /metrics serves the Prometheus text format."""
        response = await http.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        assert 'eyrie_instance_up{instance="alpha"} 1.0' in response.text


class _RawStream:
    """Drives ``GET /v1/events`` through hand-made ASGI callables: chunks are readable while it is open."""

    def __init__(self, app: Starlette, query: bytes = b"") -> None:
        self.app = app
        self.query = query
        self.send_chunk, self.chunks = anyio.create_memory_object_stream[bytes | None](100)
        self.left = anyio.Event()
        self.start: dict[str, object] = {}
        self.text = ""

    async def __aenter__(self) -> _RawStream:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.left.set()
        await self._tg.__aexit__(None, None, None)
        self.chunks.close()

    async def _run(self) -> None:
        scope: dict[str, object] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "query_string": self.query,
            "headers": [],
            "server": ("eyried", 80),
            "client": None,
            "root_path": "",
        }
        requested = False

        async def receive() -> dict[str, object]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                self.start = message
            else:
                body = message.get("body", b"")
                assert isinstance(body, bytes)
                await self.send_chunk.send(body if message.get("more_body") else None)

        async with self.send_chunk:
            await self.app(scope, receive, send)  # type: ignore[arg-type]

    async def read_until(self, needle: str) -> str:
        """Collect the stream until ``needle`` appears in it; fails after five seconds."""
        with anyio.fail_after(5):
            while needle not in self.text:
                chunk = await self.chunks.receive()
                assert chunk is not None, f"stream ended before {needle!r}: {self.text!r}"
                self.text += chunk.decode()
        return self.text

    async def read_to_end(self) -> str:
        with anyio.fail_after(5):
            while (chunk := await self.chunks.receive()) is not None:
                self.text += chunk.decode()
        return self.text


class TestEvents:
    async def test_stream_sends_events_as_data_lines(self, app: Starlette, target: MemoryTarget) -> None:
        """Each event arrives as one ``data: <Event JSON>`` message, in order, while the stream is open."""
        async with _RawStream(app) as stream:
            await stream.read_until(": connected\n\n")
            target.publish(_event("alpha", "stopped"))
            target.publish(_event("alpha", "running"))
            text = await stream.read_until('"to_status":"running"')
        assert (b"content-type", b"text/event-stream; charset=utf-8") in stream.start["headers"]  # type: ignore[operator]
        assert [e["to_status"] for e in _sse_data(text)] == ["stopped", "running"]
        assert target.subscriber_count == 0

    async def test_keepalive_comments(self, app: Starlette) -> None:
        """An idle stream sends ``: keep-alive`` comments so proxies and clients see it is alive."""
        async with _RawStream(app) as stream:
            await stream.read_until(": keep-alive\n\n")

    async def test_close_ends_open_streams(self, app: Starlette, target: MemoryTarget) -> None:
        """close_event_streams ends every open stream with a final empty chunk and unsubscribes it."""
        async with _RawStream(app) as stream:
            await stream.read_until(": connected")
            close_event_streams(app)
            await stream.read_to_end()
        assert target.subscriber_count == 0

    async def test_recent_and_replay(
        self, app: Starlette, http: httpx.AsyncClient, target: MemoryTarget
    ) -> None:
        """Events seen by the app are listed by /v1/events/recent and replayed first on ?replay=N."""
        await _wait_for_subscribers(target, 1)
        for status in ("starting", "running", "stopped"):
            target.publish(_event("beta", status))
        with anyio.fail_after(5):
            while True:
                if len((await http.get("/v1/events/recent")).json()) == 3:
                    break
                await anyio.sleep(0.01)
        recent = (await http.get("/v1/events/recent", params={"limit": "2"})).json()
        assert [e["to_status"] for e in recent] == ["running", "stopped"]
        async with _RawStream(app, b"replay=2") as stream:
            text = await stream.read_until('"to_status":"stopped"')
        assert [e["to_status"] for e in _sse_data(text)] == ["running", "stopped"]

    async def test_bad_limit(self, http: httpx.AsyncClient) -> None:
        """A limit that is not a number or out of range is refused with 400."""
        assert (await http.get("/v1/events/recent", params={"limit": "x"})).status_code == 400
        assert (await http.get("/v1/events/recent", params={"limit": "100000"})).status_code == 400
