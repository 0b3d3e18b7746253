"""The engine's log size checks: a quiet log is looked at less often (an idle fleet does not stat every log
each second), a growing or nearly full one on every check, and an overfull log is found within the bound."""

from __future__ import annotations

from supervisor.engine._log_checks import QUIET_CHECKS, LogChecks
from supervisor.engine.runtime import InstanceRuntime
from supervisor.paths import Home
from supervisor.policies import LogPolicy
from supervisor.store import Store
from supervisor.testing import make_runtime

_LIMIT = 4096


def _runtime(home: Home, size: int) -> InstanceRuntime:
    rt = make_runtime(Store(home), "logged", ["true"], logs=LogPolicy(max_bytes=_LIMIT))
    rt.log_path.write_bytes(b"x" * size)
    return rt


def _checks_until_over(checks: LogChecks, rt: InstanceRuntime, first_tick: int) -> int:
    """Checks, one per tick from ``first_tick``, until one reports the log over its limit."""
    for tick in range(first_tick, first_tick + 10 * QUIET_CHECKS):
        if checks.over_limit(rt, float(tick)):
            return tick - first_tick + 1
    raise AssertionError("the overfull log was never reported")


def test_a_log_that_stayed_quiet_is_found_overfull_later_but_within_the_bound(home: Home) -> None:
    rt = _runtime(home, 100)
    checks = LogChecks(1.0)
    for tick in range(50):
        assert not checks.over_limit(rt, float(tick))
    rt.log_path.write_bytes(b"x" * _LIMIT)
    needed = _checks_until_over(checks, rt, 50)
    assert 1 < needed <= QUIET_CHECKS


def test_a_growing_log_is_looked_at_on_every_check(home: Home) -> None:
    rt = _runtime(home, 100)
    checks = LogChecks(1.0)
    for tick in range(50):
        with rt.log_path.open("ab") as log:
            log.write(b"y")
        assert not checks.over_limit(rt, float(tick))
    rt.log_path.write_bytes(b"x" * _LIMIT)
    assert _checks_until_over(checks, rt, 50) == 1


def test_a_log_past_half_its_limit_is_looked_at_on_every_check(home: Home) -> None:
    rt = _runtime(home, _LIMIT // 2)
    checks = LogChecks(1.0)
    for tick in range(50):
        assert not checks.over_limit(rt, float(tick))
    rt.log_path.write_bytes(b"x" * _LIMIT)
    assert _checks_until_over(checks, rt, 50) == 1


def test_instances_no_longer_supervised_are_forgotten(home: Home) -> None:
    rt = _runtime(home, 100)
    checks = LogChecks(1.0)
    for tick in range(50):
        checks.over_limit(rt, float(tick))
    checks.keep_only(set())
    rt.log_path.write_bytes(b"x" * _LIMIT)
    assert _checks_until_over(checks, rt, 50) == 1
