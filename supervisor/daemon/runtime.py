"""Turn a declared instance (fleet file) plus its provisioned record into what the engine runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.engine.runtime import InstanceRuntime
from supervisor.frameworks.expand import PlaceholderValues, expand_command, expand_probe

if TYPE_CHECKING:
    from supervisor.fleet import ResolvedInstance
    from supervisor.models import Instance
    from supervisor.store import Store

__all__ = ["build_runtime"]


def build_runtime(
    resolved: ResolvedInstance, inst: Instance, store: Store, *, config_hash: str
) -> InstanceRuntime:
    """Expand placeholders and add the ``EYRIE_*`` variables every agent gets."""
    instance_dir = store.dir(inst.id)
    values = PlaceholderValues(
        port=inst.port,
        config=inst.config_path,
        instance_dir=str(instance_dir),
        workspace=inst.workspace_path,
        name=inst.name,
        id=inst.id,
        python=sys.executable,
    )
    spec = resolved.spec
    argv, env = expand_command(spec, values)
    env.update(
        {
            "EYRIE_INSTANCE_ID": inst.id,
            "EYRIE_INSTANCE_NAME": inst.name,
            "EYRIE_PORT": str(inst.port),
            "EYRIE_CONFIG": inst.config_path,
            "EYRIE_AUTH_TOKEN": store.token(inst.id),
        }
    )
    return InstanceRuntime(
        instance_id=inst.id,
        name=inst.name,
        framework=inst.framework,
        port=inst.port,
        argv=tuple(argv),
        env=env,
        cwd=Path(inst.workspace_path) if inst.workspace_path else instance_dir / "workspace",
        log_path=instance_dir / "logs" / f"{inst.framework}.log",
        ready=expand_probe(spec.ready, values),
        live=expand_probe(spec.live, values) if spec.live else None,
        stop_signal=spec.stop_signum,
        stop_timeout=spec.stop_timeout,
        restart=resolved.restart,
        health=resolved.health,
        logs=resolved.logs,
        autostart=resolved.autostart,
        config_hash=config_hash,
    )
