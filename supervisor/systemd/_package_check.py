"""``doctor``'s check that confined agents started from eyrie's own package can import it.

An agent that runs ``python -m supervisor…`` (the ``embedded`` framework) is granted the directory the package
is imported from, unless that directory holds the home: then only the package itself is granted (the home's
other instances stay out of reach), and Python, which lists the directory on ``sys.path`` before it imports
from it, finds nothing there. A home kept inside an editable checkout is the usual way to get there.
"""

from __future__ import annotations

from pathlib import Path

import supervisor
from supervisor.systemd._check import Check

__all__ = ["package_reach_check"]


def package_reach_check(home: Path) -> Check:
    """Fails when ``home`` lies inside the directory eyrie's package is imported from."""
    imported_from = Path(supervisor.__file__).resolve().parent.parent
    if not home.resolve().is_relative_to(imported_from):
        return Check("package reach", True, f"confined agents can import eyrie from {imported_from}")
    return Check(
        "package reach",
        False,
        f"the home {home} lies inside {imported_from}, where eyrie is imported from: a confined agent that"
        " runs eyrie's package (the embedded framework) cannot import it there and exits at once",
        f"keep the home outside {imported_from}: stop eyried, move the home, start eyried there"
        " (and run eyriectl install again if systemd starts it)",
    )
