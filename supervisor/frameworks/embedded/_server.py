"""A single-threaded HTTP/1.1 responder for ``GET /health`` and ``GET /ready`` on one loopback socket.

The standard library's ``http.server`` would do, but it drags in ``http.client``, ``ssl`` and ``email``:
about 10 MiB and 60 ms more per process, paid hundreds of times over in a fleet. Answering two fixed GETs
needs only the request line, so this reads up to the end of the headers, answers and closes the connection.
One ``selectors`` loop serves every client; a client that stalls is dropped after `CLIENT_TIMEOUT`. The loop
also watches a wakeup file descriptor and returns the number of the signal that arrived on it.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time

from supervisor.frameworks.embedded._config import EmbeddedConfig

__all__ = ["CLIENT_TIMEOUT", "MAX_REQUEST_BYTES", "Gateway"]

CLIENT_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 16 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}


class _Client:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = b""
        self.deadline = time.monotonic() + CLIENT_TIMEOUT


class Gateway:
    """Listens on the configured loopback address from construction (raises `OSError` if it cannot)."""

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            # A restarted gateway may bind past old TIME_WAIT connections; a live listener still refuses it.
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind((config.host, config.port))
            self.listener.listen(128)
            self.listener.setblocking(False)
        except OSError:
            self.listener.close()
            raise
        self._selector = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}

    def serve(self, wakeup: socket.socket) -> int:
        """Answer requests until a signal number arrives on ``wakeup``; return it."""
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(wakeup, selectors.EVENT_READ)
        while True:
            timeout = min((c.deadline for c in self._clients.values()), default=None)
            if timeout is not None:
                timeout = max(timeout - time.monotonic(), 0.0)
            for key, events in self._selector.select(timeout):
                if key.fileobj is wakeup:
                    received = wakeup.recv(64)
                    if not received:  # its other end is gone: no signal can ever arrive again
                        raise RuntimeError("the signal wakeup socket was closed")
                    return received[0]
                elif key.fileobj is self.listener:
                    self._accept()
                else:
                    client = self._clients.get(key.fd)
                    if client is not None:
                        self._service(client, events)
            self._expire()

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        self._selector.close()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: leave the connection queued and carry on serving
                return
            sock.setblocking(False)
            client = _Client(sock)
            self._clients[sock.fileno()] = client
            self._selector.register(sock, selectors.EVENT_READ)

    def _service(self, client: _Client, events: int) -> None:
        try:
            if events & selectors.EVENT_READ and not client.outbox:
                self._read(client)
            if client.outbox and events & selectors.EVENT_WRITE:
                self._write(client)
        except OSError:
            self._drop(client)

    def _read(self, client: _Client) -> None:
        chunk = client.sock.recv(4096)
        if not chunk:
            self._drop(client)
            return
        client.inbox += chunk
        end = client.inbox.find(b"\r\n\r\n")
        if end < 0:
            end = client.inbox.find(b"\n\n")
        if end >= 0:
            self._respond(client, self._answer(bytes(client.inbox[:end])))
        elif len(client.inbox) > MAX_REQUEST_BYTES:
            self._respond(client, (431, {"error": "request too large"}, False))

    def _answer(self, head: bytes) -> tuple[int, dict[str, object], bool]:
        """Status, JSON body and whether the method was HEAD, for one request head."""
        request_line = head.split(b"\n", 1)[0].decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, {"error": "bad request line"}, False
        method, target = parts[0], parts[1]
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"method {method} not allowed"}, False
        path = target.split("?", 1)[0]
        if path == "/health":
            return (
                200,
                {
                    "status": "ok",
                    "pid": os.getpid(),
                    "uptime_seconds": round(time.monotonic() - self.started, 3),
                    "name": self.config.name,
                },
                head_only,
            )
        if path == "/ready":
            return 200, {"status": "ready", "name": self.config.name}, head_only
        return 404, {"error": "not found", "path": path}, head_only

    def _respond(self, client: _Client, answer: tuple[int, dict[str, object], bool]) -> None:
        status, body, head_only = answer
        payload = json.dumps(body).encode()
        headers = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: close\r\n" + ("Allow: GET, HEAD\r\n" if status == 405 else "") + "\r\n"
        ).encode("latin-1")
        client.outbox = headers if head_only else headers + payload
        self._selector.modify(client.sock, selectors.EVENT_WRITE)
        self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self._drop(client)

    def _expire(self) -> None:
        now = time.monotonic()
        for client in [c for c in self._clients.values() if c.deadline <= now]:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.sock.fileno(), None) is not None:
            self._selector.unregister(client.sock)
        client.sock.close()
