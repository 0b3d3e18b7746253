"""``POST /v1/stop``: many instances stopped by one request, every stop begun at once.

One request per instance made a fleet stop as slow as the client's connection pool and the daemon's request
handling allowed (the signals of the last instances waited for the first stops to finish); here every stop
starts in the same turn of the event loop, so the stops share their ``/proc`` scans and their waits overlap.
Each name gets its own answer: the instance as it stands after the stop, or the error a single stop would
have raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from supervisor import errors
from supervisor.control.schema import InstanceView

__all__ = ["MAX_NAMES", "stop_each"]

MAX_NAMES = 1000
"""Names in one request at most (the request body stays well under the control API's body limit)."""


async def stop_each(stop: Callable[[str], Awaitable[InstanceView]], names: list[str]) -> list[dict[str, Any]]:
    """``stop(name)`` for every name concurrently; per name, ``{"name", "instance"}`` or ``{"name", "error",
    "kind"}`` in the order given."""
    answers: dict[str, dict[str, Any]] = {}

    async def one(name: str) -> None:
        try:
            view = await stop(name)
        except errors.EyrieError as exc:
            answers[name] = {"name": name, "error": str(exc), "kind": type(exc).__name__}
        else:
            answers[name] = {"name": name, "instance": view.model_dump(mode="json")}

    async with anyio.create_task_group() as tg:
        for name in dict.fromkeys(names):
            tg.start_soon(one, name)
    return [answers[name] for name in names]
