"""The restart policy as a pure decision: delays, crash loops, cooldown, clean exits."""

from __future__ import annotations

import math
import random

import pytest

from supervisor.engine.restart import decide
from supervisor.models import InstanceStatus
from supervisor.policies import RestartPolicy

POLICY = RestartPolicy(policy="on-failure", initial_delay=1, factor=2, max_delay=5, jitter=0, max_retries=4)


class TestDecide:
    def test_failures_back_off_exponentially_up_to_max_delay(self) -> None:
        """Delays go 1, 2, 4, then stay at max_delay 5; both counters grow by one each time."""
        delays = []
        count = total = 0
        for _ in range(4):
            d = decide(POLICY, restart_count=count, total_restarts=total, failed=True, reason="exit code 1")
            assert d.status is InstanceStatus.STOPPED and d.last_error == "exit code 1"
            delays.append(d.delay)
            count, total = d.restart_count, d.total_restarts
        assert delays == [1, 2, 4, 5] and (count, total) == (4, 4)
        assert (
            decide(POLICY, restart_count=0, total_restarts=0, failed=True, reason="x").detail
            == "backoff 1.0s"
        )

    def test_past_max_retries_is_a_crash_loop_retried_after_cooldown(self) -> None:
        """At max_retries the instance is in error; with a cooldown it is retried as a new round."""
        d = decide(
            POLICY.model_copy(update={"cooldown": 60}),
            restart_count=4,
            total_restarts=9,
            failed=True,
            reason="r",
        )
        assert (d.status, d.detail, d.delay, d.new_round) == (
            InstanceStatus.ERROR,
            "crash loop: 4 restarts; retry in 60s",
            60,
            True,
        )
        assert d.last_error == "crash loop: 4 restarts (last: r)" and d.total_restarts == 9

    def test_crash_loop_without_cooldown_waits_for_an_operator(self) -> None:
        """With cooldown 0 there is no automatic retry."""
        d = decide(
            POLICY.model_copy(update={"cooldown": 0}),
            restart_count=4,
            total_restarts=4,
            failed=True,
            reason="r",
        )
        assert (d.status, d.detail, d.delay) == (InstanceStatus.ERROR, "crash loop: 4 restarts", None)

    def test_clean_exit_and_never(self) -> None:
        """on-failure keeps a clean exit stopped; always restarts it; never makes a crash an error."""
        d = decide(POLICY, restart_count=0, total_restarts=0, failed=False, reason="exit code 0")
        assert (d.status, d.completed, d.delay, d.last_error) == (InstanceStatus.STOPPED, True, None, None)
        always = decide(
            POLICY.model_copy(update={"policy": "always"}),
            restart_count=0,
            total_restarts=0,
            failed=False,
            reason="exit code 0",
        )
        assert always.delay == 1 and always.restart_count == 1 and always.last_error is None
        never = decide(
            POLICY.model_copy(update={"policy": "never"}),
            restart_count=0,
            total_restarts=0,
            failed=True,
            reason="exit code 2",
        )
        assert (never.status, never.detail, never.delay) == (
            InstanceStatus.ERROR,
            "failed: exit code 2",
            None,
        )


HUGE_COUNTS = [1, 2, 3, 10, 63, 64, 1023, 1024, 1025, 1075, 2000, 10**6, 2**62, 10**308, 10**400]
POLICIES = [
    RestartPolicy(initial_delay=0.01, factor=1.0000001, max_delay=86400, jitter=0, max_retries=10**6),
    RestartPolicy(initial_delay=1, factor=2, max_delay=60, jitter=0.1, max_retries=10**6),
    RestartPolicy(initial_delay=3600, factor=100, max_delay=86400, jitter=1, max_retries=10**6),
    RestartPolicy(initial_delay=5, factor=1, max_delay=60, jitter=0, max_retries=10**6),
    RestartPolicy(initial_delay=90, factor=3, max_delay=30, jitter=0, max_retries=10**6),
    RestartPolicy(initial_delay=0, factor=2, max_delay=60, jitter=0.1, max_retries=10**6),
]


def _count_id(count: int) -> str:
    return str(count) if count < 10**7 else f"about 2^{count.bit_length()}"


class TestDelayForAnyCount:
    @pytest.mark.parametrize("policy", POLICIES)
    @pytest.mark.parametrize("count", HUGE_COUNTS, ids=_count_id)
    def test_delay_is_finite_and_within_the_policy(self, policy: RestartPolicy, count: int) -> None:
        """However many restarts, the delay is a finite number no larger than max_delay with jitter."""
        delay = policy.delay(count, random.Random(count))
        assert math.isfinite(delay)
        assert 0 <= delay <= policy.max_delay * (1 + policy.jitter)

    @pytest.mark.parametrize("count", [1025, 5000, 10**6])
    def test_decide_past_a_thousand_restarts_follows_the_policy(self, count: int) -> None:
        """Past ~1024 restarts (where factor^n overflowed a float) the decision is still max_delay."""
        policy = POLICY.model_copy(update={"max_retries": 10**6})
        d = decide(policy, restart_count=count - 1, total_restarts=count - 1, failed=True, reason="r")
        assert d.delay == 5 and d.detail == "backoff 5.0s"

    def test_delay_grows_monotonically_to_max_delay(self) -> None:
        """Without jitter each delay is at least the one before, and it reaches max_delay exactly."""
        policy = RestartPolicy(initial_delay=0.01, factor=1.5, max_delay=600, jitter=0)
        delays = [policy.delay(n) for n in range(1, 2000)]
        assert delays == sorted(delays) and delays[0] == 0.01 and delays[-1] == 600
