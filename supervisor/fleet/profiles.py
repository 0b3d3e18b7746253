"""Starting fleets for ``eyriectl init``: commented fleet files shipped in ``config/profiles/``.

Every profile runs the ``embedded`` agent, so a fresh ``init`` followed by ``eyried`` works with no binary,
network or model key; ``framework`` switches every instance to another built-in framework, changing only
those values and keeping the comments.
"""

from __future__ import annotations

import os
from pathlib import Path

from supervisor._fs import atomic_write, locked
from supervisor._resources import data_dir
from supervisor.errors import NotFound
from supervisor.fleet import _textedit as te
from supervisor.fleet._yaml import compose
from supervisor.fleet.loader import parse_fleet
from supervisor.frameworks.registry import builtin_spec

__all__ = ["PROFILES", "render_profile", "write_initial_fleet"]

PROFILES = ("minimal", "general", "coding", "research")
"""``minimal``: one standalone agent. The others: a commander, captains with projects, talons under them."""


def _profile_text(profile: str) -> str:
    if profile not in PROFILES:
        raise NotFound(f"unknown profile {profile!r} (choose from: {', '.join(PROFILES)})")
    return (data_dir("config") / "profiles" / f"{profile}.yaml").read_text(encoding="utf-8")


def render_profile(profile: str, *, framework: str = "embedded") -> str:
    """The profile's fleet file with every instance on ``framework`` (`UnsupportedFramework` if unknown)."""
    builtin_spec(framework)
    text = _profile_text(profile)
    lines = text.splitlines(keepends=True)
    entry = te.get(compose(text), "instances")
    for item in entry[1].value if entry is not None else ():
        if (framework_entry := te.get(item, "framework")) is not None:
            te.replace_scalar(lines, framework_entry[1], framework)
    rendered = "".join(lines)
    parse_fleet(rendered, path=f"profile {profile}")
    return rendered


def write_initial_fleet(
    path: str | os.PathLike[str], profile: str, framework: str = "embedded", *, force: bool = False
) -> None:
    """Write the rendered profile to ``path`` (0600); `FileExistsError` if it exists and not ``force``."""
    text = render_profile(profile, framework=framework)
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with locked(file.with_name(file.name + ".lock")):
        if file.exists() and not force:
            raise FileExistsError(f"{file} already exists; use --force to overwrite it")
        atomic_write(file, text, mode=0o600)
