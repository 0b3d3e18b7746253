"""``max_memory`` and ``memory_grace`` in the fleet file: the sizes people write, refusals at their line, the
instance's keys over the defaults', a changed limit being a policy change; the sampler's view of a real
process tree, and the figures it works out from two samples."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from supervisor.engine._usage import Usage, tree_usage
from supervisor.engine.procfs import CLK_TCK
from supervisor.engine.resources import ResourceSample
from supervisor.errors import FleetFileError
from supervisor.fleet import diff_fleets, parse_fleet
from supervisor.models import format_size, parse_size
from supervisor.policies import MemoryPolicy
from tests._daemon import wait_for


def _fleet(defaults: str = "", instance: str = "") -> str:
    text = "version: 1\n"
    if defaults:
        text += "defaults:\n" + "".join(f"  {line}\n" for line in defaults.splitlines())
    text += "instances:\n  - name: a\n" + "".join(f"    {line}\n" for line in instance.splitlines())
    return text


class TestSizes:
    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("512MiB", 512 * 1024**2),
            ("1.5GiB", 3 * 1024**3 // 2),
            ("2G", 2 * 10**9),
            ("300 MB", 300 * 10**6),
            ("64mib", 64 * 1024**2),
            ("1048576", 1024**2),
            (2097152, 2 * 1024**2),
        ],
    )
    def test_accepted_forms(self, text: str | int, size: int) -> None:
        """Binary (KiB, MiB, GiB) and decimal (K, M, G) units, with or without B, or a number of bytes."""
        assert parse_size(text) == size

    @pytest.mark.parametrize("text", ["lots", "-1", "1.5 XiB", "", "12 parsecs", True, 1.5, None])
    def test_refused_forms(self, text: object) -> None:
        """Anything else is refused, saying what a size looks like."""
        with pytest.raises(ValueError, match=r"use e\.g\. 512MiB, 1\.5GiB, 2G or a number of bytes"):
            parse_size(text)

    def test_shown_in_binary_units(self) -> None:
        """Sizes are shown to one decimal in binary units, a whole number without the decimal."""
        assert [format_size(n) for n in (512, 64 * 1024**2, 1825361100, 3 * 1024**4)] == [
            "512 B", "64 MiB", "1.7 GiB", "3 TiB",
        ]  # fmt: skip

    def test_reason_names_limit_and_usage(self) -> None:
        """The reason a tree is ended says the limit and what it held."""
        policy = MemoryPolicy(max_memory="1.5GiB")
        assert policy.exceeded(1825361100) == "memory limit 1.5 GiB exceeded (1.7 GiB)"
        assert policy.exceeded(1024**3) == ""
        assert MemoryPolicy().exceeded(10**15) == ""


class TestFleetKeys:
    def test_instance_keys_over_defaults(self) -> None:
        """An instance's max_memory and memory_grace replace the defaults'; others get the defaults'."""
        text = _fleet("max_memory: 1GiB\nmemory_grace: 5", "max_memory: 2GiB").replace(
            "instances:\n", "instances:\n  - name: b\n"
        )
        resolved = parse_fleet(text, path="fleet.yaml").resolve_all()
        assert resolved["a"].memory == MemoryPolicy(max_memory=2 * 1024**3, grace=5)
        assert resolved["b"].memory == MemoryPolicy(max_memory=1024**3, grace=5)

    def test_no_limit_by_default(self) -> None:
        """Without the keys there is no limit, and the grace is 3 samples."""
        resolved = parse_fleet(_fleet(), path="fleet.yaml").resolve_all()
        assert resolved["a"].memory == MemoryPolicy(max_memory=None, grace=3)

    @pytest.mark.parametrize(
        ("instance", "key", "reason"),
        [
            ("max_memory: lots", "instances[0].max_memory", "not a size: 'lots'"),
            ("max_memory: 10KiB", "instances[0].max_memory", "greater than or equal to 1048576"),
            ("memory_grace: 0", "instances[0].memory_grace", "greater than or equal to 1"),
        ],
    )
    def test_refused_at_its_line(self, instance: str, key: str, reason: str) -> None:
        """A bad value is an error naming the file, its line and its key."""
        with pytest.raises(FleetFileError) as info:
            parse_fleet(_fleet(instance=instance), path="fleet.yaml")
        assert (info.value.line, info.value.key) == (4, key)
        assert reason in info.value.reason
        assert str(info.value).startswith(f"fleet.yaml:4: {key}: ")

    def test_changed_limit_is_a_policy_change(self) -> None:
        """A reload that changes only the limit applies live: a policy change, not a restart."""
        before = parse_fleet(_fleet(instance="max_memory: 1GiB"), path="fleet.yaml")
        after = parse_fleet(_fleet(instance="max_memory: 2GiB\nmemory_grace: 2"), path="fleet.yaml")
        diff = diff_fleets(before, after)
        assert (diff.policy_changed, diff.process_changed) == (("a",), ())


class TestTreeUsage:
    def test_counts_every_descendant(self) -> None:
        """A process with two children and a grandchild is a tree of four, its RSS summed."""
        script = (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60); os._exit(0)\n"
            "    time.sleep(60); os._exit(0)\n"
            "if os.fork() == 0:\n"
            "    time.sleep(60); os._exit(0)\n"
            "time.sleep(60)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        try:
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                raw = f.read()
            start = int(raw[raw.rindex(b")") + 2 :].split()[19])

            def whole() -> list[Usage]:
                found = tree_usage(proc.pid, start)
                return found if len(found) == 4 else []

            tree = wait_for(whole, 10, "4 processes")
            assert tree[0].pid == proc.pid
            assert all(u.rss_bytes > 0 for u in tree)
            assert tree_usage(proc.pid, start + 1) == []  # another process under the same pid: not ours
        finally:
            os.killpg(proc.pid, 9)
            proc.wait()
        wait_for(lambda: tree_usage(proc.pid, start) == [], 10, "the tree gone")

    def test_cpu_time_is_counted(self) -> None:
        """A busy process's CPU seconds grow between two reads."""
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                raw = f.read()
            start = int(raw[raw.rindex(b")") + 2 :].split()[19])
            first = tree_usage(proc.pid, start)[0].cpu_seconds
            deadline = time.monotonic() + 10
            while tree_usage(proc.pid, start)[0].cpu_seconds <= first:
                assert time.monotonic() < deadline, "no CPU time counted"
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait()


class TestSample:
    def test_figures_from_two_samples(self) -> None:
        """CPU percent is the tree's ticks over the interval; a process new since the sample before counts
        from now; memory and CPU seconds are sums over the live tree."""
        ticks = CLK_TCK  # one second of CPU time
        before = [_usage(10, cpu_ticks=ticks, rss=1000), _usage(11, cpu_ticks=ticks, rss=2000)]
        now = [_usage(10, cpu_ticks=2 * ticks, rss=1500), _usage(12, cpu_ticks=5 * ticks, rss=500)]
        sample = ResourceSample(now, before, elapsed=2.0)
        assert sample.cpu_percent == 50.0
        assert sample.memory_bytes == 2000
        assert sample.cpu_seconds == 7.0
        assert [(p.pid, p.cpu_percent) for p in sample.processes] == [(10, 50.0), (12, None)]

    def test_first_sample_has_no_rate(self) -> None:
        """One sample gives memory and CPU seconds but no percentage."""
        sample = ResourceSample([_usage(10, cpu_ticks=CLK_TCK, rss=4096)], None, elapsed=0.0)
        assert (sample.cpu_percent, sample.memory_bytes, sample.cpu_seconds) == (None, 4096, 1.0)


def _usage(pid: int, *, cpu_ticks: int, rss: int) -> Usage:
    return Usage(pid=pid, ppid=1, start_ticks=0, cpu_ticks=cpu_ticks, rss_bytes=rss, threads=1)
