"""``eyried`` that ends at its ``fleet ready`` event: run as ``python -m bench._exit_at_ready ARGS`` (the
daemon's own arguments). For counting the instructions from exec to that event under valgrind
(`bench.adopt_bench --instructions`); the agents it adopted keep running, for the next daemon to adopt."""

from __future__ import annotations

import os
from typing import Any

from supervisor.daemon import _fleet_ready

_announce = _fleet_ready.announce_fleet_ready


async def _announce_and_exit(*args: Any, **kwargs: Any) -> None:
    await _announce(*args, **kwargs)
    os._exit(0)


_fleet_ready.announce_fleet_ready = _announce_and_exit  # before the daemon imports it

from supervisor.daemon.main import main  # noqa: E402  (after the wrap: the daemon takes the wrapped one)

main()
