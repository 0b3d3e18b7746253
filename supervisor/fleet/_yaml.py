"""Two YAML readers: libyaml for every load and edit, ruamel.yaml round-trip for errors and rewrites.

A reload runs on every SIGHUP, so the common path parses with libyaml (PyYAML's C loader): about ten times
faster than a pure-Python parser, and its node tree (with each node's line and column) guides line-level
edits. It reads YAML 1.2's core schema, as ruamel.yaml does, so both readers agree on what a scalar means
(``yes`` and ``on`` are strings, ``010`` is ten), and a key given twice in one mapping is an error rather
than a silent overwrite. ruamel.yaml's round-trip loader, slower but comment-aware, locates errors and
rewrites the layouts that line edits leave alone; it is imported only when one of those is needed.
"""

from __future__ import annotations

import re
from io import StringIO
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ruamel.yaml import YAML

__all__ = ["YamlSyntaxError", "compose", "dump_rt", "fast_load", "rt_load"]

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_DEFAULT_TAGS: dict[type[yaml.Node], str] = {
    yaml.ScalarNode: "tag:yaml.org,2002:str",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
    yaml.MappingNode: "tag:yaml.org,2002:map",
}


class YamlSyntaxError(Exception):
    """The text is not YAML, or repeats a key; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Core12Loader(_Base):  # type: ignore[valid-type, misc]
    """Safe loader with YAML 1.2 core-schema scalars and duplicate keys refused."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    # The resolver is called for every node libyaml builds; these lean versions (no path resolvers, one
    # dictionary lookup per plain scalar) make composing a large file about a third faster.

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                if regexp.match(value):
                    return tag
        return _DEFAULT_TAGS[kind]


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0o", "0x"):
        return sign * int(digits, 0)
    return sign * int(digits, 10)


# YAML 1.2 core schema: (tag, pattern, possible first characters; "" is the empty scalar).
_RESOLVERS: list[tuple[str, str, list[str]]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", [*"~nN", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
    (_MERGE_TAG, r"^(?:<<)$", ["<"]),
]
for _tag, _pattern, _first in _RESOLVERS:
    _Core12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)
_Core12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Fallback(Exception):
    """The document uses a feature the quick walk leaves to PyYAML's constructor (tags, merge keys)."""


_STR, _INT, _FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SCALARS = _Core12Loader("")  # only its scalar constructors are used


def _walk(node: yaml.Node) -> Any:
    """Node tree → Python data for the plain core schema; about twice as fast as the generic constructor."""
    if isinstance(node, yaml.ScalarNode):
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT:
            return _construct_int(_SCALARS, node)
        if tag == _FLOAT:
            return _SCALARS.construct_yaml_float(node)
        if tag == _BOOL and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if tag == _NULL:
            return None
        raise _Fallback
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [_walk(item) for item in node.value]
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        out: dict[Any, Any] = {}
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _Fallback
            key = _walk(key_node)
            try:
                if key in out:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice in one mapping (first at line {first[key]})",
                        key_node.start_mark,
                    )
            except TypeError:  # unhashable key
                raise _Fallback from None
            first[key] = key_node.start_mark.line + 1
            out[key] = _walk(value_node)
        return out
    raise _Fallback


def _syntax_error(exc: yaml.YAMLError) -> YamlSyntaxError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return YamlSyntaxError(str(exc), None)
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{problem} ({exc.context})"
    return YamlSyntaxError(problem, mark.line + 1 if mark else None)


def compose(text: str) -> yaml.Node | None:
    """libyaml's node tree of ``text``: every node knows its start line and column, and its flow style."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_Core12Loader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    return node


def fast_load(text: str) -> Any:
    """Plain Python data (dicts, lists, scalars) from ``text``; raises `YamlSyntaxError`."""
    node = compose(text)
    if node is None:
        return None
    try:
        try:
            return _walk(node)
        except (_Fallback, RecursionError):
            return yaml.load(text, Loader=_Core12Loader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None


def _rt() -> YAML:
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    return rt


def rt_load(text: str) -> Any:
    """ruamel.yaml round-trip nodes (``CommentedMap``/``CommentedSeq`` with ``.lc`` line info)."""
    from ruamel.yaml.error import MarkedYAMLError as RuamelMarkedError
    from ruamel.yaml.error import YAMLError as RuamelYAMLError

    try:
        return _rt().load(text)
    except RuamelMarkedError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(exc.problem or "invalid YAML", mark.line + 1 if mark else None) from None
    except RuamelYAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from None


def dump_rt(data: Any, *, mapping: int = 2, sequence: int = 4, offset: int = 2) -> str:
    """Round-trip dump with the given indentation (ruamel.yaml's ``indent`` semantics)."""
    rt = _rt()
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = StringIO()
    rt.dump(data, out)
    return out.getvalue()
