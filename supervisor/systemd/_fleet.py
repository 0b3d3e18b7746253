"""What the unit and the checks need from the fleet file: the longest stop timeout and the programs to run."""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.errors import EyrieError
from supervisor.fleet import load_fleet
from supervisor.frameworks.registry import builtin_frameworks
from supervisor.paths import Home
from supervisor.ports import PortRange

__all__ = ["FleetFacts", "fleet_facts"]


@dataclass(frozen=True)
class Program:
    """The program one framework runs, and how many declared instances use it."""

    framework: str
    program: str
    instances: int


@dataclass(frozen=True)
class FleetFacts:
    stop_timeout: float
    """The longest stop timeout of any declared instance; without one, of any built-in framework."""
    source: str
    """Where `stop_timeout` came from, for a report line."""
    instances: int = 0
    programs: list[Program] = field(default_factory=list)
    error: str = ""
    """Why the fleet file could not be read ("" when it could, or does not exist)."""
    ports: PortRange = field(default_factory=PortRange)
    """The range instance ports come from (``daemon.ports``)."""


def _builtin_longest() -> float:
    return max(spec.stop_timeout for spec in builtin_frameworks().values())


def fleet_facts(home: Home) -> FleetFacts:
    """Read ``home``'s fleet file; a missing or invalid file falls back to the built-in definitions."""
    path = home.fleet_file
    if not path.exists():
        return FleetFacts(_builtin_longest(), f"no {path}: the longest built-in framework stop timeout")
    try:
        fleet = load_fleet(path)
    except EyrieError as exc:
        return FleetFacts(
            _builtin_longest(),
            "the longest built-in framework stop timeout (fleet file invalid)",
            error=str(exc),
        )
    resolved = fleet.resolve_all()
    span = fleet.daemon.ports.span()
    if not resolved:
        return FleetFacts(
            _builtin_longest(), f"{path} declares no instances: the longest built-in one", ports=span
        )
    counts: dict[tuple[str, str], int] = {}
    for inst in resolved.values():
        key = (inst.framework, inst.spec.command[0])
        counts[key] = counts.get(key, 0) + 1
    return FleetFacts(
        stop_timeout=max(inst.spec.stop_timeout for inst in resolved.values()),
        source=f"the longest stop timeout of the {len(resolved)} instances in {path}",
        instances=len(resolved),
        programs=[Program(fw, prog, n) for (fw, prog), n in sorted(counts.items())],
        ports=span,
    )
