"""Find the data that ships with the package (``config/``, ``units/``), installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``config`` or ``units``: inside the wheel at ``supervisor/_data/<name>``, else at the repo root."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"package data directory {name!r} not found (looked in {_PACKAGE})")
