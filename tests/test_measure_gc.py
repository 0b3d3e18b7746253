"""The daemon settles its heap (`supervisor.daemon._gc`): once its fleet is at rest it collects and freezes
what the start-up built, and after a reload it looks again at what it froze. Frozen or not, the fleet behaves
the same; what an earlier settling froze is still freed once it is garbage and a reload has come."""

from __future__ import annotations

import gc
import os
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.daemon._gc import settle_heap
from tests._cli import eyriectl, ok, ps
from tests._daemon import embedded, fleet_yaml, logged_order, pid_alive, running_daemon, wait_for


class _Node:
    """A cycle's member: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap is as it was for the next test."""
    yield
    gc.unfreeze()


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


class TestSettleHeap:
    def test_freezes_what_survives_and_frees_what_does_not(self, unfrozen: None) -> None:
        garbage = _cycle()
        settle_heap(unfreeze=False)
        assert garbage() is None
        assert gc.get_freeze_count() > 0

    def test_a_settling_that_unfreezes_frees_a_frozen_cycle(self, unfrozen: None) -> None:
        kept = [_Node()]
        kept[0].other = _Node()
        kept[0].other.other = kept[0]
        cycle = weakref.ref(kept[0])
        settle_heap(unfreeze=False)
        kept.clear()  # garbage now, but frozen: the collector does not look at it
        gc.collect()
        assert cycle() is not None
        settle_heap(unfreeze=True)
        assert cycle() is None


def _settlings(log: str) -> int:
    return logged_order(log, "heap_settled").count("heap_settled")


class TestDaemonAfterSettling:
    def test_reloads_after_settling_add_remove_and_respawn(self, tmp_path: Path) -> None:
        """Settled at ``fleet ready`` and again after each reload, the daemon adds, removes and respawns as
        ever."""
        fleet = fleet_yaml(embedded("alpha"), embedded("beta"))
        with running_daemon(tmp_path, fleet, "--log-level", "debug") as d:
            d.wait_running("alpha", "beta")
            wait_for(lambda: _settlings(d.log()) >= 1, 30, "the heap settled at fleet ready")
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("gamma")))
            ok(eyriectl(d.home, "reload"))
            gamma = d.wait_running("gamma")["gamma"]
            wait_for(lambda: _settlings(d.log()) >= 2, 30, "the heap settled after the reload")
            assert sorted(ps(d.home)) == ["alpha", "gamma"]
            os.kill(gamma, signal.SIGKILL)
            assert pid_alive(d.wait_new_pid("gamma", gamma)["pid"])
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("gamma"), embedded("delta")))
            ok(eyriectl(d.home, "reload"))
            d.wait_running("delta")
            wait_for(lambda: _settlings(d.log()) >= 3, 30, "the heap settled after the second reload")
            assert sorted(ps(d.home)) == ["alpha", "delta", "gamma"]
