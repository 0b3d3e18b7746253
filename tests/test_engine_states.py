"""The lifecycle state table and the actor's phase table."""

from __future__ import annotations

import pytest

from supervisor.engine.states import (
    ACTIVE,
    INACTIVE,
    PHASE_MOVES,
    SETTLED,
    TRANSITIONS,
    check_phase_move,
    check_transition,
)
from supervisor.engine.states import Phase as P
from supervisor.errors import IllegalTransition
from supervisor.models import InstanceStatus as S


class TestCheckTransition:
    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (S.CREATED, S.STARTING),
            (S.STARTING, S.RUNNING),
            (S.RUNNING, S.STOPPED),
            (S.STOPPED, S.STARTING),
            (S.STOPPED, S.STOPPED),
            (S.RUNNING, S.ERROR),
            (S.ERROR, S.STARTING),
            (S.ERROR, S.STOPPED),
        ],
    )
    def test_lifecycle_moves_are_allowed(self, old: S, new: S) -> None:
        """The moves the engine makes pass the table."""
        check_transition(old, new)

    @pytest.mark.parametrize(
        ("old", "new"),
        [(S.CREATED, S.RUNNING), (S.RUNNING, S.STARTING), (S.RUNNING, S.RUNNING), (S.STOPPED, S.RUNNING)],
    )
    def test_illegal_moves_raise_naming_both_states(self, old: S, new: S) -> None:
        """Skipping starting, or restarting without stopping, is a bug: IllegalTransition names the move."""
        with pytest.raises(IllegalTransition, match=f"illegal transition {old.value} → {new.value}"):
            check_transition(old, new)

    def test_every_status_is_covered_and_may_fail(self) -> None:
        """Every one of the five statuses has a row, every status can fall to error, groups partition them."""
        assert set(TRANSITIONS) == set(S)
        assert all(S.ERROR in targets for targets in TRANSITIONS.values())
        assert set(S) == ACTIVE | INACTIVE and not ACTIVE & INACTIVE
        assert {S.RUNNING, S.STOPPED, S.ERROR} == SETTLED
        assert S.CREATED not in set().union(*TRANSITIONS.values())


class TestCheckPhaseMove:
    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (P.IDLE, P.SPAWNING),
            (P.SPAWNING, P.STARTING),
            (P.SPAWNING, P.RUNNING),
            (P.STARTING, P.RUNNING),
            (P.RUNNING, P.STOPPING),
            (P.RUNNING, P.BACKOFF),
            (P.STOPPING, P.COOLDOWN),
            (P.BACKOFF, P.SPAWNING),
            (P.COOLDOWN, P.SPAWNING),
            (P.BACKOFF, P.IDLE),
            (P.IDLE, P.BACKOFF),
            (P.SPAWNING, P.HELD),
            (P.HELD, P.IDLE),
            (P.STOPPING, P.IDLE),
            (P.RUNNING, P.CLOSED),
        ],
    )
    def test_moves_the_actor_makes_are_allowed(self, old: P, new: P) -> None:
        """Spawn, readiness, a crash into backoff or cooldown, a stop, a release and the end all pass."""
        check_phase_move(old, new)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (P.IDLE, P.RUNNING),
            (P.IDLE, P.STOPPING),
            (P.HELD, P.SPAWNING),
            (P.BACKOFF, P.RUNNING),
            (P.BACKOFF, P.COOLDOWN),
            (P.RUNNING, P.STARTING),
            (P.STOPPING, P.RUNNING),
            (P.CLOSED, P.IDLE),
        ],
    )
    def test_illegal_moves_raise_naming_both_phases(self, old: P, new: P) -> None:
        """Running without a spawn, spawning while held, anything after closed: IllegalTransition."""
        with pytest.raises(IllegalTransition, match=f"illegal phase move {old.value} → {new.value}"):
            check_phase_move(old, new)

    def test_staying_in_a_phase_is_no_move(self) -> None:
        """Moving to the phase the actor is in passes, closed included."""
        for phase in P:
            check_phase_move(phase, phase)

    def test_every_phase_has_a_row_and_may_fall_to_held_and_closed(self) -> None:
        """Every phase has a row; all but closed may fall to held and end in closed; closed is final."""
        assert set(PHASE_MOVES) == set(P)
        assert PHASE_MOVES[P.CLOSED] == frozenset()
        for phase in set(P) - {P.CLOSED}:
            assert P.CLOSED in PHASE_MOVES[phase]
            assert phase is P.HELD or P.HELD in PHASE_MOVES[phase]

    def test_a_process_runs_only_after_a_spawn_or_an_adoption(self) -> None:
        """Only spawning leads to starting, only spawning and starting to running, and only they and running
        to stopping: a process phase is never reached from a waiting one."""
        into = {new: {old for old in P if new in PHASE_MOVES[old]} for new in P}
        assert into[P.STARTING] == {P.SPAWNING}
        assert into[P.RUNNING] == {P.SPAWNING, P.STARTING}
        assert into[P.STOPPING] == {P.SPAWNING, P.STARTING, P.RUNNING}
        assert into[P.SPAWNING] == {P.IDLE, P.BACKOFF, P.COOLDOWN}
