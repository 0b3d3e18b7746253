"""Each instance's confinement holds only its own Landlock call: the calls every child makes (no_new_privs,
a root daemon's ~40 capability drops) and the Landlock call's constant arguments are built once per daemon,
not once per instance."""

from __future__ import annotations

import tracemalloc

from supervisor.sandbox.child import Confiner

_INSTANCES = 200
_PER_INSTANCE_BOUND = 384  # bytes: ~280 held; ~1,080 with its own copy of the calls, ~34 KB of the drop


def test_confiners_of_a_root_daemon_share_the_capability_drop() -> None:
    Confiner(-1, drop_capabilities=True)  # the shared calls, built once
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        confiners = [Confiner(3, drop_capabilities=True) for _ in range(_INSTANCES)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(confiners) == _INSTANCES
    assert grown < _INSTANCES * _PER_INSTANCE_BOUND
