"""Turn a framework definition's templates into the exact argv, env and probes of one instance.

Commands are argv lists, never shell strings, so a value with spaces or quotes stays one argument.
Placeholders are ``{port}``, ``{config}``, ``{instance_dir}``, ``{workspace}``, ``{name}``, ``{id}`` and
``{python}``; ``{{`` and ``}}`` stand for literal braces. Anything else in braces, or a lone brace, is an
error that names it.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from supervisor.frameworks.spec import FrameworkSpec, Probe

__all__ = ["PLACEHOLDERS", "PlaceholderValues", "expand", "expand_command", "expand_pattern", "expand_probe"]

PLACEHOLDERS = ("port", "config", "instance_dir", "workspace", "name", "id", "python")


@dataclass(eq=False)
class PlaceholderValues:
    """The values one instance gives the placeholders of its framework definition."""

    port: int
    config: str
    instance_dir: str
    workspace: str
    name: str
    id: str
    python: str = field(default_factory=lambda: sys.executable)

    def as_mapping(self) -> dict[str, str]:
        return {key: str(getattr(self, key)) for key in PLACEHOLDERS}


def _known() -> str:
    return ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)


def expand(template: str, values: PlaceholderValues | Mapping[str, str], *, where: str = "value") -> str:
    """Expand placeholders in one string; ``where`` names it in the error (e.g. ``command[2]``)."""
    if "{" not in template and "}" not in template:  # nothing to expand, nothing to refuse
        return template
    mapping = values.as_mapping() if isinstance(values, PlaceholderValues) else values
    try:
        # Check every field first: format_map alone would accept `{port.real}` or `{port[0]}`.
        for _literal, field_name, spec, conversion in string.Formatter().parse(template):
            if field_name is None:
                continue
            if field_name not in mapping:
                raise ValueError(f"unknown placeholder {{{field_name}}} (known: {_known()})")
            if spec or conversion:
                raise ValueError(f"placeholder {{{field_name}}} takes no format spec or conversion")
        return template.format_map(mapping)
    except ValueError as exc:
        raise ValueError(f"{where} {template!r}: {_brace_message(exc)}") from None


def _brace_message(exc: ValueError) -> str:
    text = str(exc)
    if "Single '{'" in text or "Single '}'" in text or "expected '}'" in text:
        return f"stray brace ({text}); write {{{{ or }}}} for a literal brace"
    return text


def expand_command(spec: FrameworkSpec, values: PlaceholderValues) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment of one instance of ``spec``."""
    mapping = values.as_mapping()  # once, not once a string
    argv = [expand(arg, mapping, where=f"{spec.name}: command[{i}]") for i, arg in enumerate(spec.command)]
    env = {key: expand(val, mapping, where=f"{spec.name}: env.{key}") for key, val in spec.env.items()}
    return argv, env


# In a regex, `\x` escapes and `{m,n}` quantifiers are regex syntax, not placeholders.
_PATTERN_TOKEN = re.compile(r"\\.|\{\{|\}\}|\{([^{}]*)\}|[{}]", re.DOTALL)
_QUANTIFIER = re.compile(r"\d+(,\d*)?|,\d+")


def expand_pattern(
    pattern: str, values: PlaceholderValues | Mapping[str, str], *, where: str = "pattern"
) -> str:
    """Expand placeholders in a regex, escaping their values; quantifiers like ``{2,3}`` stay as they are."""
    mapping = values.as_mapping() if isinstance(values, PlaceholderValues) else values

    def replace(m: re.Match[str]) -> str:
        token = m.group(0)
        if token.startswith("\\"):
            return token
        if token in ("{{", "}}"):
            return "\\" + token[0]
        inner = m.group(1)
        if inner is None:
            raise ValueError(
                f"{where} {pattern!r}: stray brace at offset {m.start()}; escape it as \\{token}"
            )
        if _QUANTIFIER.fullmatch(inner):
            return token
        if inner not in mapping:
            raise ValueError(f"{where} {pattern!r}: unknown placeholder {{{inner}}} (known: {_known()})")
        return re.escape(mapping[inner])

    expanded = _PATTERN_TOKEN.sub(replace, pattern)
    try:
        re.compile(expanded)
    except re.error as exc:
        raise ValueError(f"{where} {pattern!r}: not a valid regular expression ({exc})") from None
    return expanded


def expand_probe(probe: Probe, values: PlaceholderValues, *, where: str = "probe") -> Probe:
    """The probe with its ``path``, ``pattern`` and ``command`` expanded for one instance; the probe itself
    (frozen, so shared by every instance) when it has no placeholder to expand."""
    mapping = values.as_mapping()
    update: dict[str, object] = {
        "path": expand(probe.path, mapping, where=f"{where}.path"),
        "pattern": expand_pattern(probe.pattern, mapping, where=f"{where}.pattern") if probe.pattern else "",
        "command": [
            expand(arg, mapping, where=f"{where}.command[{i}]") for i, arg in enumerate(probe.command)
        ],
    }
    if all(value == getattr(probe, key) for key, value in update.items()):
        return probe
    return probe.model_copy(update=update)
