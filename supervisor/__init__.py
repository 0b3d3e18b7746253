"""eyrie-supervisor: keeps a fleet of AI-agent gateways provisioned, running, healthy and alive."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eyrie-supervisor")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
