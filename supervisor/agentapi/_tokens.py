"""Which agent a bearer token belongs to: each instance's ``secrets/token``, indexed by its digest.

The index is rebuilt whenever the set of managed instances changes (one provisioned, one removed), so a
removed instance's token stops working at once. A token is found by the SHA-256 of what was presented and
then compared with `hmac.compare_digest`, so the time an answer takes says nothing about any token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

import anyio

from supervisor.agentapi.permissions import Member
from supervisor.errors import EyrieError

__all__ = ["TokenIndex"]


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenIndex:
    """Token → member, for the members ``members()`` returns, their tokens read with ``read_token``."""

    def __init__(self, members: Callable[[], Sequence[Member]], read_token: Callable[[str], str]) -> None:
        self._members = members
        self._read_token = read_token
        self._key: frozenset[Member] | None = None
        self._index: dict[bytes, tuple[bytes, Member]] = {}
        self._lock = anyio.Lock()

    async def find(self, presented: bytes) -> Member | None:
        """The member whose token ``presented`` is, or None."""
        members = frozenset(self._members())
        if members != self._key:
            async with self._lock:
                if members != self._key:
                    self._index = await anyio.to_thread.run_sync(self._build, members)
                    self._key = members
        found = self._index.get(_digest(presented))
        if found is None or not hmac.compare_digest(found[0], presented):
            return None
        return found[1]

    def _build(self, members: frozenset[Member]) -> dict[bytes, tuple[bytes, Member]]:
        index: dict[bytes, tuple[bytes, Member]] = {}
        for member in members:
            try:
                token = self._read_token(member.instance_id).encode()
            except EyrieError:  # an unreadable token file: that agent cannot authenticate, the rest can
                continue
            if token:
                index[_digest(token)] = (token, member)
        return index
