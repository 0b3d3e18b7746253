"""One finding of ``eyriectl doctor``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check"]


@dataclass(frozen=True)
class Check:
    """One finding: ``fix`` is the command or change that resolves a failed check, or one passed with a
    ``warning`` (it works, with a caveat); "" when there is nothing to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False
