"""Value types the fleet file's sections share: durations as people write them, environments, empty keys."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, GetCoreSchemaHandler, PlainSerializer
from pydantic_core import CoreSchema, core_schema

from supervisor.models import Duration, format_duration
from supervisor.paths import ID_PATTERN

__all__ = ["Env", "FleetDuration", "NoneIsEmpty", "Secrets"]

_T = TypeVar("_T")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


FleetDuration = Annotated[
    Duration, PlainSerializer(format_duration, return_type=str | float, when_used="json")
]
"""Seconds; accepts ``250ms``, ``10s``, ``5m``, ``1h`` or a number; written back in the short form."""


def _empty_of(annotation: Any) -> Callable[[], Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin is list:
        return list
    if isinstance(origin, type) and issubclass(origin, str):
        return str
    return dict  # a mapping, or a section that a mapping of no keys validates into


class _NoneIsEmpty:
    """Validates ``None`` as the empty value of the annotated type."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        empty = _empty_of(source)

        def none_is_empty(value: Any) -> Any:
            return empty() if value is None else value

        return core_schema.no_info_before_validator_function(none_is_empty, handler(source))


NoneIsEmpty = Annotated[_T, _NoneIsEmpty()]
"""A key written with no value (``env:``, ``restart:``) means the empty string, list, mapping or section."""


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"environment variable name {name!r} is invalid: use letters, digits and '_', not starting"
            " with a digit"
        )
    return name


def _env_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("environment value contains a NUL byte")
    return value


Env = dict[
    Annotated[str, AfterValidator(_env_name)],
    Annotated[str, BeforeValidator(_env_value), AfterValidator(_no_nul)],
]
"""Environment variables: names a shell accepts, values as text (numbers and booleans converted)."""


_RESERVED_PREFIX = "EYRIE_"


def _secret_var(name: str) -> str:
    if name.startswith(_RESERVED_PREFIX) or name == "TMPDIR":
        raise ValueError(f"{name!r} is set by eyried for every agent; a secret cannot take its place")
    return name


def _secret_name(name: Any) -> Any:
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise ValueError(
            f"secret name {name!r} is invalid: use letters, digits, '_' and '-' (it names a file under"
            " $EYRIE_HOME/secrets/)"
        )
    return name


Secrets = dict[
    Annotated[str, AfterValidator(_env_name), AfterValidator(_secret_var)],
    Annotated[str, BeforeValidator(_secret_name)],
]
"""Environment variable → the name of a secret file in ``$EYRIE_HOME/secrets/`` whose content it gets."""
