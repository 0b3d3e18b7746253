"""The body of ``GET /v1/instances``: a row the daemon keeps between listings is encoded once, when it is
built; a listing joins the kept bytes and encodes only each row's uptime, which changes every time.

At N = 1000 encoding every row on each listing was a quarter of the daemon's time per ``eyriectl ps``, and a
listing in a crash storm runs on the loop the respawns wait for.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter

from supervisor.control.schema import InstanceView

__all__ = ["Encoded", "Listing", "encode_row", "listing_body"]

Encoded = tuple[bytes, bytes]
"""A row's JSON before and after its uptime's value."""

_UPTIME = b'"uptime_seconds":'
_ROW = TypeAdapter(InstanceView)
_FLOAT = TypeAdapter(float)


class Listing(list[InstanceView]):
    """Views, with the JSON kept for those whose keeper changes only their uptime in place."""

    __slots__ = ("_encoded",)

    def __init__(self) -> None:
        super().__init__()
        self._encoded: dict[int, tuple[InstanceView, Encoded]] = {}

    def add(self, view: InstanceView, encoded: Encoded | None = None) -> None:
        self.append(view)
        if encoded is not None:
            self._encoded[id(view)] = (view, encoded)

    def encoded(self, view: InstanceView) -> Encoded | None:
        kept = self._encoded.get(id(view))
        return kept[1] if kept is not None and kept[0] is view else None


def encode_row(view: InstanceView) -> Encoded:
    """``view``'s JSON cut around its uptime: the one field its keeper may change in place (any other change
    must build a new view)."""
    data = _ROW.dump_json(view)
    start = data.index(_UPTIME) + len(_UPTIME)  # the first: no string before it can hold it unescaped
    end = data.index(b",", start)  # fields follow it; a number or null holds no comma
    return data[:start], data[end:]


def listing_body(views: Sequence[InstanceView]) -> bytes:
    """The JSON list of ``views``, byte for byte what pydantic dumps for ``list[InstanceView]``."""
    kept = views.encoded if isinstance(views, Listing) else None
    parts = [b"["]
    for view in views:
        encoded = kept(view) if kept is not None else None
        if encoded is None:
            parts.append(_ROW.dump_json(view))
        else:
            parts += (encoded[0], _uptime(view.uptime_seconds), encoded[1])
        parts.append(b",")
    if len(parts) > 1:
        parts.pop()
    parts.append(b"]")
    return b"".join(parts)


def _uptime(seconds: float | None) -> bytes:
    if seconds is None:
        return b"null"
    if 1e-4 <= seconds < 1e15:  # where repr writes what pydantic does, at half its cost
        return repr(seconds).encode()
    return _FLOAT.dump_json(seconds)
