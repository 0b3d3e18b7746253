"""The supervisord anchor: supervisor 4.x from PyPI in a venv of its own (its import package is also named
``supervisor``, so it never enters ours), driven over XML-RPC on a Unix socket."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

__all__ = ["Supervisord", "unavailable_reason", "venv_dir"]

_REQUIREMENT = "supervisor>=4,<5"


def venv_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "eyrie-bench" / "supervisor4-venv"


def _ensure_venv() -> Path:
    """The venv's ``supervisord``, made on first use and reused."""
    venv = venv_dir()
    binary = venv / "bin" / "supervisord"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", _REQUIREMENT], check=True, capture_output=True
        )
    return binary


def unavailable_reason() -> str | None:
    try:
        _ensure_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (
            exc.stderr.decode(errors="replace")[-300:]
            if isinstance(exc, subprocess.CalledProcessError)
            else exc
        )
        return f"could not install {_REQUIREMENT} into {venv_dir()}: {detail}"
    return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: object) -> http.client.HTTPConnection:
        return _UnixConnection(self._path)


def config_text(root: Path, n: int) -> str:
    return f"""\
[unix_http_server]
file={root}/supervisor.sock

[supervisord]
nodaemon=true
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
childlogdir={root}/logs
minfds=16384
minprocs=4096

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command=sleep infinity
process_name=%(program_name)s-%(process_num)04d
numprocs={n}
autostart=true
autorestart=true
startsecs=0
startretries=1000000
"""


class Supervisord:
    """supervisord with N ``sleep`` programs; its launch is the start command."""

    name = "supervisord"

    def __init__(self, root: Path, n: int, env: dict[str, str]) -> None:
        self.root = root / "supervisord"
        (self.root / "logs").mkdir(parents=True)
        self.conf = self.root / "supervisord.conf"
        self.conf.write_text(config_text(self.root, n))
        self.env = env
        self.binary = _ensure_venv()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def launch(self) -> int:
        with (self.root / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=self.env,
                cwd=self.root,
            )
        return self.proc.pid

    def rpc(self) -> xmlrpc.client.ServerProxy:
        """A proxy on the Unix socket, once supervisord answers."""
        path = str(self.root / "supervisor.sock")
        deadline = time.monotonic() + 30
        while True:
            proxy = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(path))
            try:
                proxy.supervisor.getState()
                return proxy
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def stop_fleet(self) -> None:
        self.rpc().supervisor.stopAllProcesses()

    def log_tail(self) -> str:
        return _tail(self.root / "stderr.log") + "\n" + _tail(self.root / "supervisord.log")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
