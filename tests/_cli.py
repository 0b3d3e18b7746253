"""Run the installed ``eyriectl`` as a real subprocess: one call, several at once, or one that follows."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

EYRIECTL = Path(sys.executable).parent / "eyriectl"
OFFLINE = "eyried is not running; the change applies at its next start"


def eyriectl(
    home: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``eyriectl --home HOME ARGS`` to the end; output captured as text."""
    return subprocess.run(
        [str(EYRIECTL), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )


def eyriectl_many(
    home: Path,
    calls: Sequence[Sequence[str]],
    *,
    program: Sequence[str] = (str(EYRIECTL),),
    timeout: float = 60,
) -> list[subprocess.CompletedProcess[str]]:
    """Independent invocations at once (each is a fresh interpreter, so this saves most of their start-up).

    ``program`` is the command line that runs ``eyriectl`` (e.g. one that runs it as another user).
    """
    procs = [
        subprocess.Popen(
            [*program, "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for args in calls
    ]
    results = []
    try:
        for args, proc in zip(calls, procs, strict=True):
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``result`` if it exited 0, else an assertion error showing what it said."""
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result


def ps(home: Path) -> dict[str, dict[str, Any]]:
    """``eyriectl ps --json`` by name."""
    rows = json.loads(ok(eyriectl(home, "ps", "--json")).stdout)
    return {row["name"]: row for row in rows}


class Follower:
    """A running ``eyriectl ... -f``: read its output as it comes, end it with Ctrl-C."""

    def __init__(self, home: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(EYRIECTL), "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.output = ""

    def read_until(self, *needles: str, start: int = 0, timeout: float = 20.0) -> str:
        """Wait until each of ``needles`` is in the output from offset ``start`` on; returns all of it."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while not all(needle in self.output[start:] for needle in needles):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {needles!r}; printed so far:\n{self.output}")
                if selector.select(left):
                    chunk = self.proc.stdout.read(65536)
                    if not chunk:
                        raise AssertionError(f"{self.proc.args!r} ended; printed:\n{self.output}")
                    self.output += chunk.decode(errors="replace")
        return self.output

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C, then its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def following(home: Path, *args: str) -> Iterator[Follower]:
    follower = Follower(home, *args)
    try:
        yield follower
    finally:
        follower.close()
