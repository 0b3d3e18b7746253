"""A deadline for every request's headers, so that a client that connects and sends nothing (or a byte at a
time) cannot hold a connection of the control plane open forever.

uvicorn's own keep-alive timeout only runs between requests it has answered; a connection that never sends a
whole request head has none. This protocol arms a timer when a connection opens and after each response,
and closes the connection if the next request's headers have not all arrived when it fires.
"""

from __future__ import annotations

import asyncio

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEADER_TIMEOUT", "HeaderTimeoutProtocol"]

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers."""

log = structlog.get_logger("supervisor.control")


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head (`header_timeout` seconds)."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in: the request runs on its own terms
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("control_connection_timed_out", seconds=self.header_timeout)
            self.transport.close()
