"""What the hostile agent tries, one function per kind of attempt, each returning an `Outcome`.

Standard library only: the agent runs confined, where little beyond the interpreter can be read. No
attempt prints or keeps what it read (a token stays out of the report); a write opens the file for writing
and writes nothing, since the open is what a sandbox refuses.

An outcome is ``refused`` when the system said no (``EPERM``/``EACCES``, an HTTP 401/403/409/429, a server
that hung up without answering), ``succeeded`` when the attempt did what it set out to, and ``failed`` for
anything else (no such file or process, nobody listening): a typo in a test never passes for a refusal.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "Outcome",
    "api_call",
    "bind_port",
    "escaped",
    "own_file",
    "read_environ",
    "read_file",
    "send_signal",
    "unix_get",
    "write_file",
]

Result = Literal["succeeded", "refused", "failed"]

_REFUSING_ERRNOS = frozenset({errno.EPERM, errno.EACCES})
_REFUSING_STATUSES = frozenset({401, 403, 409, 429})
_READ_LIMIT = 1 << 20
_TIMEOUT = 5.0


@dataclass(frozen=True)
class Outcome:
    """One attempt and how it ended, written as one JSON line of the report."""

    attempt: str
    target: str
    outcome: Result
    variant: str = "direct"  # "escape": from a grandchild in a new session with an empty environment
    errno: int | None = None
    error: str | None = None  # the errno's name, or the exception's
    http_status: int | None = None
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Outcome:
        return cls(**json.loads(line))


def _from_os_error(attempt: str, target: str, exc: OSError) -> Outcome:
    code = exc.errno
    return Outcome(
        attempt,
        target,
        "refused" if code in _REFUSING_ERRNOS else "failed",
        errno=code,
        error=errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__,
        detail=exc.strerror or str(exc),
    )


def _from_status(attempt: str, target: str, status: int, detail: str = "") -> Outcome:
    if 200 <= status < 300:
        result: Result = "succeeded"
    else:
        result = "refused" if status in _REFUSING_STATUSES else "failed"
    return Outcome(attempt, target, result, http_status=status, detail=detail)


def read_file(path: str) -> Outcome:
    """Read ``path`` (another instance's token, say)."""
    try:
        with open(path, "rb") as file:
            size = len(file.read(_READ_LIMIT))
    except OSError as exc:
        return _from_os_error("read-file", path, exc)
    return Outcome("read-file", path, "succeeded", detail=f"read {size} bytes")


def read_environ(pid: int) -> Outcome:
    """Read ``/proc/<pid>/environ``; the detail says whether it held a token variable, never its value."""
    target = f"/proc/{pid}/environ"
    try:
        with open(target, "rb") as file:
            data = file.read(_READ_LIMIT)
    except OSError as exc:
        return _from_os_error("read-environ", target, exc)
    names = sorted({v.split(b"=", 1)[0].decode(errors="replace") for v in data.split(b"\0") if b"=" in v})
    tokens = [n for n in names if "TOKEN" in n or "KEY" in n or "SECRET" in n]
    return Outcome("read-environ", target, "succeeded", detail=f"{len(names)} variables; secrets: {tokens}")


def write_file(path: str) -> Outcome:
    """Open an existing ``path`` for writing (``fleet.yaml``, ``instance.json``, a log file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError as exc:
        return _from_os_error("write-file", path, exc)
    os.close(fd)
    return Outcome("write-file", path, "succeeded", detail="opened for writing")


def send_signal(pid: int, signum: int = signal.SIGCONT) -> Outcome:
    """Send ``signum`` to ``pid`` (SIGCONT by default: delivered, it changes nothing)."""
    target = f"{pid}:{signal.Signals(signum).name}"
    try:
        os.kill(pid, signum)
    except OSError as exc:
        return _from_os_error("signal", target, exc)
    return Outcome("signal", target, "succeeded")


def unix_get(address: str, path: str = "/v1/status") -> Outcome:
    """Connect to a Unix socket (``@name`` for an abstract one) and ``GET path``."""
    attempt = "abstract-get" if address.startswith("@") else "unix-get"
    raw = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT)
        try:
            sock.connect(raw)
        except OSError as exc:
            return _from_os_error(attempt, address, exc)
        answer = b""
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: eyried\r\nConnection: close\r\n\r\n".encode())
            while chunk := sock.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # hung up on us: judged by what it said before, if anything
        except OSError as exc:
            return _from_os_error(attempt, address, exc)
    head = answer.split(b"\r\n", 1)[0].split()
    if len(head) < 2 or not head[1].isdigit():
        return Outcome(attempt, address, "refused", detail="connected; the server hung up without answering")
    return _from_status(attempt, address, int(head[1]), _body(answer))


def _body(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[2][:300].decode(errors="replace")


def bind_port(port: int, host: str = "127.0.0.1") -> Outcome:
    """Bind a TCP port (another agent's), and let it go at once."""
    target = f"{host}:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return _from_os_error("bind-port", target, exc)
    return Outcome("bind-port", target, "succeeded")


def api_call(base_url: str, token_file: str, method: str, path: str, body: str = "") -> Outcome:
    """``method base_url+path`` with ``Authorization: Bearer`` and the token read from ``token_file``."""
    target = f"{method} {path}"
    try:
        token = Path(token_file).read_text().strip()
    except OSError as exc:
        return replace(_from_os_error("api", target, exc), detail=f"token file {token_file}: {exc.strerror}")
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=body.encode() if body else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            return _from_status("api", target, response.status, response.read(300).decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return _from_status("api", target, exc.code, exc.read(300).decode(errors="replace"))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            return _from_os_error("api", target, exc.reason)
        return Outcome("api", target, "failed", error="URLError", detail=str(exc.reason))
    except OSError as exc:
        return _from_os_error("api", target, exc)


def own_file(directory: str, attempt: str) -> Outcome:
    """Its own job: write a file in ``directory`` (its workspace, its ``TMPDIR``) and read it back."""
    path = os.path.join(directory, f"hostile-own-{os.getpid()}.txt")
    text = "written by the hostile agent\n"
    try:
        with open(path, "w") as file:
            file.write(text)
        with open(path) as file:
            back = file.read()
        os.unlink(path)
    except OSError as exc:
        return _from_os_error(attempt, path, exc)
    if back != text:
        return Outcome(attempt, path, "failed", detail="read back something else")
    return Outcome(attempt, path, "succeeded")


def escaped(attempt: Callable[[], Outcome]) -> Outcome:
    """``attempt`` made by a grandchild that left our session (double fork, ``setsid``) with an empty
    environment: what an agent does to look like no agent at all."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # pragma: no cover - runs in the forked children
        os.close(read_end)
        try:
            os.setsid()
            if os.fork() == 0:
                os.environ.clear()
                os.write(write_end, attempt().to_json().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.read().decode(errors="replace")
    if not line:
        return Outcome(
            "escape", "grandchild", "failed", variant="escape", detail="the grandchild said nothing"
        )
    return replace(Outcome.from_json(line), variant="escape")
