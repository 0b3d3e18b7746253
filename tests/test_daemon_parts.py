"""The daemon's small pure parts (the stat-keyed cache, the signal loop, the add request's declaration) and
the shipped testing package."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import supervisor.testing
from supervisor.control.schema import AddRequest
from supervisor.daemon._signals import next_ending
from supervisor.daemon._statcache import StatCache
from supervisor.fleet import InstanceDecl
from supervisor.models import HierarchyRole
from supervisor.testing import faulty


class TestStatCache:
    def test_value_is_kept_while_the_file_is_unchanged(self, tmp_path: Path) -> None:
        """A second look at an unchanged file returns the kept value without computing again."""
        path = tmp_path / "f"
        path.write_text("one")
        cache = StatCache[str]()
        calls: list[str] = []

        def compute() -> str:
            calls.append("x")
            return path.read_text()

        assert cache.get(path, compute) == "one"
        assert cache.get(path, compute) == "one"
        assert calls == ["x"]

    def test_changed_file_is_computed_again(self, tmp_path: Path) -> None:
        """A file whose size or mtime changed gets a fresh value."""
        path = tmp_path / "f"
        path.write_text("one")
        cache = StatCache[str]()
        cache.get(path, path.read_text)
        path.write_text("three")
        assert cache.get(path, path.read_text) == "three"

    def test_replaced_file_is_computed_again(self, tmp_path: Path) -> None:
        """A file renamed over the old one (a new inode, same size and mtime) gets a fresh value."""
        path, other = tmp_path / "f", tmp_path / "g"
        path.write_text("one")
        other.write_text("two")
        st = path.stat()
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        cache = StatCache[str]()
        cache.get(path, path.read_text)
        other.rename(path)
        assert cache.get(path, path.read_text) == "two"

    def test_missing_file_gives_none(self, tmp_path: Path) -> None:
        """A path that cannot be stat'ed gives None and computes nothing."""
        cache = StatCache[str]()
        assert cache.get(tmp_path / "absent", lambda: pytest.fail("computed")) is None

    def test_paths_are_kept_apart(self, tmp_path: Path) -> None:
        """Each path has its own value."""
        a, b = tmp_path / "a", tmp_path / "b"
        a.write_text("A")
        b.write_text("B")
        cache = StatCache[str]()
        assert (cache.get(a, a.read_text), cache.get(b, b.read_text)) == ("A", "B")


async def _signals(*signums: int) -> AsyncIterator[int]:
    for signum in signums:
        yield signum


@pytest.mark.anyio
class TestNextEnding:
    async def test_sighup_reloads_and_the_next_signal_ends(self) -> None:
        """Every SIGHUP before the ending signal asks for one reload; the ending signal is returned."""
        reloads: list[int] = []
        signals = _signals(signal.SIGHUP, signal.SIGHUP, signal.SIGUSR2, signal.SIGTERM)
        ending = await next_ending(signals, lambda: reloads.append(1))
        assert ending is signal.SIGUSR2
        assert reloads == [1, 1]

    async def test_receiver_that_ends_is_an_error(self) -> None:
        """A signal receiver that runs dry is a bug, not a silent stop."""
        with pytest.raises(AssertionError):
            await next_ending(_signals(signal.SIGHUP), lambda: None)


class TestAddRequestDeclaration:
    def test_every_declared_field_is_carried(self) -> None:
        """The request's fields become the declaration's; ``enable`` is its autostart."""
        request = AddRequest(
            name="coder-cat",
            framework="zeroclaw",
            role=HierarchyRole.TALON,
            persona="engineer",
            project="apollo",
            parent="lead-leo",
            model="m1",
            enable=False,
            start=True,
        )
        assert request.declaration() == InstanceDecl(
            name="coder-cat",
            framework="zeroclaw",
            role=HierarchyRole.TALON,
            persona="engineer",
            project="apollo",
            parent="lead-leo",
            model="m1",
            autostart=False,
        )

    def test_defaults_match_the_fleet_files(self) -> None:
        """A bare request declares what a bare fleet-file entry does."""
        assert AddRequest(name="solo").declaration() == InstanceDecl(name="solo")


class TestTestingPackage:
    def test_every_exported_name_resolves(self) -> None:
        """Each name in ``supervisor.testing.__all__`` loads from its private module."""
        for name in supervisor.testing.__all__:
            assert getattr(supervisor.testing, name) is not None

    def test_faulty_runs_the_shipped_agent(self, tmp_path: Path) -> None:
        """The argv from `faulty` runs the packaged agent, from any directory."""
        proc = subprocess.run(
            faulty("--crash-on-start", "3"), cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 3, proc.stderr
        assert proc.stdout.startswith("faulty ")
        assert faulty()[:2] == (sys.executable, "-m")
