"""The agent API's request bodies: plain models that refuse unknown keys, no I/O; each builds its validator
on its first request (``defer_build``), not in the daemon's start-up."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, field_validator

from supervisor.models import HierarchyRole

__all__ = ["MAX_NOTE_CHARS", "CreateChild", "Note"]

MAX_NOTE_CHARS = 500
"""A note is a status line for people, not a log: longer ones are refused."""


class CreateChild(BaseModel):
    """``POST /v1/instances``: a talon or captain for the calling agent; its parent and ``created_by`` are
    the caller's, never the body's."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    role: HierarchyRole = HierarchyRole.TALON
    framework: str = "embedded"
    project: str = ""
    persona: str = ""
    model: str = ""
    start: bool = True


class Note(BaseModel):
    """``POST /v1/self/note``: one line of text, at most `MAX_NOTE_CHARS` characters, no control or
    format characters (they could rewrite what a terminal shows of ``eyriectl ps``); empty clears it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    note: str

    @field_validator("note")
    @classmethod
    def _printable(cls, v: str) -> str:
        if len(v) > MAX_NOTE_CHARS:
            raise ValueError(f"a note has at most {MAX_NOTE_CHARS} characters, this one {len(v)}")
        for index, char in enumerate(v):
            if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
                raise ValueError(f"control or format character U+{ord(char):04X} at offset {index}")
        return v
