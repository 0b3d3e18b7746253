"""How an `EyrieError` crosses the control socket and is raised again, as the same class, by the client.

An error answer's body is ``{"error": message, "kind": class name}`` for every class, so scripts read one
shape. What an error carries beyond its message (`EyrieError.details`: a fleet file error's path, line and
key, a running daemon's pid and home) travels as a JSON object in the ``Eyrie-Error-Details`` header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from supervisor import errors

__all__ = ["DETAILS_HEADER", "details_headers", "error_from_answer"]

DETAILS_HEADER = "Eyrie-Error-Details"

_MAX_DETAILS = 8 * 1024
"""Bytes of details at most: HTTP clients refuse much larger headers, and the message still says it all."""


def details_headers(exc: errors.EyrieError) -> dict[str, str]:
    """The header carrying ``exc.details()``, or none when it has none (or too many to send)."""
    details = exc.details()
    if not details:
        return {}
    text = json.dumps(details, separators=(",", ":"))  # ASCII only: a header holds no other text
    return {DETAILS_HEADER: text} if len(text) <= _MAX_DETAILS else {}


def error_from_answer(body: object, headers: Mapping[str, str]) -> errors.EyrieError | None:
    """The error an answer stands for: the class named by its kind when that is ours, else `EyrieError`.

    None when the body is not an error answer at all.
    """
    if not isinstance(body, dict) or "error" not in body:
        return None
    message, kind = str(body["error"]), str(body.get("kind", ""))
    cls = getattr(errors, kind, None) if kind in errors.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, errors.EyrieError)):
        return errors.EyrieError(message)
    try:
        return cls.from_details(message, _details(headers.get(DETAILS_HEADER, "")))
    except TypeError:
        return errors.EyrieError(message)


def _details(text: str) -> Mapping[str, object]:
    try:
        details = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return details if isinstance(details, dict) else {}
