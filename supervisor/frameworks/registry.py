"""The built-in framework definitions shipped in ``config/frameworks.yaml``.

The file is our own plain data (no tags, anchors or YAML 1.1 booleans), so ruamel.yaml's C-backed safe
loader reads it: the daemon needs it at every start, and the round-trip loader would take longer.
"""

from __future__ import annotations

from functools import cache

from pydantic import ValidationError
from ruamel.yaml import YAML

from supervisor._resources import data_dir
from supervisor.errors import UnsupportedFramework
from supervisor.frameworks.spec import FrameworkSpec

__all__ = ["BUILTIN_FRAMEWORKS", "builtin_frameworks", "builtin_spec"]

BUILTIN_FRAMEWORKS = ("embedded", "zeroclaw", "openclaw", "hermes", "picoclaw")


@cache
def _load() -> dict[str, FrameworkSpec]:
    path = data_dir("config") / "frameworks.yaml"
    raw = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    specs: dict[str, FrameworkSpec] = {}
    for name, body in (raw or {}).get("frameworks", {}).items():
        try:
            specs[name] = FrameworkSpec.model_validate({"name": name, **body})
        except ValidationError as exc:
            raise RuntimeError(f"{path}: framework {name}: {exc}") from exc
    return specs


def builtin_frameworks() -> dict[str, FrameworkSpec]:
    """Name → definition, a fresh dict each call (the specs themselves are immutable)."""
    return dict(_load())


def builtin_spec(name: str) -> FrameworkSpec:
    try:
        return _load()[name]
    except KeyError:
        known = ", ".join(sorted(_load()))
        raise UnsupportedFramework(f"unsupported framework {name!r} (known: {known})") from None
