"""A run's scratch directory for the homes it makes: removed at the end together with the port claims of the
instances under it. A claim lives in ``/var/tmp/eyrie-ports`` and outlasts a deleted home; until a later start
tries that port again it keeps the port from every fleet on the machine."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from supervisor.port_claims import ClaimRegistry

__all__ = ["release_claims", "scratch_dir"]


def release_claims(run_dir: str) -> int:
    """Remove the port claims of instances under ``run_dir``; how many were removed."""
    removed = 0
    prefix = os.path.abspath(run_dir) + os.sep
    registry = ClaimRegistry()
    for claim in registry.claims():
        if claim.owner is not None and claim.owner.instance_dir.startswith(prefix):
            with contextlib.suppress(PermissionError):
                registry.release(claim.port, claim.owner)
                removed += 1
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[str]:
    """`tempfile.TemporaryDirectory` whose instances' port claims are released when it is removed (end the
    processes started in it first)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            yield tmp
        finally:
            release_claims(tmp)
