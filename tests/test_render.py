"""Framework config rendering: each framework's native format, parsed back, with exactly the keys it reads."""

from __future__ import annotations

import io
import json
import tomllib
from dataclasses import replace
from typing import Any

import pytest
from ruamel.yaml import YAML

from supervisor.errors import UnsupportedFramework
from supervisor.frameworks.registry import BUILTIN_FRAMEWORKS
from supervisor.frameworks.render import (
    DEFAULT_ALLOWED_COMMANDS,
    DEFAULT_TEMPERATURE,
    RenderContext,
    default_allowed_commands,
    render_config,
    rendered_frameworks,
)

TOKEN = "tok-" + "x" * 40


@pytest.fixture
def ctx() -> RenderContext:
    return RenderContext(
        name="strategist-sarah",
        port=43011,
        workspace="/h/instances/abc/workspace",
        instance_dir="/h/instances/abc",
        config_path="/h/instances/abc/config.toml",
        token=TOKEN,
        model="claude-sonnet-4",
        provider="openrouter",
    )


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(io.StringIO(text))


class TestAllowedCommands:
    def test_is_eyries_list(self) -> None:
        """The allow-list is eyrie's DefaultAllowedCommands, in order."""
        assert DEFAULT_ALLOWED_COMMANDS[:4] == ("git", "npm", "cargo", "make")
        assert len(DEFAULT_ALLOWED_COMMANDS) == 26
        assert {"ls", "cat", "grep", "curl", "diff"} <= set(DEFAULT_ALLOWED_COMMANDS)

    def test_returns_a_copy(self) -> None:
        """Changing the returned list changes neither the constant nor the next call."""
        first = default_allowed_commands()
        first.append("sudo")
        first.remove("git")
        assert "sudo" not in default_allowed_commands()
        assert "git" in default_allowed_commands()
        assert list(DEFAULT_ALLOWED_COMMANDS) == default_allowed_commands()


class TestRenderConfig:
    def test_every_builtin_framework_renders(self, ctx: RenderContext) -> None:
        """Every built-in framework has a renderer."""
        assert set(BUILTIN_FRAMEWORKS) == set(rendered_frameworks())

    def test_unknown_framework(self, ctx: RenderContext) -> None:
        """A framework without a renderer and without a config format raises UnsupportedFramework."""
        with pytest.raises(UnsupportedFramework, match="'nanoclaw'"):
            render_config("nanoclaw", ctx)

    def test_generic_config_in_each_format(self, ctx: RenderContext) -> None:
        """A framework without a renderer of its own gets its facts in the format its definition names."""
        facts = {
            "name": ctx.name,
            "port": ctx.port,
            "host": "127.0.0.1",
            "token": ctx.token,
            "model": ctx.model,
            "workspace": ctx.workspace,
        }
        assert json.loads(render_config("notes-bot", ctx, config_format="json")) == facts
        assert tomllib.loads(render_config("notes-bot", ctx, config_format="toml")) == facts
        assert _yaml(render_config("notes-bot", ctx, config_format="yaml")) == facts

    def test_zeroclaw_toml(self, ctx: RenderContext) -> None:
        """ZeroClaw gets TOML with its provider, model, workspace, loopback gateway, autonomy and memory."""
        data = tomllib.loads(render_config("zeroclaw", ctx))
        assert data == {
            "default_provider": "openrouter",
            "default_model": "claude-sonnet-4",
            "default_temperature": DEFAULT_TEMPERATURE,
            "workspace": {"path": ctx.workspace},
            "gateway": {"port": 43011, "host": "127.0.0.1", "require_pairing": True},
            "autonomy": {
                "level": "full",
                "workspace_only": True,
                "allowed_commands": list(DEFAULT_ALLOWED_COMMANDS),
            },
            "memory": {"backend": "sqlite"},
        }

    def test_zeroclaw_persona_temperature(self, ctx: RenderContext) -> None:
        """A persona's temperature becomes ZeroClaw's default_temperature."""
        ctx = replace(ctx, temperature=0.2)
        assert tomllib.loads(render_config("zeroclaw", ctx))["default_temperature"] == 0.2

    def test_openclaw_json(self, ctx: RenderContext) -> None:
        """OpenClaw gets a local loopback gateway with token auth and a provider/model primary."""
        data = json.loads(render_config("openclaw", ctx))
        assert data == {
            "gateway": {
                "port": 43011,
                "bind": "loopback",
                "mode": "local",
                "auth": {"mode": "token", "token": TOKEN},
            },
            "agents": {"defaults": {"model": {"primary": "openrouter/claude-sonnet-4"}}},
        }

    def test_openclaw_model_with_provider_kept(self, ctx: RenderContext) -> None:
        """A model that already names its provider is used as is."""
        ctx = replace(ctx, model="anthropic/claude-opus-4")
        data = json.loads(render_config("openclaw", ctx))
        assert data["agents"]["defaults"]["model"]["primary"] == "anthropic/claude-opus-4"

    def test_hermes_yaml(self, ctx: RenderContext) -> None:
        """Hermes gets YAML with model.default and model.provider only."""
        assert _yaml(render_config("hermes", ctx)) == {
            "model": {"default": "claude-sonnet-4", "provider": "openrouter"}
        }

    def test_picoclaw_json(self, ctx: RenderContext) -> None:
        """PicoClaw gets version 1, workspace-bound defaults, a loopback gateway and a pico channel token."""
        data = json.loads(render_config("picoclaw", ctx))
        assert data == {
            "version": 1,
            "agents": {
                "defaults": {
                    "workspace": ctx.workspace,
                    "restrict_to_workspace": True,
                    "provider": "openrouter",
                    "model_name": "claude-sonnet-4",
                }
            },
            "gateway": {"port": 43011, "host": "127.0.0.1"},
            "channels": {"pico": {"enabled": True, "token": TOKEN}},
        }

    def test_picoclaw_persona_limits(self, ctx: RenderContext) -> None:
        """A persona's temperature and max tokens reach PicoClaw's agent defaults."""
        ctx = replace(ctx, temperature=0.3, max_tokens=4096)
        defaults = json.loads(render_config("picoclaw", ctx))["agents"]["defaults"]
        assert defaults["temperature"] == 0.3
        assert defaults["max_tokens"] == 4096

    def test_embedded_json(self, ctx: RenderContext) -> None:
        """The embedded gateway gets its name, port, loopback host, token, model and workspace."""
        assert json.loads(render_config("embedded", ctx)) == {
            "name": "strategist-sarah",
            "port": 43011,
            "host": "127.0.0.1",
            "token": TOKEN,
            "model": "claude-sonnet-4",
            "workspace": ctx.workspace,
        }

    def test_hostile_values_stay_values(self, ctx: RenderContext) -> None:
        """Quotes, newlines and brackets in values cannot inject keys in any format."""
        nasty = 'x"\n[gateway]\nport = 1\n# ]}'
        ctx = replace(ctx, model=nasty, workspace=nasty)
        assert tomllib.loads(render_config("zeroclaw", ctx))["default_model"] == nasty
        assert tomllib.loads(render_config("zeroclaw", ctx))["gateway"]["port"] == 43011
        assert _yaml(render_config("hermes", ctx))["model"]["default"] == nasty
        assert json.loads(render_config("embedded", ctx))["workspace"] == nasty

    def test_deterministic(self, ctx: RenderContext) -> None:
        """The same context renders the same text (the config hash depends on it)."""
        for framework in rendered_frameworks():
            assert render_config(framework, ctx) == render_config(framework, ctx)
