"""The recovery plan: what an actor makes of an instance's record when it takes the instance over."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from supervisor.engine.recovery import RecoveryPlan, Resume, plan_recovery
from supervisor.engine.states import Phase
from supervisor.models import Instance, InstanceStatus

BOOT = "boot-now"
EARLIER = "boot-before"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def record(status: InstanceStatus, **fields: Any) -> Instance:
    """A record written in this boot (desired running) unless ``fields`` say otherwise."""
    values: dict[str, Any] = {"desired": "running", "desired_boot_id": BOOT, "boot_id": BOOT}
    values.update(fields)
    return Instance(id="i", name="n", status=status, **values)


def plan(inst: Instance, *, autostart: bool = True) -> RecoveryPlan:
    return plan_recovery(inst, boot_id=BOOT, autostart=autostart)


class TestPlanRecovery:
    def test_a_process_recorded_in_this_boot_is_adopted_in_its_phase(self) -> None:
        """A running or starting record with a pid is adopted, the actor beginning running or starting."""
        running = plan(record(InstanceStatus.RUNNING, pid=4242))
        starting = plan(record(InstanceStatus.STARTING, pid=4242))
        assert (running.process, running.phase) == ("adopt", Phase.RUNNING)
        assert (starting.process, starting.phase) == ("adopt", Phase.STARTING)
        assert running.ended is None and not running.through_policy and not running.reset_counts

    def test_a_process_that_cannot_be_adopted_was_found_dead(self) -> None:
        """When adoption fails the process died meanwhile: the actor begins idle, the exit goes through
        the restart policy as a crash when the instance is wanted running."""
        failed = plan(record(InstanceStatus.RUNNING, pid=4242)).adoption_failed()
        assert (failed.process, failed.phase) == ("found dead", Phase.IDLE)
        assert failed.ended == "exited while the supervisor was not running" and failed.through_policy

    def test_an_active_record_without_a_pid_was_found_dead(self) -> None:
        """A starting record that names no process is found dead; wanted stopped it is only recorded."""
        wanted = plan(record(InstanceStatus.STARTING))
        unwanted = plan(record(InstanceStatus.STARTING, desired="stopped"))
        assert (wanted.process, wanted.phase, wanted.through_policy) == ("found dead", Phase.IDLE, True)
        assert (unwanted.process, unwanted.through_policy) == ("found dead", False)

    def test_a_process_recorded_in_another_boot_did_not_survive_the_reboot(self) -> None:
        """After a reboot nothing recorded runs: "system restarted", not through the policy, counts reset."""
        p = plan(record(InstanceStatus.RUNNING, pid=4242, boot_id=EARLIER, desired_boot_id=EARLIER))
        assert (p.process, p.phase, p.ended) == ("rebooted", Phase.IDLE, "system restarted")
        assert not p.through_policy and p.reset_counts and p.resume is None

    def test_a_running_record_without_a_boot_id_is_not_adopted(self) -> None:
        """A record saved without eyried's keys (eyrie's Go code drops ``boot_id``) cannot prove its process
        is of this boot: treated as one of an earlier boot, and the reason says so."""
        p = plan(record(InstanceStatus.RUNNING, pid=4242, boot_id="", desired_boot_id="", desired=None))
        assert (p.process, p.phase, p.reset_counts) == ("unproven", Phase.IDLE, True)
        assert p.ended is not None and "names no boot" in p.ended and not p.through_policy

    def test_a_record_that_never_recorded_a_process_has_nothing_to_adopt(self) -> None:
        """A created or stopped record names no process: idle, nothing ended."""
        for status in (InstanceStatus.CREATED, InstanceStatus.STOPPED):
            p = plan(record(status))
            assert (p.process, p.phase, p.ended, p.resume) == ("none", Phase.IDLE, None, None)

    def test_a_backoff_recorded_in_this_boot_resumes(self) -> None:
        """Stopped with a next start in this boot: the backoff resumes until that time, counts kept."""
        p = plan(record(InstanceStatus.STOPPED, next_start_at=AT, restart_count=2))
        assert p.resume == Resume(AT, cooldown=False) and p.phase is Phase.BACKOFF
        assert not p.reset_counts

    def test_a_cooldown_recorded_in_this_boot_resumes(self) -> None:
        """In error with a next start in this boot: the cooldown after a crash loop resumes."""
        p = plan(record(InstanceStatus.ERROR, next_start_at=AT))
        assert p.resume == Resume(AT, cooldown=True) and p.phase is Phase.COOLDOWN

    def test_an_error_recorded_in_this_boot_is_held_for_an_operator(self) -> None:
        """In error without a next start in this boot: held, no automatic start."""
        p = plan(record(InstanceStatus.ERROR))
        assert (p.phase, p.resume, p.process) == (Phase.HELD, None, "none")

    def test_another_boot_forgets_backoff_cooldown_and_hold(self) -> None:
        """A record from before a reboot resets its counts and neither resumes nor holds."""
        for status in (InstanceStatus.STOPPED, InstanceStatus.ERROR):
            p = plan(record(status, next_start_at=AT, desired_boot_id=EARLIER))
            assert (p.phase, p.resume, p.reset_counts) == (Phase.IDLE, None, True)
        assert plan(record(InstanceStatus.ERROR, desired_boot_id=EARLIER)).phase is Phase.IDLE

    def test_desired_state_holds_for_this_boot_then_autostart_decides(self) -> None:
        """The recorded desired state stands within its boot; in another, or unrecorded, autostart decides."""
        assert plan(record(InstanceStatus.STOPPED, desired="stopped")).desired == "stopped"
        earlier = record(InstanceStatus.STOPPED, desired="stopped", desired_boot_id=EARLIER)
        assert plan(earlier).desired == "running"
        assert plan(earlier, autostart=False).desired == "stopped"
        assert plan(record(InstanceStatus.CREATED, desired=None), autostart=False).desired == "stopped"
