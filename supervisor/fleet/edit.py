"""Change the fleet file the way a careful person would: only the lines that change, nothing else.

Every edit takes ``flock`` on ``<file>.lock`` (so two ``eyriectl`` processes never lose each other's
change), reads the file, refuses to touch a file that is already invalid, edits the lines of one instance,
validates the whole result (schema and hierarchy) and only then replaces the file atomically, keeping its
mode. Comments, key order, quoting and indentation elsewhere stay byte for byte as they were. Flow-style
instance lists (``instances: [{…}]``) are edited through a round-trip dump instead, which keeps comments but
may re-indent.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString

from supervisor._fs import atomic_write, locked
from supervisor._safe_read import read_text
from supervisor.errors import FleetFileError, HierarchyError, NameExists, NotFound
from supervisor.fleet import _textedit as te
from supervisor.fleet._yaml import YamlSyntaxError, compose, dump_rt, rt_load
from supervisor.fleet.loader import MAX_FLEET_BYTES, parse_fleet
from supervisor.fleet.sections import InstanceDecl, ProjectDecl

__all__ = ["add_instance", "remove_instance", "remove_project", "set_autostart", "set_project"]

_NEW_FILE = "version: 1\n"
_YAML11_BOOL = re.compile(r"y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF")


def add_instance(path: str | os.PathLike[str], decl: InstanceDecl) -> None:
    """Append ``decl`` to ``instances`` (writing only its non-default keys); creates the file if missing.

    Raises `NameExists` for a declared name, `HierarchyError` or `FleetFileError` if the result would be
    invalid; the file is then unchanged.
    """
    _edit(Path(path), f"adding {decl.name!r}", lambda text, tree: _add(text, tree, decl), create=True)


def remove_instance(path: str | os.PathLike[str], name: str) -> None:
    """Delete the instance's entry (its lines only); `NotFound` if the file does not declare it."""
    _edit(Path(path), f"removing {name!r}", lambda text, tree: _remove(text, tree, name))


def set_autostart(path: str | os.PathLike[str], name: str, enabled: bool) -> None:
    """Set ``autostart`` of one instance (enable/disable); no write when it already has that value."""
    _edit(Path(path), f"changing {name!r}", lambda text, tree: _autostart(text, tree, name, enabled))


def set_project(path: str | os.PathLike[str], project_id: str, changes: dict[str, str]) -> None:
    """List ``project_id`` under ``projects:`` or change its keys (``name``, ``goal``, ``description``; ""
    clears one). Only that project's lines are rewritten (comments inside its entry are not kept); the
    file must exist."""
    _edit(Path(path), f"setting project {project_id!r}", lambda t, r: _set_project(t, r, project_id, changes))


def remove_project(path: str | os.PathLike[str], project_id: str) -> None:
    """Delete the project's entry under ``projects:``; `NotFound` if it is not listed. Instances naming it
    still load (with a warning)."""
    _edit(Path(path), f"removing project {project_id!r}", lambda t, r: _remove_project(t, r, project_id))


# --- the transaction ----------------------------------------------------------------------------------


def _edit(file: Path, what: str, change: Callable[[str, Any], str], *, create: bool = False) -> None:
    lock = file.with_name(file.name + ".lock")
    if create:
        file.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock):
        try:
            text = read_text(file, limit=MAX_FLEET_BYTES)
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            if not create:
                raise FleetFileError(
                    "fleet file not found; create one with 'eyriectl init'", path=str(file)
                ) from None
            text, mode = "", 0o600
        except UnicodeDecodeError as exc:
            raise FleetFileError(f"not UTF-8 text (bad byte at offset {exc.start})", path=str(file)) from None
        except OSError as exc:
            raise FleetFileError(f"cannot be read: {exc.strerror or exc}", path=str(file)) from None
        try:
            root = compose(text)
        except YamlSyntaxError as exc:
            raise FleetFileError(f"not valid YAML: {exc.message}", path=str(file), line=exc.line) from None
        if root is not None:
            parse_fleet(text, path=file)  # an invalid file is reported as it is, with its own line numbers
        new_text = change(text, root)
        if new_text == text:
            return
        try:
            parse_fleet(new_text, path=file)
        except HierarchyError as exc:
            raise HierarchyError(f"{what} refused: {exc}") from None
        except FleetFileError as exc:
            raise FleetFileError(
                f"{what} would make the file invalid: {exc.reason}", path=exc.path, line=exc.line, key=exc.key
            ) from None
        atomic_write(file, new_text, mode=mode)


def _find(root: Any, name: str) -> tuple[SequenceNode, int] | None:
    entry = te.get(root, "instances")
    if entry is not None and isinstance(entry[1], SequenceNode):
        for index, item in enumerate(entry[1].value):
            found = te.get(item, "name")
            if found is not None and isinstance(found[1], ScalarNode) and found[1].value == name:
                return entry[1], index
    return None


def _require(root: Any, name: str) -> tuple[SequenceNode, int]:
    found = _find(root, name)
    if found is None:
        raise NotFound(f"instance {name!r} is not declared in the fleet file")
    return found


def _rt_item(text: str, name: str) -> tuple[CommentedMap, CommentedSeq, int]:
    """The round-trip tree, its instance list and the index of ``name``, for a whole-file rewrite."""
    tree = rt_load(text)
    seq = tree["instances"]
    index = next(i for i, item in enumerate(seq) if item.get("name") == name)
    return tree, seq, index


# --- add ------------------------------------------------------------------------------------------------


def _compact(decl: InstanceDecl) -> CommentedMap:
    """The instance's non-default keys (``name`` and ``framework`` always), nested values in flow style."""
    data = decl.model_dump(mode="json", exclude_defaults=True)
    item = CommentedMap()
    item["name"] = decl.name
    item["framework"] = decl.framework
    for key, value in data.items():
        if key not in item:
            item[key] = _flow(value)
    return item


def _flow(value: Any) -> Any:
    if isinstance(value, str) and _YAML11_BOOL.fullmatch(value):
        return SingleQuotedScalarString(value)  # a YAML 1.1 reader would see a boolean
    if isinstance(value, dict):
        node = CommentedMap((k, _flow(v)) for k, v in value.items())
        node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _render(decl: InstanceDecl, dash_col: int, key_col: int) -> str:
    text = dump_rt([_compact(decl)], mapping=2, sequence=max(key_col - dash_col, 2), offset=0)
    pad = " " * dash_col
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _add(text: str, root: Any, decl: InstanceDecl) -> str:
    if root is None:  # missing, empty or only comments
        text = text + ("\n" if text and not text.endswith("\n") else "") + _NEW_FILE
        root = compose(text)
    if (found := _find(root, decl.name)) is not None:
        seq, index = found
        line = seq.value[index].start_mark.line + 1
        raise NameExists(f"instance {decl.name!r} is already declared (line {line})")
    lines = text.splitlines(keepends=True)
    entry = te.get(root, "instances")
    if te.is_flow(root):
        return _redump_add(text, decl)
    if entry is None:
        te.ensure_newline(lines)
        lines.append("instances:\n")
        te.append_lines(lines, len(lines), _render(decl, 2, 4))
        return "".join(lines)
    key_node, listed = entry
    if te.is_null(listed) or (isinstance(listed, SequenceNode) and not listed.value):
        key_line, key_col = key_node.start_mark.line, key_node.start_mark.column
        parts = te.key_value_text(lines[key_line])
        if parts is None or parts[1] not in ("", "null", "Null", "NULL", "~", "[]"):
            return _redump_add(text, decl)
        key, _value, rest = parts
        lines[key_line] = key + (rest if rest.endswith("\n") else rest + "\n")
        te.append_lines(lines, key_line + 1, _render(decl, key_col + 2, key_col + 4))
        return "".join(lines)
    if not isinstance(listed, SequenceNode) or te.is_flow(listed):
        return _redump_add(text, decl)
    span = te.item_span(lines, listed.value[-1])
    if span is None:
        return _redump_add(text, decl)
    first, end, dash_col, key_col = span
    spaced = len(listed.value) > 1 and first > 0 and lines[first - 1].strip() == ""
    te.append_lines(lines, end, ("\n" if spaced else "") + _render(decl, dash_col, key_col))
    return "".join(lines)


def _redump_add(text: str, decl: InstanceDecl) -> str:
    tree = rt_load(text)
    if not isinstance(tree.get("instances"), CommentedSeq):
        tree["instances"] = CommentedSeq()
    tree["instances"].append(_compact(decl))
    return te.redump(tree, text)


# --- remove ---------------------------------------------------------------------------------------------


def _remove(text: str, root: Any, name: str) -> str:
    seq, index = _require(root, name)
    lines = text.splitlines(keepends=True)
    span = None if te.is_flow(root) or te.is_flow(seq) else te.item_span(lines, seq.value[index])
    if span is None:
        tree, rt_seq, rt_index = _rt_item(text, name)
        del rt_seq[rt_index]
        return te.redump(tree, text)
    first, end, _dash_col, _key_col = span
    if first > 0 and lines[first - 1].strip() == "" and end < len(lines) and lines[end].strip() == "":
        end += 1  # the item sat between two blank lines: keep one of them
    del lines[first:end]
    return "".join(lines)


# --- autostart ------------------------------------------------------------------------------------------


def _autostart(text: str, root: Any, name: str, enabled: bool) -> str:
    seq, index = _require(root, name)
    item = seq.value[index]
    current = te.get(item, "autostart")
    word = "true" if enabled else "false"
    if current is None and enabled:
        return text  # absent means true
    lines = text.splitlines(keepends=True)
    if current is not None:
        value = current[1]
        if isinstance(value, ScalarNode) and value.value.lower() == word:
            return text
        if te.replace_scalar(lines, value, word):
            return "".join(lines)
    elif (name_entry := te.get(item, "name")) is not None and not (
        te.is_flow(item) or te.is_flow(seq) or te.is_flow(root)
    ):
        name_key, name_value = name_entry
        at = name_value.end_mark.line + 1
        te.append_lines(lines, at, " " * name_key.start_mark.column + f"autostart: {word}\n")
        return "".join(lines)
    tree, rt_seq, rt_index = _rt_item(text, name)
    rt_seq[rt_index]["autostart"] = enabled
    return te.redump(tree, text)


# --- projects -------------------------------------------------------------------------------------------


def _entry_span(lines: list[str], key: Node) -> tuple[int, int]:
    """Lines ``first:end`` of a block-mapping entry: its key line and every line indented deeper."""
    first, col = key.start_mark.line, key.start_mark.column
    end = first + 1
    for j in range(first + 1, len(lines)):
        if lines[j].strip() == "":
            continue
        if len(lines[j]) - len(lines[j].lstrip(" ")) <= col:
            break
        end = j + 1
    return first, end


def _project_block(project_id: str, project: dict[str, str], col: int) -> str:
    data = {key: value for key, value in project.items() if value}
    if not data:
        return " " * col + f"{project_id}: {{}}\n"
    item = CommentedMap()
    item[project_id] = CommentedMap(
        (key, LiteralScalarString(value + "\n") if "\n" in value else _flow(value))
        for key, value in data.items()
    )
    text = dump_rt(item, mapping=2, sequence=4, offset=2)
    return "".join(" " * col + line if line.strip() else line for line in text.splitlines(keepends=True))


def _listed(root: Any, project_id: str) -> tuple[Node, Node] | None:
    entry = te.get(root, "projects")
    return te.get(entry[1], project_id) if entry is not None else None


def _set_project(text: str, root: Any, project_id: str, changes: dict[str, str]) -> str:
    if root is None:
        raise FleetFileError("the file is empty; a fleet file needs at least 'version: 1'")
    unknown = set(changes) - set(ProjectDecl.model_fields)
    if unknown:
        raise ValueError(f"unknown project key(s): {', '.join(sorted(unknown))}")
    current = parse_fleet(text).projects.get(project_id, ProjectDecl())
    project = {**current.model_dump(), **changes}
    lines = text.splitlines(keepends=True)
    entry = te.get(root, "projects")
    if te.is_flow(root) or (entry is not None and te.is_flow(entry[1])):
        return _redump_project(text, project_id, project)
    if (found := _listed(root, project_id)) is not None:
        first, end = _entry_span(lines, found[0])
        lines[first:end] = _project_block(project_id, project, found[0].start_mark.column).splitlines(True)
        return "".join(lines)
    if entry is None:
        at = _before_instances(lines, root)
        te.append_lines(lines, at, "projects:\n" + _project_block(project_id, project, 2) + "\n")
        return "".join(lines)
    key_node, listed = entry
    if not isinstance(listed, MappingNode) or not listed.value:
        parts = te.key_value_text(lines[key_node.start_mark.line])
        if parts is None or parts[1] not in ("", "null", "Null", "NULL", "~", "{}"):
            return _redump_project(text, project_id, project)
        key, _value, rest = parts
        lines[key_node.start_mark.line] = key + (rest if rest.endswith("\n") else rest + "\n")
        col = key_node.start_mark.column + 2
        te.append_lines(lines, key_node.start_mark.line + 1, _project_block(project_id, project, col))
        return "".join(lines)
    last_key = listed.value[-1][0]
    _first, end = _entry_span(lines, last_key)
    te.append_lines(lines, end, _project_block(project_id, project, last_key.start_mark.column))
    return "".join(lines)


def _before_instances(lines: list[str], root: Any) -> int:
    """Where a new top-level section goes: above ``instances:`` and the comments that lead into it."""
    entry = te.get(root, "instances")
    if entry is None:
        te.ensure_newline(lines)
        return len(lines)
    at: int = entry[0].start_mark.line
    while at > 0 and lines[at - 1].lstrip().startswith("#"):
        at -= 1
    return at


def _redump_project(text: str, project_id: str, project: dict[str, str]) -> str:
    tree = rt_load(text)
    if not isinstance(tree.get("projects"), CommentedMap):
        tree["projects"] = CommentedMap()
    tree["projects"][project_id] = CommentedMap((k, v) for k, v in project.items() if v)
    return te.redump(tree, text)


def _remove_project(text: str, root: Any, project_id: str) -> str:
    found = _listed(root, project_id)
    if found is None:
        raise NotFound(f"project {project_id!r} is not listed under 'projects:' in the fleet file")
    entry = te.get(root, "projects")
    assert entry is not None
    if te.is_flow(root) or te.is_flow(entry[1]):
        tree = rt_load(text)
        del tree["projects"][project_id]
        return te.redump(tree, text)
    lines = text.splitlines(keepends=True)
    first, end = _entry_span(lines, found[0])
    del lines[first:end]
    return "".join(lines)
