"""``eyriectl secret``: the provider secrets (API keys) under ``$EYRIE_HOME/secrets/``, by name.

A value is read from stdin, or from a prompt that does not echo, never from the command line (which other
users can read in ``ps``); no command prints a value back. These are file operations, so they work with
eyried down; an agent gets a new value when eyried next builds its process (``eyriectl reload``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from supervisor.cli._app import Cli, CommandFailed
from supervisor.errors import EyrieError
from supervisor.paths import Home
from supervisor.secret_files import SecretFiles, check_secret_name

__all__ = ["secret"]


def _users(home: Home) -> dict[str, list[str]]:
    """Secret name → the instances the fleet file gives it to (sorted); `CommandFailed` when the fleet file
    cannot be read (what uses a secret is then unknown)."""
    from supervisor.fleet import load_fleet  # the fleet schema loads only where it is needed

    if not home.fleet_file.exists():
        return {}
    try:
        fleet = load_fleet(home.fleet_file)
    except EyrieError as exc:
        raise CommandFailed(f"cannot tell which instances use which secret: {exc}") from None
    users: dict[str, list[str]] = {}
    for name, resolved in fleet.resolve_all().items():
        for secret in resolved.secrets.values():
            users.setdefault(secret, []).append(name)
    return {secret: sorted(set(names)) for secret, names in users.items()}


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(f"value of secret {name}", hide_input=True, prompt_suffix=": ")
    else:
        value = sys.stdin.read()
    value = value.rstrip("\r\n")
    if not value:
        raise CommandFailed(f"no value given for secret {name!r} (nothing was written)")
    return value


@click.group(short_help="Set, list or remove provider secrets (API keys).")
def secret() -> None:
    """Provider secrets: one file each in $EYRIE_HOME/secrets/ (0600), named from fleet.yaml.

    An instance (or a framework, or defaults) says `secrets: {OPENAI_API_KEY: openai}`: its agent gets
    OPENAI_API_KEY with the content of the secret `openai` in its environment, and nothing else sees it.

    \b
    Examples:
      eyriectl secret set openai            # prompts, without echo
      printf %s "$KEY" | eyriectl secret set openai
      eyriectl secret list --json
      eyriectl secret rm openai
    """


@secret.command(name="set")
@click.argument("name")
@click.pass_obj
def set_(cli: Cli, name: str) -> None:
    """Store the secret NAME, its value read from stdin (or a prompt without echo).

    A running instance that uses it gets the new value at the next `eyriectl reload` (it is restarted).

    \b
    Examples:
      eyriectl secret set openai
      eyriectl secret set openai < ~/openai.key
    """
    check_secret_name(name)
    path = SecretFiles(cli.home).write(name, _read_value(name))
    cli.note(f"secret {name!r} written to {path}; apply it to running instances with: eyriectl reload")


@secret.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: name, stored, used_by.")
@click.pass_obj
def list_(cli: Cli, as_json: bool) -> None:
    """List the secrets stored and those fleet.yaml names, with the instances that use each (never values).

    \b
    Examples:
      eyriectl secret list
      eyriectl secret list --json | jq -r '.[] | select(.stored | not) | .name'
    """
    files = SecretFiles(cli.home)
    users = _users(cli.home)
    stored = set(files.names())
    rows: list[dict[str, Any]] = [
        {"name": name, "stored": name in stored, "used_by": users.get(name, [])}
        for name in sorted(stored | users.keys())
    ]
    if as_json:
        cli.out.print(json.dumps(rows, indent=2), markup=False)
        return
    if not rows:
        cli.note(f"no secrets in {files.root}")
        return
    for row in rows:
        state = "" if row["stored"] else "  MISSING"
        used = ", ".join(row["used_by"]) or "(unused)"
        cli.out.print(f"{row['name']}{state}  used by: {used}", markup=False)


@secret.command(name="rm")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even while fleet.yaml gives it to instances.")
@click.pass_obj
def rm(cli: Cli, name: str, force: bool) -> None:
    """Remove the secret NAME; refused while fleet.yaml gives it to an instance, unless --force.

    Running agents keep the value they were started with; a removed secret stops their next start.

    \b
    Examples:
      eyriectl secret rm openai
      eyriectl secret rm openai --force
    """
    check_secret_name(name)
    users = [] if force else _users(cli.home).get(name, [])
    if users:
        raise CommandFailed(
            f"secret {name!r} is used by {', '.join(users)}: remove it from fleet.yaml first, or use --force"
        )
    if not SecretFiles(cli.home).remove(name):
        raise CommandFailed(f"no secret {name!r} in {SecretFiles(cli.home).root}")
    cli.note(f"secret {name!r} removed")
