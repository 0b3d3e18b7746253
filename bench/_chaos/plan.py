"""The seeded fault planner: what the soak does, decided from the seed alone, so a seed replays a run.

The planner keeps the fleet it has declared (`FleetModel`) and draws waves of faults from one
`random.Random`; it never looks at the running system. Every fleet edit carries the whole file text it
leaves behind, so the harness writes files without deciding anything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = [
    "KINDS",
    "Agent",
    "Edit",
    "EditKind",
    "Fault",
    "FaultKind",
    "FleetModel",
    "Planner",
    "render_fleet",
]

KINDS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "forker": ("--children", "2", "--children-ignore-sigterm"),
    "stubborn": ("--ignore-sigterm",),
    "exiter": ("--exit-after", "40"),
    "crasher": ("--crash-after", "50"),
    "detacher": ("--grandchild", "{instance_dir}/state/grandchild.pid"),
}
"""Agent kinds and the fault-injecting agent's flags for each: children that ignore SIGTERM, an agent that
ignores it, agents that end on their own (exit 0 or 1), and one leaving a grandchild in its own session."""

_POLICIES: tuple[tuple[str, ...], ...] = (
    (),
    ("restart: {max_delay: 1s}", "health: {failure_threshold: 4}"),
    ("health: {interval: 2s}",),
)
"""Restart and health variants an agent cycles through: changes that apply live, without a restart."""

_HEAD = """\
version: 1
defaults:
  restart: {policy: always, initial_delay: 100ms, factor: 2, max_delay: 2s, jitter: 0.1, reset_after: 10s,
            max_retries: 1000, cooldown: 1s}
  health: {interval: 1s, timeout: 1s, failure_threshold: 3, start_timeout: 20s}
  stop_timeout: 2s
frameworks:
  embedded:
    command: ["{python}", -m, supervisor.testing.faulty_agent, --http, --port, "{port}"]
    ready: {kind: http, path: /ready, expect: 200}
    live: {kind: http, path: /health}
"""


class EditKind(StrEnum):
    """A change to fleet.yaml."""

    ADD = "add"  # a new instance
    REMOVE = "remove"  # an instance leaves the file
    RENAME = "rename"  # an instance changes name: a removal plus an addition
    ENV = "env"  # an instance's environment changes: it must restart with the new one
    POLICY = "policy"  # restart and health settings change: applied live


class FaultKind(StrEnum):
    """One thing the soak does to the fleet."""

    KILL_AGENT = "kill-agent"  # SIGKILL an agent's recorded pid
    KILL_GROUP = "kill-group"  # SIGKILL an agent's whole process group
    KILL_DAEMON = "kill-daemon"  # SIGKILL eyried, start a new one at once
    DAEMON_DOWN = "daemon-down"  # SIGKILL eyried, edit fleet.yaml while it is down, start a new one
    REEXEC = "reexec"  # SIGUSR2: eyried re-executes itself in place
    HUP_STORM = "hup-storm"  # several edits, each followed by SIGHUP, in quick succession
    HUP_DURING_REEXEC = "hup-during-reexec"  # SIGUSR2, then edits and SIGHUPs while it re-executes
    STOP = "stop"  # eyriectl stop
    START = "start"  # eyriectl start
    SQUAT = "squat"  # a stranger binds an agent's port, then the agent's group is killed


_WEIGHTS: dict[FaultKind, int] = {
    FaultKind.KILL_AGENT: 4,
    FaultKind.KILL_GROUP: 3,
    FaultKind.KILL_DAEMON: 2,
    FaultKind.DAEMON_DOWN: 2,
    FaultKind.REEXEC: 2,
    FaultKind.HUP_STORM: 3,
    FaultKind.HUP_DURING_REEXEC: 2,
    FaultKind.STOP: 2,
    FaultKind.START: 2,
    FaultKind.SQUAT: 1,
}
_NEEDS_TARGET = {FaultKind.KILL_AGENT, FaultKind.KILL_GROUP, FaultKind.STOP, FaultKind.SQUAT}


@dataclass(frozen=True)
class Agent:
    """One declared instance as the planner wrote it."""

    name: str
    kind: str
    generation: int = 0  # the value of CHAOS_GEN in its env; an env edit bumps it
    policy: int = 0  # which of the policy variants it has

    @property
    def env(self) -> dict[str, str]:
        """The environment the fleet file declares for it."""
        return {"CHAOS_GEN": str(self.generation)}


@dataclass
class FleetModel:
    """The fleet as declared in the file, and which instances the planner stopped."""

    agents: dict[str, Agent] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    serial: int = 0

    def new_name(self) -> str:
        self.serial += 1
        return f"agent-{self.serial:04d}"


@dataclass(frozen=True)
class Edit:
    """A fleet edit and the whole file text after it."""

    kind: EditKind
    name: str
    new_name: str = ""
    text: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}" + (f"→{self.new_name}" if self.new_name else "")


@dataclass(frozen=True)
class Fault:
    """One fault of a wave: its kind, its target instance, its edits, and the pause after it."""

    kind: FaultKind
    target: str = ""
    edits: tuple[Edit, ...] = ()
    pause: float = 0.0
    delay: float = 0.0  # for HUP_DURING_REEXEC: seconds between SIGUSR2 and the first SIGHUP

    def __str__(self) -> str:
        parts = [self.kind.value]
        if self.target:
            parts.append(self.target)
        if self.edits:
            parts.append("[" + ", ".join(map(str, self.edits)) + "]")
        return " ".join(parts)


def render_fleet(model: FleetModel) -> str:
    """fleet.yaml for ``model``: the fault-injecting agent as the embedded framework, flags per kind."""
    lines = [_HEAD, "instances:\n" if model.agents else "instances: []\n"]
    for agent in sorted(model.agents.values(), key=lambda a: a.name):
        argv = ", ".join(f'"{flag}"' for flag in KINDS[agent.kind])
        extra = f", {argv}" if argv else ""
        lines.append(
            f"  - name: {agent.name}\n"
            f'    command: ["{{python}}", -m, supervisor.testing.faulty_agent, --http, --port, "{{port}}"'
            f"{extra}]\n"
            f'    env: {{CHAOS_GEN: "{agent.generation}"}}\n'
        )
        lines.extend(f"    {line}\n" for line in _POLICIES[agent.policy])
    return "".join(lines)


class Planner:
    """Waves of faults drawn from ``seed``; the same seed, agent count and fault kinds give the same waves.

    With some kinds left out, a fault that needs what is not there (a start with nothing stopped, a kill
    with nothing running) becomes a SIGHUP storm or a re-exec, as with all kinds."""

    def __init__(self, seed: int, agents: int, faults: frozenset[FaultKind] = frozenset(FaultKind)) -> None:
        if not faults:
            raise ValueError("no fault kind to draw from")
        self.rng = random.Random(seed)
        self.weights = {k: w for k, w in _WEIGHTS.items() if k in faults}
        self.model = FleetModel()
        kinds = list(KINDS)
        for i in range(agents):
            name = self.model.new_name()
            self.model.agents[name] = Agent(name, kinds[i % len(kinds)])
        self.size = agents

    def initial_text(self) -> str:
        return render_fleet(self.model)

    def next_wave(self) -> tuple[Fault, ...]:
        """One to three faults, fired one after another with short pauses."""
        kinds = list(self.weights)
        weights = [self.weights[k] for k in kinds]
        return tuple(self._fault(self.rng.choices(kinds, weights)[0]) for _ in range(self.rng.randint(1, 3)))

    def _fault(self, kind: FaultKind) -> Fault:
        rng = self.rng
        pause = round(rng.uniform(0.0, 0.5), 3)
        running = sorted(set(self.model.agents) - self.model.stopped)
        if kind in _NEEDS_TARGET and not running:
            kind = FaultKind.HUP_STORM
        if kind is FaultKind.START and not self.model.stopped:
            kind = FaultKind.REEXEC
        if kind in _NEEDS_TARGET:
            target = rng.choice(running)
            if kind is FaultKind.STOP:
                self.model.stopped.add(target)
            return Fault(kind, target, pause=pause)
        if kind is FaultKind.START:
            target = rng.choice(sorted(self.model.stopped))
            self.model.stopped.discard(target)
            return Fault(kind, target, pause=pause)
        if kind in (FaultKind.HUP_STORM, FaultKind.DAEMON_DOWN, FaultKind.HUP_DURING_REEXEC):
            count = rng.randint(1, 4) if kind is not FaultKind.HUP_DURING_REEXEC else rng.randint(1, 2)
            edits = tuple(self._edit() for _ in range(count))
            delay = round(rng.uniform(0.0, 0.4), 3) if kind is FaultKind.HUP_DURING_REEXEC else 0.0
            return Fault(kind, edits=edits, pause=pause, delay=delay)
        return Fault(kind, pause=pause)

    def _edit(self) -> Edit:
        """A random valid edit, keeping the fleet between half and one and a half times its first size."""
        rng = self.rng
        agents = self.model.agents
        names = sorted(agents)
        choices = [EditKind.ENV, EditKind.POLICY, EditKind.RENAME]
        if len(agents) < self.size * 3 // 2 + 1:
            choices.append(EditKind.ADD)
        if len(agents) > max(self.size // 2, 1):
            choices.append(EditKind.REMOVE)
        kind = rng.choice(choices) if names else EditKind.ADD
        if kind is EditKind.ADD:
            name = self.model.new_name()
            agents[name] = Agent(name, rng.choice(sorted(KINDS)))
            return Edit(kind, name, text=render_fleet(self.model))
        name = rng.choice(names)
        agent = agents[name]
        new_name = ""
        if kind is EditKind.REMOVE:
            del agents[name]
            self.model.stopped.discard(name)
        elif kind is EditKind.RENAME:
            new_name = self.model.new_name()
            del agents[name]
            self.model.stopped.discard(name)
            agents[new_name] = replace(agent, name=new_name)
        elif kind is EditKind.ENV:
            agents[name] = replace(agent, generation=agent.generation + 1)
        else:
            agents[name] = replace(agent, policy=(agent.policy + 1) % len(_POLICIES))
        return Edit(kind, name, new_name, text=render_fleet(self.model))
