"""The embedded agent's agent-API client and its create-a-talon errand, against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supervisor.frameworks.embedded._agentapi import AgentClient, create_talon_errand, start_errands


class _Api(ThreadingHTTPServer):
    """Answers from a table ``(method, path) → (status, body)``; records every request it got."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, object]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.seen: list[tuple[str, str, str, object]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: _Api

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        status, answer = self.server.answers.get(
            (self.command, self.path), (404, {"error": "no", "kind": "NotFound"})
        )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[_Api]:
    server = _Api({})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class TestErrand:
    def test_creates_the_talon_once_with_the_token(self, api: _Api) -> None:
        """A missing talon is asked for, in its project, with the agent's bearer token, then noted."""
        api.answers[("POST", "/v1/instances")] = (201, {"name": "t-1"})
        api.answers[("POST", "/v1/self/note")] = (200, {"name": "boss"})
        assert create_talon_errand(AgentClient(api.url, "tok"), "apollo/t-1", retry_for=0)
        creations = [s for s in api.seen if s[:2] == ("POST", "/v1/instances")]
        assert creations == [
            ("POST", "/v1/instances", "Bearer tok", {"name": "t-1", "role": "talon", "project": "apollo"})
        ]

    def test_an_existing_talon_is_left_alone(self, api: _Api) -> None:
        """When the talon exists (a restart), nothing is created."""
        api.answers[("GET", "/v1/instances/t-1")] = (200, {"name": "t-1"})
        assert create_talon_errand(AgentClient(api.url, "tok"), "t-1", retry_for=0)
        assert [s[0] for s in api.seen] == ["GET"]

    def test_a_refusal_is_not_retried(self, api: _Api) -> None:
        """403 from the API ends the errand at once, reporting failure."""
        api.answers[("POST", "/v1/instances")] = (
            403,
            {"error": "a talon manages nothing", "kind": "Forbidden"},
        )
        assert not create_talon_errand(AgentClient(api.url, "tok"), "t-1", retry_for=30)
        assert len(api.seen) == 2

    def test_an_unreachable_api_is_retried_until_the_deadline(self) -> None:
        """Connection refused is retried, then given up."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        assert not create_talon_errand(AgentClient(f"http://127.0.0.1:{port}/v1", "t"), "t-1", retry_for=0)


class TestFromEnv:
    def test_needs_the_url_and_token_file(self, tmp_path: Path, api: _Api) -> None:
        """The client reads EYRIE_URL and the token file; without them there is no errand."""
        token = tmp_path / "token"
        token.write_text("secret\n")
        api.answers[("GET", "/v1/self")] = (200, {"name": "boss"})
        client = AgentClient.from_env({"EYRIE_URL": api.url, "EYRIE_AUTH_TOKEN_FILE": str(token)})
        assert client.me() == {"name": "boss"} and api.seen[0][2] == "Bearer secret"
        with pytest.raises(ValueError, match="EYRIE_URL"):
            AgentClient.from_env({"EYRIE_AUTH_TOKEN_FILE": str(token)})
        assert start_errands({"EYRIE_CREATE_TALON": "t-1"}) is None
        assert start_errands({}) is None
