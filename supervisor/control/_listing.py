"""The body of ``GET /v1/instances``: a row the daemon keeps between listings is encoded once per form (the
whole row, or only what ``eyriectl ps`` reads: `supervisor.control._ps_row`), when first asked for; a
listing joins the kept bytes and encodes only each row's uptime, which changes every time.

At N = 1000 encoding every row on each listing was a quarter of the daemon's time per ``eyriectl ps``, and a
listing in a crash storm runs on the loop the respawns wait for.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter

from supervisor.control._ps_row import PS_FIELDS
from supervisor.control.schema import InstanceView

__all__ = ["Encoded", "Fields", "Listing", "RowJSON", "encode_row", "listing_body"]

Encoded = tuple[bytes, bytes]
"""A row's JSON before and after its uptime's value."""

Fields = frozenset[str] | None
"""The fields of each row in a listing: `PS_FIELDS`, or None for the whole row."""

_UPTIME = b'"uptime_seconds":'
_ROW = TypeAdapter(InstanceView)
_FLOAT = TypeAdapter(float)


class RowJSON:
    """A kept view's JSON in each form, encoded when first asked for; its keeper changes only the view's
    uptime in place (any other change builds a new view, and a new `RowJSON`)."""

    __slots__ = ("_ps", "_view", "_whole")

    def __init__(self, view: InstanceView) -> None:
        self._view = view
        self._whole: Encoded | None = None
        self._ps: Encoded | None = None

    def form(self, fields: Fields) -> Encoded:
        if fields is None:
            if self._whole is None:
                self._whole = encode_row(self._view)
            return self._whole
        if fields is PS_FIELDS:
            if self._ps is None:
                self._ps = encode_row(self._view, PS_FIELDS)
            return self._ps
        return encode_row(self._view, fields)


class Listing(list[InstanceView]):
    """Views, with the JSON kept for those whose keeper changes only their uptime in place."""

    __slots__ = ("_encoded",)

    def __init__(self) -> None:
        super().__init__()
        self._encoded: dict[int, tuple[InstanceView, RowJSON]] = {}

    def add(self, view: InstanceView, kept: RowJSON | None = None) -> None:
        self.append(view)
        if kept is not None:
            self._encoded[id(view)] = (view, kept)

    def encoded(self, view: InstanceView, fields: Fields = None) -> Encoded | None:
        kept = self._encoded.get(id(view))
        return kept[1].form(fields) if kept is not None and kept[0] is view else None


def encode_row(view: InstanceView, fields: Fields = None) -> Encoded:
    """``view``'s JSON (``fields`` of it only, when given) cut around its uptime: the one field its keeper
    may change in place (any other change must build a new view)."""
    data = _ROW.dump_json(view, include=_include(fields))
    start = data.index(_UPTIME) + len(_UPTIME)  # the first: no string before it can hold it unescaped
    end = data.index(b",", start)  # fields follow it; a number or null holds no comma
    return data[:start], data[end:]


def listing_body(views: Sequence[InstanceView], fields: Fields = None) -> bytes:
    """The JSON list of ``views``, byte for byte what pydantic dumps for ``list[InstanceView]`` (with
    ``include=fields`` when given)."""
    kept = views.encoded if isinstance(views, Listing) else None
    parts = [b"["]
    for view in views:
        encoded = kept(view, fields) if kept is not None else None
        if encoded is None:
            parts.append(_ROW.dump_json(view, include=_include(fields)))
        else:
            parts += (encoded[0], _uptime(view.uptime_seconds), encoded[1])
        parts.append(b",")
    if len(parts) > 1:
        parts.pop()
    parts.append(b"]")
    return b"".join(parts)


def _include(fields: Fields) -> set[str] | None:
    return None if fields is None else set(fields)


def _uptime(seconds: float | None) -> bytes:
    if seconds is None:
        return b"null"
    if 1e-4 <= seconds < 1e15:  # where repr writes what pydantic does, at half its cost
        return repr(seconds).encode()
    return _FLOAT.dump_json(seconds)
