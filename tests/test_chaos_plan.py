"""The chaos soak's fault planner: seeded, replayable, and writing only valid fleet files."""

from __future__ import annotations

from bench._chaos.plan import EditKind, FaultKind, Planner
from supervisor.fleet.loader import parse_fleet


def _waves(seed: int, count: int, agents: int = 8) -> list[list[str]]:
    planner = Planner(seed, agents)
    return [[str(fault) for fault in planner.next_wave()] for _ in range(count)]


class TestPlanner:
    def test_same_seed_same_faults(self) -> None:
        """A seed replays the same fault sequence, edits and targets included."""
        assert _waves(1234, 100) == _waves(1234, 100)

    def test_other_seed_other_faults(self) -> None:
        """Different seeds give different runs."""
        assert _waves(1, 50) != _waves(2, 50)

    def test_every_file_it_writes_is_valid(self) -> None:
        """The first file and the file after every edit load, and declare exactly the planner's fleet."""
        planner = Planner(7, 6)
        first = parse_fleet(planner.initial_text())
        assert {i.name for i in first.instances} == set(planner.model.agents)
        for _ in range(300):
            for fault in planner.next_wave():
                for edit in fault.edits:
                    names = {i.name for i in parse_fleet(edit.text).instances}
                    if edit.kind is EditKind.REMOVE:
                        assert edit.name not in names
                    elif edit.kind is EditKind.RENAME:
                        assert edit.new_name in names and edit.name not in names
                    else:
                        assert edit.name in names
        final = parse_fleet(planner.initial_text())
        assert {i.name for i in final.instances} == set(planner.model.agents)

    def test_fleet_size_stays_bounded(self) -> None:
        """Adds and removes keep the fleet between half and one and a half times its first size."""
        planner = Planner(99, 8)
        for _ in range(500):
            planner.next_wave()
            assert 4 <= len(planner.model.agents) <= 13

    def test_stop_and_start_target_what_they_can(self) -> None:
        """stop picks a running instance, start a stopped one; stopped instances stay declared."""
        planner = Planner(5, 8)
        kinds: set[FaultKind] = set()
        for _ in range(300):
            running = set(planner.model.agents) - planner.model.stopped
            stopped = set(planner.model.stopped)
            for fault in planner.next_wave():
                kinds.add(fault.kind)
                if fault.kind is FaultKind.STOP and fault.target in running:
                    running.discard(fault.target)
                    stopped.add(fault.target)
                elif fault.kind is FaultKind.START:
                    assert fault.target in stopped
                    stopped.discard(fault.target)
                    running.add(fault.target)
                elif fault.kind in (FaultKind.KILL_AGENT, FaultKind.KILL_GROUP, FaultKind.SQUAT):
                    assert fault.target in running
                elif fault.edits:
                    break  # the fleet changed: track again from the planner's model next wave
            assert planner.model.stopped <= set(planner.model.agents)
        assert kinds == set(FaultKind)

    def test_fault_kinds_can_be_narrowed(self) -> None:
        """With --faults, only those kinds are drawn (a kill with nothing to kill becomes a SIGHUP storm)."""
        planner = Planner(3, 4, frozenset({FaultKind.KILL_AGENT, FaultKind.REEXEC}))
        drawn = {fault.kind for _ in range(200) for fault in planner.next_wave()}
        assert drawn == {FaultKind.KILL_AGENT, FaultKind.REEXEC}
