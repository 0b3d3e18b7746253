"""The value types the fleet file's sections share: ``NoneIsEmpty`` and ``FleetDuration``."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from supervisor.fleet._fields import Env, FleetDuration, NoneIsEmpty


def _shout(value: str) -> str:
    return value.upper()


class _Inner(BaseModel):
    size: int = 3


class _Sample(BaseModel):
    text: NoneIsEmpty[str] = "default"
    checked: NoneIsEmpty[Annotated[str, AfterValidator(_shout)]] = ""
    items: NoneIsEmpty[list[int]] = Field(default_factory=lambda: [1])
    mapping: NoneIsEmpty[dict[str, int]] = Field(default_factory=lambda: {"a": 1})
    env: NoneIsEmpty[Env] = Field(default_factory=dict)
    inner: NoneIsEmpty[_Inner] = _Inner(size=9)


class TestNoneIsEmpty:
    def test_none_is_the_empty_value_of_each_type(self) -> None:
        """A key given as None becomes "", [], {} or the section built from no keys, not the field default."""
        sample = _Sample.model_validate(
            {"text": None, "items": None, "mapping": None, "env": None, "inner": None}
        )
        assert (sample.text, sample.items, sample.mapping, sample.env) == ("", [], {}, {})
        assert sample.inner == _Inner()

    def test_absent_key_keeps_the_default(self) -> None:
        """Only an explicit None is rewritten; a missing key still takes the field's default."""
        sample = _Sample()
        assert (sample.text, sample.items, sample.mapping, sample.inner.size) == ("default", [1], {"a": 1}, 9)

    def test_values_pass_through_to_the_inner_validators(self) -> None:
        """A real value is validated as the wrapped type would be, inner validators included."""
        sample = _Sample.model_validate({"checked": "abc", "items": ["2"], "env": {"N": 1}})
        assert (sample.checked, sample.items, sample.env) == ("ABC", [2], {"N": "1"})

    def test_none_then_inner_validators(self) -> None:
        """None is replaced before the wrapped type's own validators run."""
        assert _Sample.model_validate({"checked": None}).checked == ""

    def test_wrong_type_still_refused(self) -> None:
        """Anything other than None is not treated as empty."""
        with pytest.raises(ValidationError) as info:
            _Sample.model_validate({"items": "x"})
        assert info.value.errors()[0]["loc"] == ("items",)


class _Timed(BaseModel):
    delay: FleetDuration = 1.0


class TestFleetDuration:
    def test_reads_text_and_numbers(self) -> None:
        """``250ms``, ``5m`` and plain numbers all become seconds."""
        assert [_Timed(delay=v).delay for v in ("250ms", "5m", 2, 1.5)] == [0.25, 300.0, 2.0, 1.5]

    def test_written_short_in_json_only(self) -> None:
        """JSON (what edits write into the file) uses the short form; Python dumps keep the float."""
        timed = _Timed(delay=90)
        assert timed.model_dump(mode="json") == {"delay": "90s"}
        assert timed.model_dump() == {"delay": 90.0}

    def test_bad_duration_refused(self) -> None:
        """Text that is not a duration is a validation error naming the value."""
        with pytest.raises(ValidationError, match="not a duration"):
            _Timed(delay="soon")
