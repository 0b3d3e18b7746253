"""eyrie-supervisor: keeps a fleet of AI-agent gateways provisioned, running, healthy and alive."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Lazy: importlib.metadata costs every embedded agent process ~65 ms and ~4 MiB at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("eyrie-supervisor")
        except PackageNotFoundError:  # a checkout that was never installed
            found = "0.0.0"
        globals()["__version__"] = found  # read once: the daemon's status answer names it on every call
        return found
    raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
