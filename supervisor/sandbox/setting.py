"""The ``sandbox:`` key of a framework definition and of an instance: ``off``, or paths to add."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = ["MAX_EXTRA_PATHS", "SandboxSetting"]

MAX_EXTRA_PATHS = 64
"""At most this many ``read`` and as many ``write`` paths: a policy is a short list, not a filesystem."""
_MAX_PATH = 4096


def _check_path(path: str) -> str:
    if not path or len(path) > _MAX_PATH or "\0" in path:
        raise ValueError(f"sandbox path {path[:80]!r} must be 1 to {_MAX_PATH} characters, without NUL")
    if not path.startswith(("/", "~", "{")):
        raise ValueError(f"sandbox path {path!r} must be absolute (or start with ~ or a placeholder)")
    if path.rstrip("/") == "":
        raise ValueError("sandbox path '/' would grant the whole filesystem; write 'sandbox: off' instead")
    return path


class SandboxSetting(BaseModel):
    """Confinement on (the default) with extra ``read`` (read and execute) and ``write`` (full access)
    paths, or off (``sandbox: off``). Layers add up: an instance adds to its framework, ``off`` wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        if value is None or value is True or value == "on":
            return {}
        if value is False or value == "off":
            return {"enabled": False}
        if isinstance(value, str):
            raise ValueError(f"sandbox must be 'off' or a mapping with read and write lists, not {value!r}")
        return value

    @field_validator("read", "write", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("read", "write")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_EXTRA_PATHS:
            raise ValueError(f"at most {MAX_EXTRA_PATHS} paths ({len(value)} given)")
        return tuple(_check_path(p) for p in value)

    def plus(self, other: SandboxSetting) -> SandboxSetting:
        """This setting with ``other``'s paths added; off if either is off."""
        return SandboxSetting(
            enabled=self.enabled and other.enabled,
            read=tuple(dict.fromkeys(self.read + other.read)),
            write=tuple(dict.fromkeys(self.write + other.write)),
        )
