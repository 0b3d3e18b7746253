"""Line-level surgery on YAML text, guided by the node marks of `supervisor.fleet._yaml.compose`.

A round-trip dump re-indents the whole file to one style; editing only the lines that change leaves every
other byte (comments, blank lines, quoting, indentation) exactly as the user wrote it. Helpers return None
when the layout is one they do not handle (flow-style collections); the caller then falls back to a
round-trip dump with `redump`.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.util import load_yaml_guess_indent

from supervisor.fleet._yaml import dump_rt

__all__ = [
    "append_lines",
    "ensure_newline",
    "get",
    "is_flow",
    "is_null",
    "item_span",
    "key_value_text",
    "redump",
    "replace_scalar",
]

_SCALAR = re.compile(r"[^\s#,}\]]+")
_DASH_ALONE = re.compile(r"^\s*-\s*(#.*)?$")
_KEY_LINE = re.compile(r"^(?P<key>\s*[^\s#][^#]*?:)(?P<value>[^#]*?)(?P<rest>\s*(#.*)?\n?)$")
_NULL_TAG = "tag:yaml.org,2002:null"


def get(node: Any, key: str) -> tuple[Node, Node] | None:
    """``(key node, value node)`` of ``key`` in a mapping node, or None."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return key_node, value_node
    return None


def is_flow(node: Any) -> bool:
    """True for a flow-style (``{…}`` / ``[…]``) mapping or sequence."""
    return isinstance(node, MappingNode | SequenceNode) and bool(node.flow_style)


def is_null(node: Any) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def ensure_newline(lines: list[str]) -> None:
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"


def _dash(lines: list[str], item: Node) -> tuple[int, int] | None:
    """Line and column of the ``-`` that starts a block-sequence item."""
    line, col = item.start_mark.line, item.start_mark.column
    prefix = lines[line][:col]
    if prefix.strip() == "-":
        return line, prefix.index("-")
    for j in range(line - 1, -1, -1):
        text = lines[j].strip()
        if text == "" or text.startswith("#"):
            continue
        return (j, lines[j].index("-")) if _DASH_ALONE.match(lines[j]) else None
    return None


def item_span(lines: list[str], item: Node) -> tuple[int, int, int, int] | None:
    """``(first, end, dash_col, key_col)`` of a block-sequence item: lines ``first:end`` hold it entirely.

    The item runs from its dash to its last line indented deeper than the dash (comments included); blank
    lines and comments that follow at the dash's level or less belong to whatever comes next.
    """
    dash = _dash(lines, item)
    if dash is None:
        return None
    first, dash_col = dash
    end = first + 1
    for j in range(first + 1, len(lines)):
        if lines[j].strip() == "":
            continue
        if _indent(lines[j]) <= dash_col:
            break
        end = j + 1
    key_col = item.start_mark.column if item.start_mark.line == first else dash_col + 2
    return first, end, dash_col, key_col


def replace_scalar(lines: list[str], node: Node, new: str) -> bool:
    """Replace the plain scalar ``node`` in place; False when it is not a one-line plain scalar."""
    line, col = node.start_mark.line, node.start_mark.column
    match = _SCALAR.match(lines[line], col)
    if match is None or node.end_mark.line != line or match.end() != node.end_mark.column:
        return False
    text = lines[line]
    lines[line] = text[: match.start()] + new + text[match.end() :]
    return True


def key_value_text(line: str) -> tuple[str, str, str] | None:
    """Split ``key: value  # comment`` into key (with colon), value (stripped) and the rest."""
    match = _KEY_LINE.match(line)
    if match is None:
        return None
    return match["key"], match["value"].strip(), match["rest"]


def append_lines(lines: list[str], at: int, chunk: str) -> None:
    """Insert ``chunk`` (whole lines) before line ``at``."""
    if at == len(lines):
        ensure_newline(lines)
    lines[at:at] = chunk.splitlines(keepends=True)


def redump(tree: Any, text: str) -> str:
    """Whole-file round-trip dump in the file's own indentation: for layouts line surgery does not handle."""
    _data, indent, block_seq_indent = load_yaml_guess_indent(text)
    offset = block_seq_indent or 0
    return dump_rt(tree, mapping=indent or 2, sequence=(indent or 2) + offset, offset=offset)
