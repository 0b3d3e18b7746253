"""The fleet file's YAML, read by ruamel.yaml alone: its C parser for loads and node marks, round-trip for
error lines and rewrites.

A reload runs on every SIGHUP, so loads go through ``ruamel.yaml.clib``'s parser and composer (libyaml
compiled in), whose node tree also gives every node's line and column for line-level edits. Scalars follow
YAML 1.2's core schema (``yes`` and ``on`` are strings, ``010`` is ten, no timestamps), so the fast path and
the round-trip path agree on what a value means, and a key given twice in one mapping is an error rather
than a silent overwrite. The round-trip loader, slower but comment-aware, runs only when an error is
located or a layout has to be rewritten.

Anchors and aliases are allowed, but a document whose aliases expand to more than `MAX_EXPANDED_NODES`
nodes, or that refers to itself, is refused before anything is built from it: a few hundred bytes of nested
aliases ("billion laughs") would otherwise take gigabytes once validated.
"""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError
from ruamel.yaml.cyaml import CSafeLoader
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.tag import Tag

__all__ = ["MAX_EXPANDED_NODES", "YamlSyntaxError", "compose", "dump_rt", "fast_load", "rt_load"]

MAX_EXPANDED_NODES = 200_000
"""The most nodes a document may hold once its aliases are expanded (1,000 instances make ~30,000)."""
MAX_DEPTH = 200
"""The deepest nesting of collections accepted: libyaml's composer recurses in C once per level, and a
document nested tens of thousands deep would overflow the stack."""
_OPENERS = {MappingStartEvent, SequenceStartEvent}
_CLOSERS = {MappingEndEvent, SequenceEndEvent}

_MERGE = "tag:yaml.org,2002:merge"
_DEFAULT_TAGS: dict[type[Node], Tag] = {
    ScalarNode: Tag(suffix="tag:yaml.org,2002:str"),
    SequenceNode: Tag(suffix="tag:yaml.org,2002:seq"),
    MappingNode: Tag(suffix="tag:yaml.org,2002:map"),
}

# YAML 1.2 core schema: (tag, pattern, possible first characters; "" is the empty scalar).
_CORE_SCHEMA: list[tuple[str, str, list[str]]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", [*"~nN", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
    (_MERGE, r"^(?:<<)$", ["<"]),
]


class YamlSyntaxError(Exception):
    """The text is not YAML, or repeats a key; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Core12Loader(CSafeLoader):
    """libyaml's parser and composer; YAML 1.2 core-schema scalars; a repeated or unhashable key refused."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[Tag, re.Pattern[str]]]] = {}

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> Tag:
        """The core-schema tag of a node, as one of a few shared `Tag` objects.

        A node given its tag as text builds a `Tag` of its own and decodes it character by character; with
        thousands of nodes per fleet file, sharing them halves a load.
        """
        if kind is ScalarNode and implicit[0]:
            for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                if regexp.match(value):
                    return tag
        return _DEFAULT_TAGS[kind]

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = self._unique_keys(node)
        if len(keys) < len(node.value):  # ``<<`` merge keys: the base constructor applies them
            return super().construct_mapping(node, deep=deep)
        return {
            key: self.construct_object(value_node, deep=deep)
            for key, (_key_node, value_node) in zip(keys, node.value, strict=True)
        }

    def _unique_keys(self, node: Any) -> list[Any]:
        """The mapping's own keys (merge keys left out), refusing a repeated or unhashable one."""
        keys: list[Any] = []
        first_line: dict[Any, int] = {}
        for key_node, _value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # ruamel.yaml would turn a list key into a tuple
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                ) from None
            if key in first_line:
                raise ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
            keys.append(key)
        return keys

    def construct_yaml_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits[:2] in ("0o", "0x"):
            return sign * int(digits, 0)
        return sign * int(digits, 10)


for _tag, _pattern, _first in _CORE_SCHEMA:
    _Core12Loader.add_implicit_resolver_base(Tag(suffix=_tag), re.compile(_pattern), _first)
_Core12Loader.add_constructor("tag:yaml.org,2002:int", _Core12Loader.construct_yaml_int)


def _syntax_error(exc: YAMLError) -> YamlSyntaxError:
    if not isinstance(exc, MarkedYAMLError):
        return YamlSyntaxError(str(exc), None)
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{problem} ({exc.context})"
    return YamlSyntaxError(problem, mark.line + 1 if mark else None)


def compose(text: str) -> Node | None:
    """The node tree of ``text``: every node knows its start and end marks, collections their flow style."""
    try:
        _check_depth(text)
        node: Node | None = _Core12Loader(text).get_single_node()
    except YAMLError as exc:
        raise _syntax_error(exc) from None
    if node is not None:
        _check_expansion(node)
    return node


def fast_load(text: str) -> Any:
    """Plain Python data (dicts, lists, scalars) from ``text``; raises `YamlSyntaxError`."""
    try:
        _check_depth(text)
        loader = _Core12Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except YAMLError as exc:
        raise _syntax_error(exc) from None


def _check_depth(text: str) -> None:
    """Refuse a document nested deeper than `MAX_DEPTH`, from the parser's events, before composing it.

    Every collection opens with ``[``, ``{``, ``-``, ``?`` or a ``:``, so text with fewer of those than
    the limit cannot be too deep and skips the scan.
    """
    if sum(text.count(c) for c in "[{-?:") < MAX_DEPTH:
        return
    depth = 0
    for event in iter(_Core12Loader(text).get_event, None):
        kind = type(event)
        if kind in _OPENERS:
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlSyntaxError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark.line + 1)
        elif kind in _CLOSERS:
            depth -= 1


def _check_expansion(root: Node) -> None:
    """Refuse a node graph that refers to itself or expands past `MAX_EXPANDED_NODES` nodes.

    Aliases make the composed tree a graph whose shared nodes count once per use; sizes are summed bottom
    up, each shared node sized once, without recursion (so nesting depth cannot overflow the stack).
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_sized = stack.pop()
        key = id(node)
        if children_sized:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_EXPANDED_NODES:
                raise YamlSyntaxError(
                    f"aliases expand to more than {MAX_EXPANDED_NODES} nodes; write the values out",
                    node.start_mark.line + 1,
                )
            sizes[key] = size
        elif key not in sizes:
            if key in open_nodes:
                raise YamlSyntaxError("an alias refers to a node that contains it", node.start_mark.line + 1)
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _rt() -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    return rt


def rt_load(text: str) -> Any:
    """ruamel.yaml round-trip nodes (``CommentedMap``/``CommentedSeq`` with ``.lc`` line info)."""
    try:
        return _rt().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(exc.problem or "invalid YAML", mark.line + 1 if mark else None) from None
    except YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from None


def dump_rt(data: Any, *, mapping: int = 2, sequence: int = 4, offset: int = 2) -> str:
    """Round-trip dump with the given indentation (ruamel.yaml's ``indent`` semantics)."""
    rt = _rt()
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = StringIO()
    rt.dump(data, out)
    return out.getvalue()
