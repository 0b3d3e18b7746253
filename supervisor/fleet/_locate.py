"""Turn pydantic's error locations into fleet-file lines and dotted key paths a person can act on.

Only runs on the error path, so it can afford ruamel.yaml's round-trip parse, whose nodes know their lines.
Values are never quoted back: an ``env`` value may be a secret.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from supervisor.errors import FleetFileError
from supervisor.fleet._yaml import YamlSyntaxError, rt_load

__all__ = ["fleet_error", "key_path", "line_of"]

Loc = Sequence[str | int]
_MORE = 5


def key_path(loc: Loc) -> str:
    """``("instances", 2, "restart", "max_delay")`` → ``instances[2].restart.max_delay``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def line_of(tree: Any, loc: Loc) -> int:
    """1-based line of the deepest node of ``loc`` present in the round-trip tree (1 when none is)."""
    line = 1
    node = tree
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
                continue
            if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
                continue
        except (KeyError, IndexError, TypeError):  # merged keys and aliases have no position of their own
            pass
        if part == "[key]":
            continue
        break
    return line


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from an annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class whose fields live at ``loc`` (for "did you mean" hints)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(err: Any, root: type[BaseModel], tree: Any) -> str:
    kind = err["type"]
    loc = err["loc"]
    last = loc[-1] if loc else ""
    if kind == "missing":
        return f"missing required key {last!r}"
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = sorted(model.model_fields) if model else []
        hint = ""
        if close := difflib.get_close_matches(str(last), allowed, n=1):
            hint = f"; did you mean {close[0]!r}?"
        elif allowed:
            hint = f"; allowed here: {', '.join(allowed)}"
        return f"unknown key {last!r}{hint}"
    if kind == "duplicate_name":
        first = ("instances", err["ctx"]["first"])
        return (
            f"instance name {err['ctx']['name']!r} is declared twice: {key_path(first)} at line"
            f" {line_of(tree, first)} and {key_path(loc[:-1])} at line {line_of(tree, loc)}"
        )
    return str(err["msg"]).removeprefix("Value error, ")


def fleet_error(exc: ValidationError, text: str, path: str, root: type[BaseModel]) -> FleetFileError:
    """One `FleetFileError` for the first error (line, key, reason), listing a few more in its message."""
    try:
        tree = rt_load(text)
    except YamlSyntaxError:
        tree = None
    errors = exc.errors(include_url=False)
    located = [(line_of(tree, e["loc"]), key_path(e["loc"]), _describe(e, root, tree)) for e in errors]
    line, key, reason = located[0]
    if len(located) > 1:
        more = [f"line {ln}: {k}: {r}" if k else f"line {ln}: {r}" for ln, k, r in located[1 : 1 + _MORE]]
        extra = len(located) - 1 - len(more)
        reason += "\n  also " + "\n  also ".join(more) + (f"\n  and {extra} more" if extra else "")
    return FleetFileError(reason, path=path, line=line, key=key)
