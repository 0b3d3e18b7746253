"""A small client of eyried's agent API, and the one errand the embedded agent runs with it: create a talon.

The gateway imports this module only when it has an errand (``EYRIE_CREATE_TALON`` is set): ``http.client``
costs every process that loads it memory and start-up time, and most gateways never call the daemon.

The API is at ``$EYRIE_URL``; the agent's token is the content of ``$EYRIE_AUTH_TOKEN_FILE``.
``EYRIE_CREATE_TALON=[project/]name`` makes the agent, once started, ask for that talon: if it exists
already nothing is done, so restarts create it once. Failures to reach the daemon are retried for a while;
refusals (403, 409, 422, 429) are reported on stderr and not retried.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

__all__ = ["AgentApiError", "AgentClient", "create_talon_errand", "start_errands"]

CREATE_TALON_VAR = "EYRIE_CREATE_TALON"
_TIMEOUT = 60.0  # a creation waits for the daemon's fleet lock, held while the fleet starts
_RETRY_FOR = 120.0
_MAX_ANSWER = 1 << 20


class AgentApiError(Exception):
    """The API answered with an error: ``status`` and the ``kind`` of the control API's error shape."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status = status
        self.kind = kind


class AgentClient:
    """Calls to ``url`` (``http://127.0.0.1:PORT/v1``) as the agent whose token is ``token``."""

    def __init__(self, url: str, token: str, *, timeout: float = _TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"EYRIE_URL {url!r} is not an http://host:port/... URL")
        self._host, self._port, self._base = parts.hostname, parts.port, parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AgentClient:
        """The client ``EYRIE_URL`` and ``EYRIE_AUTH_TOKEN_FILE`` describe; `ValueError` when either is
        missing."""
        env = dict(os.environ) if env is None else env
        url, token_file = env.get("EYRIE_URL", ""), env.get("EYRIE_AUTH_TOKEN_FILE", "")
        if not url or not token_file:
            raise ValueError("EYRIE_URL and EYRIE_AUTH_TOKEN_FILE must be set (is the agent API off?)")
        with open(token_file, encoding="utf-8") as f:
            return cls(url, f.read(4096).strip())

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        """One request; the decoded JSON answer (None for 204), or `AgentApiError`."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, self._base + path, body=payload, headers=headers)
            answer = connection.getresponse()
            data = answer.read(_MAX_ANSWER)
        finally:
            connection.close()
        decoded = json.loads(data) if data else None
        if answer.status >= 400:
            error = decoded if isinstance(decoded, dict) else {}
            raise AgentApiError(answer.status, str(error.get("kind", "")), str(error.get("error", "")))
        return decoded

    def me(self) -> object:
        return self.call("GET", "/self")

    def note(self, text: str) -> object:
        return self.call("POST", "/self/note", {"note": text})

    def get(self, name: str) -> object:
        return self.call("GET", f"/instances/{urllib.parse.quote(name, safe='')}")

    def create(self, name: str, *, role: str = "talon", project: str = "") -> object:
        return self.call("POST", "/instances", {"name": name, "role": role, "project": project})


def _log(message: str) -> None:
    print(f"embedded: {message}", file=sys.stderr, flush=True)


def create_talon_errand(client: AgentClient, spec: str, *, retry_for: float = _RETRY_FOR) -> bool:
    """Create the talon ``spec`` (``[project/]name``) unless it exists; True when it exists afterwards."""
    project, _, name = spec.rpartition("/")
    deadline = time.monotonic() + retry_for
    while True:
        try:
            try:
                client.get(name)
                _log(f"talon {name!r} exists already")
                return True
            except AgentApiError as exc:
                if exc.status != 404:
                    raise
            client.create(name, project=project)
            _log(f"created talon {name!r}" + (f" in project {project!r}" if project else ""))
            client.note(f"created talon {name}")
            return True
        except AgentApiError as exc:
            if exc.kind == "NameExists":
                return True
            if exc.status < 500:
                _log(f"creating talon {name!r} refused: {exc}")
                return False
            failure = str(exc)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failure = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            _log(f"creating talon {name!r} gave up: {failure}")
            return False
        time.sleep(1.0)


def start_errands(env: dict[str, str] | None = None) -> threading.Thread | None:
    """Run the errands the environment asks for in a daemon thread (the gateway serves meanwhile)."""
    env = dict(os.environ) if env is None else env
    spec = env.get(CREATE_TALON_VAR, "")
    if not spec:
        return None
    try:
        client = AgentClient.from_env(env)
    except (OSError, ValueError) as exc:
        _log(f"cannot reach the agent API for {CREATE_TALON_VAR}: {exc}")
        return None
    thread = threading.Thread(target=create_talon_errand, args=(client, spec), daemon=True)
    thread.start()
    return thread
