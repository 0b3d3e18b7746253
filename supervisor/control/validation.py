"""Request bodies checked by pydantic, their failures answered as one `InvalidRequest` naming each problem
(shared by the operator API and the agent API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from supervisor import errors

__all__ = ["validated"]

T = TypeVar("T")


def validated(build: Callable[[], T], what: str = "request") -> T:
    """``build()``, its `ValidationError` raised as `InvalidRequest` ("invalid ``what``: where: why; …")."""
    try:
        return build()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False)
        )
        raise errors.InvalidRequest(f"invalid {what}: {problems}") from None
