"""The lifecycle state table."""

from __future__ import annotations

import pytest

from supervisor.engine.states import ACTIVE, INACTIVE, SETTLED, TRANSITIONS, check_transition
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
