"""Render each framework's config file in its native format, with exactly the keys that framework reads.

This is the only Python code per framework (everything else about a framework is data). Each renderer is a
pure function of a `RenderContext`: no I/O, so the provisioner can render everything before it touches disk.
The text contains the instance's auth token where the framework needs it, so it is written 0600.

A framework defined only in a fleet file has no renderer of its own: it gets the generic config, the
instance's facts (name, port, host, token, model, workspace) in the definition's ``config_format``, so
a program written for eyried reads one small file whatever format it prefers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from supervisor.errors import UnsupportedFramework

__all__ = [
    "DEFAULT_ALLOWED_COMMANDS",
    "DEFAULT_MODEL",
    "DEFAULT_PROVIDER",
    "DEFAULT_TEMPERATURE",
    "ConfigFormat",
    "RenderContext",
    "default_allowed_commands",
    "render_config",
    "rendered_frameworks",
]

DEFAULT_ALLOWED_COMMANDS: tuple[str, ...] = (
    "git", "npm", "cargo", "make",
    "ls", "cat", "grep", "find", "echo", "pwd",
    "wc", "head", "tail", "date", "curl",
    "sleep", "mkdir", "cp", "mv", "rm", "touch",
    "sed", "awk", "sort", "uniq", "diff",
)  # fmt: skip
"""eyrie's ``DefaultAllowedCommands``: the shell commands a provisioned ZeroClaw agent may run."""

DEFAULT_MODEL = "claude-sonnet-4"
DEFAULT_PROVIDER = "openrouter"
DEFAULT_TEMPERATURE = 0.7
LOOPBACK = "127.0.0.1"

ConfigFormat = Literal["json", "toml", "yaml"]

# Provisioned agents work unattended: the allow-list and `workspace_only` are the boundary, not prompts.
_ZEROCLAW_AUTONOMY = "full"


def default_allowed_commands() -> list[str]:
    """A fresh copy of the default allow-list, safe for the caller to change."""
    return list(DEFAULT_ALLOWED_COMMANDS)


@dataclass(eq=False)
class RenderContext:
    """Everything a framework config may say about one instance."""

    name: str
    port: int
    workspace: str
    instance_dir: str
    config_path: str
    token: str
    model: str = DEFAULT_MODEL
    provider: str = DEFAULT_PROVIDER
    temperature: float | None = None  # None: the framework's default
    max_tokens: int = 0  # 0: the framework's default


def _zeroclaw(ctx: RenderContext) -> str:
    import tomlkit  # only zeroclaw needs it, and only when a config is written

    doc = tomlkit.document()
    doc["default_provider"] = ctx.provider
    doc["default_model"] = ctx.model
    doc["default_temperature"] = DEFAULT_TEMPERATURE if ctx.temperature is None else ctx.temperature
    workspace = tomlkit.table()
    workspace["path"] = ctx.workspace
    doc["workspace"] = workspace
    gateway = tomlkit.table()
    gateway["port"] = ctx.port
    gateway["host"] = LOOPBACK
    gateway["require_pairing"] = True
    doc["gateway"] = gateway
    autonomy = tomlkit.table()
    autonomy["level"] = _ZEROCLAW_AUTONOMY
    autonomy["workspace_only"] = True
    allowed = tomlkit.array()
    allowed.extend(default_allowed_commands())
    autonomy["allowed_commands"] = allowed.multiline(True)
    doc["autonomy"] = autonomy
    memory = tomlkit.table()
    memory["backend"] = "sqlite"
    doc["memory"] = memory
    return tomlkit.dumps(doc)


def _openclaw(ctx: RenderContext) -> str:
    # OpenClaw model references are "provider/model".
    primary = ctx.model if "/" in ctx.model else f"{ctx.provider}/{ctx.model}"
    return _json(
        {
            "gateway": {
                "port": ctx.port,
                "bind": "loopback",
                "mode": "local",
                "auth": {"mode": "token", "token": ctx.token},
            },
            "agents": {"defaults": {"model": {"primary": primary}}},
        }
    )


def _hermes(ctx: RenderContext) -> str:
    from ruamel.yaml import YAML  # only hermes needs it, and only when a config is written

    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump({"model": {"default": ctx.model, "provider": ctx.provider}}, out)
    return out.getvalue()


def _picoclaw(ctx: RenderContext) -> str:
    defaults: dict[str, Any] = {
        "workspace": ctx.workspace,
        "restrict_to_workspace": True,
        "provider": ctx.provider,
        "model_name": ctx.model,
    }
    if ctx.temperature is not None:
        defaults["temperature"] = ctx.temperature
    if ctx.max_tokens:
        defaults["max_tokens"] = ctx.max_tokens
    return _json(
        {
            "version": 1,
            "agents": {"defaults": defaults},
            "gateway": {"port": ctx.port, "host": LOOPBACK},
            "channels": {"pico": {"enabled": True, "token": ctx.token}},
        }
    )


def _facts(ctx: RenderContext) -> dict[str, Any]:
    """What every agent gateway needs to know about itself."""
    return {
        "name": ctx.name,
        "port": ctx.port,
        "host": LOOPBACK,
        "token": ctx.token,
        "model": ctx.model,
        "workspace": ctx.workspace,
    }


def _embedded(ctx: RenderContext) -> str:
    return _json(_facts(ctx))


def _generic(ctx: RenderContext, config_format: ConfigFormat) -> str:
    facts = _facts(ctx)
    if config_format == "toml":
        import tomlkit

        return tomlkit.dumps(facts)
    if config_format == "yaml":
        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.default_flow_style = False
        out = io.StringIO()
        yaml.dump(facts, out)
        return out.getvalue()
    return _json(facts)


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


_RENDERERS: dict[str, Callable[[RenderContext], str]] = {
    "embedded": _embedded,
    "zeroclaw": _zeroclaw,
    "openclaw": _openclaw,
    "hermes": _hermes,
    "picoclaw": _picoclaw,
}


def rendered_frameworks() -> tuple[str, ...]:
    """The frameworks with a renderer of their own (any other gets the generic config)."""
    return tuple(_RENDERERS)


def render_config(framework: str, ctx: RenderContext, *, config_format: ConfigFormat | None = None) -> str:
    """The config file text for one instance of ``framework``.

    A framework without a renderer of its own gets the generic config in ``config_format`` (its
    definition's); without a format there is nothing to write it in, and it is refused.
    """
    renderer = _RENDERERS.get(framework)
    if renderer is not None:
        return renderer(ctx)
    if config_format is None:
        known = ", ".join(sorted(_RENDERERS))
        raise UnsupportedFramework(
            f"no config renderer for framework {framework!r} (known: {known}) and no config_format"
        )
    return _generic(ctx, config_format)
