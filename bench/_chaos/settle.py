"""The settle step: wait, with a deadline, for the fleet to converge after a wave, and say what did not."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .invariants import Checker, Expected, Violation

__all__ = ["Settled", "settle"]

_POLL = 0.25
"""Seconds between two checks."""
_PERSIST = 3.0
"""Seconds a violation must last, once the settle deadline has passed, to be reported."""
_GRACE = 15.0
"""Seconds past the settle deadline after which whatever is wrong is reported, lasting or not."""
_STUCK = 15.0
"""Seconds a violation may last within the settle deadline and still not count once it clears."""


@dataclass
class Settled:
    """How a wave's settle step ended: seconds taken, what is still wrong, checks, what was last wrong."""

    seconds: float
    violations: list[Violation]
    checks: int
    last_seen: list[Violation]


def settle(checker: Checker, expected: Expected, timeout: float, known: set[tuple[str, str]]) -> Settled:
    """Check until nothing is wrong but what earlier waves reported (``known``: kind and subject).

    Past ``timeout``, what has stayed wrong for `_PERSIST` seconds is returned, so an agent that ends on its
    own just then is no violation (past ``timeout`` + `_GRACE`, whatever is wrong). What stayed wrong for
    `_STUCK` seconds and then cleared is returned too: an agent ending on its own may hide a fault."""
    started = time.monotonic()
    checks = 0
    since: dict[tuple[str, str], float] = {}
    latest: dict[tuple[str, str], Violation] = {}
    cleared: list[Violation] = []
    while True:
        current = {v.key: v for v in checker.check(expected) if v.key not in known}
        checks += 1
        now = time.monotonic()
        for key, first in since.items():
            if key not in current and now - first >= _STUCK:
                old = latest[key]
                seen = f"lasted {now - first:.0f} s, then cleared: {old.seen}"
                cleared.append(Violation(old.kind, old.subject, seen))
        since = {key: since.get(key, now) for key in current}
        last_seen, latest = list(latest.values()), current
        elapsed = now - started
        lasting = [v for key, v in current.items() if now - since[key] >= _PERSIST]
        if not current:
            return Settled(elapsed, cleared, checks, last_seen)
        if elapsed > timeout + _GRACE:
            return Settled(elapsed, cleared + list(current.values()), checks, last_seen)
        if elapsed > timeout and lasting:
            return Settled(elapsed, cleared + lasting, checks, last_seen)
        time.sleep(_POLL)
