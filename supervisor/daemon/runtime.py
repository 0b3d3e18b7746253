"""Turn a declared instance (fleet file) plus its provisioned record into what the engine runs.

Every agent learns where it is from ``EYRIE_*`` variables, its temp directory from ``TMPDIR`` and where its
token is from ``EYRIE_AUTH_TOKEN_FILE``: the token itself is never in the environment, unless its framework's
definition names a ``token_env`` (a framework that can take it no other way). Provider secrets the fleet file
names are read here, at each build, so a changed secret file changes the runtime and restarts the agent.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.engine.runtime import InstanceRuntime
from supervisor.errors import ConfigurationError
from supervisor.frameworks.expand import PlaceholderValues, expand_command, expand_probe
from supervisor.frameworks.sandbox_paths import expand_sandbox_paths
from supervisor.models import Instance
from supervisor.paths import TMP_DIR, Home
from supervisor.ports import PORT_RANGE_START
from supervisor.sandbox.policy import SandboxPolicy
from supervisor.secret_files import SecretFiles
from supervisor.store import TOKEN_FILE

if TYPE_CHECKING:
    from supervisor.fleet import ResolvedInstance
    from supervisor.store import Store

__all__ = ["build_runtime", "check_declaration"]

_TRIAL_ID = "declaration-check"
"""The id a declaration is tried under before it is provisioned; never written anywhere."""


def build_runtime(
    resolved: ResolvedInstance,
    inst: Instance,
    store: Store,
    *,
    config_hash: str,
    eyrie_url: str = "",
    files_digest: str = "",
) -> InstanceRuntime:
    """Expand placeholders and add the ``EYRIE_*`` variables every agent gets (``EYRIE_URL``, the agent
    API, when it is on). ``files_digest``: of the ``PROJECT.md`` the process starts from, for a framework
    that reads its files only at start.

    Raises `ConfigurationError` naming the instance when its declaration and record cannot make a process
    (an impossible probe, a port out of range, a missing secret, …), so that the failure stays that
    instance's own.
    """
    secrets: dict[str, str] = {}
    if resolved.secrets:
        try:
            secrets = SecretFiles(Home(store.root.parent)).values(resolved.secrets)
        except ConfigurationError as exc:
            raise ConfigurationError(f"instance {inst.name!r}: {exc}") from None
    token = store.token(inst.id)
    directory = store.dir(inst.id)
    return _assemble(resolved, inst, directory, token, config_hash, secrets, eyrie_url, files_digest)


def check_declaration(resolved: ResolvedInstance, store: Store) -> None:
    """Build the runtime ``resolved`` would get as a newly provisioned instance, and discard it: a
    declaration that could never run is refused (`ConfigurationError`) before anything is applied."""
    directory = store.dir(_TRIAL_ID)
    trial = Instance(
        id=_TRIAL_ID,
        name=resolved.name,
        framework=resolved.framework,
        port=PORT_RANGE_START,
        config_path=str(directory / resolved.spec.config_file),
        workspace_path=str(directory / "workspace"),
    )
    _assemble(resolved, trial, directory, "", "", {})


@functools.lru_cache(maxsize=64)
def _secret_names(secrets: frozenset[str], token_env: str) -> frozenset[str]:
    """The names of the variables whose values are secrets: one set shared by the instances that have the
    same (most have their framework's token variable only), not one each."""
    return secrets | {token_env} if token_env else secrets


def _secrets_digest(token: str, secrets: dict[str, str]) -> str:
    """What the launch hash records of the secrets: keyed with the instance's token, so that the record
    (readable where the secret files are not) gives no way to test a guess of a secret."""
    if not secrets:
        return ""
    text = json.dumps(sorted(secrets.items()))
    return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest()


def _assemble(
    resolved: ResolvedInstance,
    inst: Instance,
    instance_dir: Path,
    token: str,
    config_hash: str,
    secrets: dict[str, str],
    eyrie_url: str = "",
    files_digest: str = "",
) -> InstanceRuntime:
    # paths the runtime keeps as text are joined as text: pathlib's joins were a fifth of a runtime's build
    directory = str(instance_dir)
    values = PlaceholderValues(
        port=inst.port,
        config=inst.config_path,
        instance_dir=directory,
        workspace=inst.workspace_path,
        name=inst.name,
        id=inst.id,
        python=sys.executable,
    )
    spec = resolved.spec
    workspace = Path(inst.workspace_path) if inst.workspace_path else instance_dir / "workspace"
    token_file = f"{directory}/secrets/{TOKEN_FILE}"
    try:
        argv, env = expand_command(spec, values)
        env.update(
            {
                "EYRIE_INSTANCE_ID": inst.id,
                "EYRIE_HOME": os.path.dirname(os.path.dirname(directory)),
                "EYRIE_INSTANCE_NAME": inst.name,
                "EYRIE_PORT": str(inst.port),
                "EYRIE_CONFIG": inst.config_path,
                "EYRIE_AUTH_TOKEN_FILE": token_file,
                "TMPDIR": f"{directory}/{TMP_DIR}",
            }
        )
        if eyrie_url:
            env["EYRIE_URL"] = eyrie_url
        if spec.token_env:
            env[spec.token_env] = token
        env.update(secrets)
        return InstanceRuntime(
            instance_id=inst.id,
            name=inst.name,
            framework=inst.framework,
            port=inst.port,
            argv=tuple(argv),
            env=env,
            cwd=workspace,
            log_path=instance_dir / f"logs/{inst.framework}.log",
            ready=expand_probe(spec.ready, values),
            live=expand_probe(spec.live, values) if spec.live else None,
            stop_signal=spec.stop_signum,
            stop_timeout=spec.stop_timeout,
            restart=resolved.restart,
            health=resolved.health,
            logs=resolved.logs,
            memory=resolved.memory,
            autostart=resolved.autostart,
            config_hash=config_hash,
            secret_env=_secret_names(frozenset(secrets), spec.token_env or ""),
            secrets_digest=_secrets_digest(token, secrets),
            sandbox=_sandbox(resolved, values, tuple(argv), env, (directory, str(workspace), token_file)),
            files_digest=files_digest,
        )
    except ValueError as exc:
        message = str(exc)
        prefix = f"instance {inst.name!r}: "
        raise ConfigurationError(message if message.startswith(prefix) else prefix + message) from None


def _sandbox(
    resolved: ResolvedInstance,
    values: PlaceholderValues,
    argv: tuple[str, ...],
    env: dict[str, str],
    paths: tuple[str, str, str],
) -> SandboxPolicy | None:
    """The instance's confinement (docs/sandbox.md); None when its declaration says ``sandbox: off``.
    ``paths``: the instance's directory, workspace and token file, as the runtime has them."""
    setting = resolved.spec.sandbox
    if not setting.enabled:
        return None
    read, write = expand_sandbox_paths(setting, values)
    instance_dir, workspace, token_file = paths
    return SandboxPolicy(
        instance_dir=instance_dir,
        workspace=workspace,
        config=values.config,
        token=token_file,
        port=values.port,
        argv=argv,
        # one copy for the fleet: each read of os.environ decodes the daemon's PATH into a string of its own
        search_path=sys.intern(env.get("PATH") or os.environ.get("PATH") or os.defpath),
        read=read,
        write=write,
    )
