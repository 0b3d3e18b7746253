"""The gateway's JSON config, read and checked with the standard library only.

No pydantic, no dataclasses, no ``typing`` or ``pathlib`` at run time: each import costs every one of the
hundreds of gateways a fleet may run, in start-up time and in memory.
"""

from __future__ import annotations

import json

__all__ = ["ConfigError", "EmbeddedConfig", "load_config"]

_LOOPBACK_NAMES = {"localhost", "::1"}


class ConfigError(Exception):
    """The config file is missing or invalid; the message names the file and the key."""


class EmbeddedConfig:
    """What one gateway needs: where to listen and who it is."""

    __slots__ = ("host", "model", "name", "port", "token", "workspace")

    def __init__(
        self,
        *,
        name: str,
        port: int,
        host: str = "127.0.0.1",
        token: str = "",
        model: str = "",
        workspace: str = "",
    ) -> None:
        self.name = name
        self.port = port
        self.host = host
        self.token = token
        self.model = model
        self.workspace = workspace


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


def _string(data: dict[str, object], key: str, path: str, default: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string, not {type(value).__name__}")
    return value


def load_config(path: str) -> EmbeddedConfig:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    port = data.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{path}: port must be an integer from 1 to 65535, not {port!r}")
    host = _string(data, "host", path, "127.0.0.1")
    if not _is_loopback(host):
        raise ConfigError(
            f"{path}: host {host!r} is not a loopback address; the gateway listens on loopback only"
        )
    return EmbeddedConfig(
        name=_string(data, "name", path, "embedded"),
        port=port,
        host=host,
        token=_string(data, "token", path),
        model=_string(data, "model", path),
        workspace=_string(data, "workspace", path),
    )
