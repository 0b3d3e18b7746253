"""What a reload has to do, per instance: compare two fleet files by their resolved fingerprints."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.fleet.schema import FleetFile

__all__ = ["FleetDiff", "diff_fleets"]


@dataclass(eq=False)
class FleetDiff:
    """Instance names by what changed; each list is in file order (``removed`` in the old file's order)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    process_changed: tuple[str, ...] = ()  # re-render config and restart
    context_changed: tuple[str, ...] = ()  # a new PROJECT.md: restart only if the framework reads it at start
    policy_changed: tuple[str, ...] = ()  # only restart/health/logs/autostart: apply live
    unchanged: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when a reload has anything to do."""
        return bool(
            self.added or self.removed or self.process_changed or self.context_changed or self.policy_changed
        )


def diff_fleets(old: FleetFile | None, new: FleetFile) -> FleetDiff:
    """Compare ``old`` (None at first load: everything is added) with ``new``."""
    before = old.resolve_all() if old is not None else {}
    after = new.resolve_all()
    added: list[str] = []
    process: list[str] = []
    context: list[str] = []
    policy: list[str] = []
    same: list[str] = []
    for name, now in after.items():
        was = before.get(name)
        if was is None:
            added.append(name)
        elif was == now:
            same.append(name)
        elif was.process_fingerprint() != now.process_fingerprint():
            process.append(name)
        elif was.context_fingerprint() != now.context_fingerprint():
            context.append(name)
        elif was.policy_fingerprint() != now.policy_fingerprint():
            policy.append(name)
        else:
            same.append(name)
    removed = tuple(name for name in before if name not in after)
    return FleetDiff(tuple(added), removed, tuple(process), tuple(context), tuple(policy), tuple(same))
