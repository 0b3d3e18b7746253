"""The bench's side of `bench._compare.client_proc`: timed client loops and an SSE client, each a process of
its own, so that no figure they report holds the bench's own threads."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import IO

from bench._compare.eyried import Eyried

__all__ = ["EventClient", "TimedClient"]

_START_TIMEOUT = 60.0


class _Child:
    """One ``client_proc`` process; ended (stdin closed, then killed if it lingers) by `close`."""

    def __init__(self, daemon: Eyried, what: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._compare.client_proc", what, str(daemon.home.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=daemon.env,
            text=True,
        )
        try:
            ready = self._read()
            if ready != "ready":
                raise RuntimeError(f"the {what} client did not start: {ready}")
        except BaseException:
            self.close()
            raise

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def _read(self) -> object:
        out: IO[str] | None = self._proc.stdout
        assert out is not None
        line = out.readline()
        if not line:
            raise RuntimeError(f"the client exited ({self._proc.wait()}) without an answer")
        return json.loads(line)

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class TimedClient(_Child):
    """``eyriectl ps`` (``what="ps"``) or ``GET /v1/instances`` (``"get"``) in a loop, timed by its own
    process between `start` and `stop`; ``what="ps,pass,version"`` takes turns with the floors measured the
    same way (`python -c pass`, ``eyriectl --version``), whose times gather in `others`."""

    def __init__(self, daemon: Eyried, what: str) -> None:
        super().__init__(daemon, what)
        self.primary = what.split(",")[0]
        self.others: dict[str, list[float]] = {}

    def start(self) -> None:
        self._send("run")

    def stop(self) -> list[float]:
        """The wall time of each run of the primary command since `start`, ms; the run in flight is finished
        first."""
        self._send("stop")
        times = self._read()
        assert isinstance(times, list)
        for name, ms in times:
            if name != self.primary:
                self.others.setdefault(name, []).append(float(ms))
        return [float(ms) for name, ms in times if name == self.primary]

    def __enter__(self) -> TimedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventClient(_Child):
    """An SSE client open on the daemon's event stream: the pids its ``running`` transitions named."""

    def __init__(self, daemon: Eyried) -> None:
        super().__init__(daemon, "events")

    def missing(self, expected: set[int]) -> int:
        """How many of ``expected`` the stream has not reported running, after waiting up to 10 s."""
        self._send(json.dumps(sorted(expected)))
        count = self._read()
        assert isinstance(count, int)
        return count

    def __enter__(self) -> EventClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
