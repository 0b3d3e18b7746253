"""The restart policy as a pure decision: delays, crash loops, cooldown, clean exits."""

from __future__ import annotations

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
