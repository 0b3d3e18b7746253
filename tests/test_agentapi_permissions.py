"""The agent API's permission table, role × action × target, without a daemon."""

from __future__ import annotations

import pytest

from supervisor.agentapi.permissions import Action, Member, decide, visible
from supervisor.models import HierarchyRole

R = HierarchyRole
BOSS = Member("boss", "id-boss", R.COMMANDER)
CAP_A = Member("cap-a", "id-cap-a", R.CAPTAIN, "apollo")
CAP_Z = Member("cap-z", "id-cap-z", R.CAPTAIN, "zeus")
TALON_A = Member("t-a", "id-t-a", R.TALON, "apollo")
TALON_Z = Member("t-z", "id-t-z", R.TALON, "zeus")
LONE = Member("lone", "id-lone", R.STANDALONE)
EVERYONE = (BOSS, CAP_A, CAP_Z, TALON_A, TALON_Z, LONE)
MANAGE = (Action.CREATE, Action.START, Action.STOP, Action.REMOVE)

# (caller, target) pairs a caller may manage; every other pair of EVERYONE is refused for MANAGE.
MAY_MANAGE = {
    (BOSS, CAP_A),
    (BOSS, CAP_Z),
    (BOSS, TALON_A),
    (BOSS, TALON_Z),
    (CAP_A, TALON_A),
    (CAP_Z, TALON_Z),
}


class TestTable:
    @pytest.mark.parametrize("caller", EVERYONE, ids=lambda m: m.name)
    def test_everyone_reads_itself_and_posts_a_note(self, caller: Member) -> None:
        """Every role may read its own record and post a note."""
        assert decide(caller, Action.READ_SELF).allowed
        assert decide(caller, Action.NOTE).allowed
        assert decide(caller, Action.READ, caller).allowed

    @pytest.mark.parametrize("caller", EVERYONE, ids=lambda m: m.name)
    def test_only_commander_and_captains_list(self, caller: Member) -> None:
        """Listing is for a commander (the fleet) and a captain (its project); talons and standalones are
        refused with a reason naming their role."""
        decision = decide(caller, Action.LIST)
        assert decision.allowed is (caller.role in (R.COMMANDER, R.CAPTAIN))
        if not decision.allowed:
            assert "cannot list" in decision.reason

    @pytest.mark.parametrize("action", MANAGE, ids=lambda a: a.value)
    @pytest.mark.parametrize("caller", EVERYONE, ids=lambda m: m.name)
    @pytest.mark.parametrize("target", EVERYONE, ids=lambda m: m.name)
    def test_manage_matrix(self, action: Action, caller: Member, target: Member) -> None:
        """Create/start/stop/remove: exactly the pairs in MAY_MANAGE, never oneself, never a commander."""
        decision = decide(caller, action, target)
        assert decision.allowed is ((caller, target) in MAY_MANAGE)
        assert decision.reason

    @pytest.mark.parametrize("caller", EVERYONE, ids=lambda m: m.name)
    @pytest.mark.parametrize("target", EVERYONE, ids=lambda m: m.name)
    def test_read_is_self_or_managed(self, caller: Member, target: Member) -> None:
        """An agent sees itself and what it may manage, nothing else."""
        expected = caller == target or (caller, target) in MAY_MANAGE
        assert decide(caller, Action.READ, target).allowed is expected
        assert visible(caller, target) is expected

    def test_a_captain_manages_its_project_talons_whoever_made_them(self) -> None:
        """A captain's reach is its project's talons, including ones the commander created."""
        made_by_boss = Member("t-b", "id-t-b", R.TALON, "apollo", created_by="id-boss")
        assert decide(CAP_A, Action.REMOVE, made_by_boss).allowed
        assert not decide(CAP_Z, Action.REMOVE, made_by_boss).allowed

    def test_no_agent_stops_itself(self) -> None:
        """Stop, start and remove of oneself are refused, saying so."""
        decision = decide(CAP_A, Action.STOP, CAP_A)
        assert not decision.allowed and "itself" in decision.reason

    def test_refusal_names_the_target(self) -> None:
        """A refusal says what the target is, for the log and the answer."""
        reason = decide(CAP_A, Action.STOP, TALON_Z).reason
        assert "'t-z'" in reason and "zeus" in reason and "apollo" in reason

    def test_a_target_is_needed(self) -> None:
        """Actions on another instance without one are a programming error."""
        with pytest.raises(ValueError, match="needs a target"):
            decide(BOSS, Action.STOP)
