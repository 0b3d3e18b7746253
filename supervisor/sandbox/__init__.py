"""Agents are untrusted: each runs confined to its own instance (Landlock, applied between fork and exec).

`setting` is the fleet file's ``sandbox:`` key, `policy` what one agent may reach (pure), `prefix` where its
framework is installed, `confine` the rulesets the daemon builds and keeps, `child` what the child applies.
See docs/sandbox.md.
"""

__all__: list[str] = []
