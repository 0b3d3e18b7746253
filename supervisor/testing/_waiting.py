"""Waiting on a condition with a deadline, so a test fails loudly instead of hanging or sleeping blind."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import anyio

__all__ = ["wait_for"]

T = TypeVar("T")


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper: the deadline is its whole point
    *,
    interval: float = 0.01,
    what: str = "",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy, and return that;
    TimeoutError after ``timeout`` seconds."""
    last: Any = None
    with anyio.move_on_after(timeout):
        while True:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
            await anyio.sleep(interval)
    raise TimeoutError(f"not true after {timeout:g}s: {what or predicate} (last value {last!r})")
