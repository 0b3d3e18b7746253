"""The fleet file's YAML reader: node marks for edits and the edge cases of its core-schema loader."""

from __future__ import annotations

import pytest
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from supervisor.fleet._yaml import YamlSyntaxError, compose, fast_load


class TestCompose:
    def test_nodes_carry_marks_and_flow_style(self) -> None:
        """Every node knows where it starts and ends, and a collection whether it is flow style."""
        root = compose("version: 1\ninstances:\n  - {name: a}\n")
        assert isinstance(root, MappingNode)
        key, listed = root.value[1]
        assert isinstance(key, ScalarNode) and key.start_mark.line == 1
        assert isinstance(listed, SequenceNode) and not listed.flow_style
        item = listed.value[0]
        assert item.flow_style and (item.start_mark.line, item.start_mark.column) == (2, 4)

    def test_empty_text_has_no_root(self) -> None:
        """An empty or comment-only document composes to None."""
        assert compose("# nothing\n") is None

    def test_syntax_error_has_a_line(self) -> None:
        """A parser error becomes `YamlSyntaxError` with a 1-based line."""
        with pytest.raises(YamlSyntaxError) as info:
            compose("a: [1\n")
        assert info.value.line == 2


class TestFastLoad:
    def test_no_yaml_11_or_extension_scalars(self) -> None:
        """Timestamps, ``_`` digit separators and ``0b`` numbers stay strings, as in the core schema."""
        assert fast_load("a: [2024-01-01, 1_000, 0b11]") == {"a": ["2024-01-01", "1_000", "0b11"]}

    def test_unhashable_key_refused(self) -> None:
        """A collection used as a key is an error, not a tuple key."""
        with pytest.raises(YamlSyntaxError, match="unhashable key") as info:
            fast_load("ok: 1\n{[1]: 2}: 3\n")
        assert info.value.line == 2

    def test_repeated_key_in_flow_mapping(self) -> None:
        """Duplicate keys are refused inside flow mappings too, naming the first one's line."""
        with pytest.raises(YamlSyntaxError, match=r"appears twice.*first at line 1"):
            fast_load("a: {x: 1, x: 2}\n")
