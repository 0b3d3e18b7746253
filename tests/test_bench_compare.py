"""``bench/compare.py`` end to end on a tiny fleet: it prints every figure it promises and leaves no process
behind, also when interrupted. Figures are printed, never asserted here."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._compare.tables import FIGURES

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "bench.compare", "--quick", "--sizes", "3", "--managers", "eyried"]


@pytest.fixture
def run_parent() -> Iterator[Path]:
    """A short dir for the bench's run dir (pytest's own tmp paths would push the daemon's control socket
    past the 108 bytes of an AF_UNIX path): what the bench starts is found by this path."""
    path = Path(tempfile.mkdtemp(prefix="ebc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _bench(run_parent: Path) -> subprocess.Popen[str]:
    """The bench with its run dir under ``run_parent`` (as TMPDIR)."""
    env = {**os.environ, "TMPDIR": str(run_parent)}
    return subprocess.Popen(
        COMMAND, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _end(proc: subprocess.Popen[str]) -> None:
    """SIGTERM first, so the bench's own clean-up runs; SIGKILL only if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _marked(run_parent: Path) -> list[str]:
    """Processes whose environment or command line names ``run_parent``, described."""
    needle = str(run_parent).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for name in ("environ", "cmdline"):
            try:
                if needle in Path(f"/proc/{entry}/{name}").read_bytes():
                    found.append(f"{entry}: {Path(f'/proc/{entry}/cmdline').read_bytes()!r}")
                    break
            except OSError:
                continue
    return found


@pytest.mark.timeout(900)  # a real run: a daemon started, adopted and stopped several times
def test_quick_run_prints_every_figure_and_leaves_nothing(run_parent: Path) -> None:
    proc = _bench(run_parent)
    try:
        output, _ = proc.communicate(timeout=600)
    finally:
        _end(proc)
    assert proc.returncode == 0, output
    table = output.split("N = 3", 1)[1]
    missing = [f.label for f in FIGURES if f"| {f.label} |" not in table]
    assert not missing, f"rows missing from the N = 3 table: {missing}\n{output}"
    for heading in ("Growth", "Floors of this machine", "python -c pass", "SIGKILL → pidfd readable"):
        assert heading in output
    assert "load average" in output
    assert not _marked(run_parent)


@pytest.mark.timeout(600)
def test_interrupted_run_ends_what_it_started(run_parent: Path) -> None:
    proc = _bench(run_parent)
    seen = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        while "first start" not in seen:  # the daemon runs with its fleet: interrupt it there
            assert time.monotonic() < deadline, seen
            assert proc.poll() is None, seen
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                seen += proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        _end(proc)
    assert not _marked(run_parent), seen
