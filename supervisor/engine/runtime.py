"""Everything the engine needs to run one instance, ready-made by whoever composes it.

The engine never reads the fleet file or framework definitions: the caller renders argv, env and probes and
hands over an `InstanceRuntime`. Its `process_fingerprint` separates what needs a restart (how the process is
launched, probed and stopped) from policies that apply live (restart, health thresholds, log rotation).
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType

from supervisor.engine import procfs
from supervisor.engine._redact import REDACTED, secret_values
from supervisor.engine.probes import validate
from supervisor.frameworks.spec import Probe
from supervisor.paths import check_id
from supervisor.policies import HealthPolicy, LogPolicy, MemoryPolicy, RestartPolicy
from supervisor.sandbox.policy import SandboxPolicy

__all__ = ["InstanceRuntime"]


@dataclass(frozen=True, slots=True)
class InstanceRuntime:
    """Launch data and policies for one instance.

    ``env`` holds the child's environment additions on top of the daemon's own environment (it may carry
    secrets, so it is left out of ``repr``). The engine adds ``EYRIE_INSTANCE_ID``, ``EYRIE_INSTANCE_NAME``
    and ``EYRIE_PORT`` itself. In probe fields ``{port}``, ``{name}`` and ``{id}`` are expanded.
    ``sandbox`` is the confinement the process starts under; None runs it unconfined (``sandbox: off``).
    """

    instance_id: str
    name: str
    framework: str
    port: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: Path
    log_path: Path
    ready: Probe
    live: Probe | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 30.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    logs: LogPolicy = field(default_factory=LogPolicy)
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)
    autostart: bool = True
    config_hash: str = ""
    secret_env: frozenset[str] = frozenset()
    """Variables of ``env`` whose values are secrets whatever their names (provider secrets)."""
    secrets_digest: str = ""
    """A keyed digest of the secrets' values: part of the launch hash, so a changed secret restarts."""
    sandbox: SandboxPolicy | None = None
    files_digest: str = ""
    """A digest of the workspace files eyried keeps (``PROJECT.md``) when the framework reads them only at
    start: part of the launch hash, so a changed one restarts; empty when it reads them live."""

    def __post_init__(self) -> None:
        where = f"instance {self.name or self.instance_id!r}"
        check_id(self.instance_id)
        if not self.name:
            raise ValueError(f"{where}: name is empty")
        argv = tuple(self.argv)
        if not argv or not argv[0]:
            raise ValueError(f"{where}: argv must name a program")
        if not all(isinstance(a, str) for a in argv):
            raise ValueError(f"{where}: every argv element must be a string")
        object.__setattr__(self, "argv", argv)
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"{where}: port {self.port!r} is not in 0..65535")
        bad = [k for k, v in self.env.items() if not isinstance(k, str) or not isinstance(v, str) or "=" in k]
        if bad:
            raise ValueError(f"{where}: env keys and values must be strings, keys without '=' ({bad[0]!r})")
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "stop_signal", signal.Signals(self.stop_signal))
        if self.stop_timeout < 0:
            raise ValueError(f"{where}: stop_timeout must not be negative")
        for label, probe in (("ready", self.ready), ("live", self.live)):
            if probe is not None:
                try:
                    validate(probe, port=self.port, name=self.name, instance_id=self.instance_id)
                except ValueError as exc:
                    raise ValueError(f"{where}: {label} probe: {exc}") from None
        object.__setattr__(self, "cwd", _as_path(self.cwd))
        object.__setattr__(self, "log_path", _as_path(self.log_path))

    def process_fingerprint(self) -> str:
        """A digest of everything that shapes the running process; a change means a restart."""
        shape = {
            "name": self.name,
            "argv": list(self.argv),
            "env": sorted(self.env.items()),
            "cwd": str(self.cwd),
            "log_path": str(self.log_path),
            "port": self.port,
            "config_hash": self.config_hash,
            "ready": self.ready.model_dump(mode="json"),
            "live": self.live.model_dump(mode="json") if self.live else None,
            "stop_signal": self.stop_signal.name,
            "stop_timeout": self.stop_timeout,
            "sandbox": self._sandbox_shape(),
            "files": self.files_digest,
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    @property
    def marker(self) -> str:
        """What every process of this instance carries: its home (when the composer set ``EYRIE_HOME``) and
        its id."""
        return procfs.marker_of(self.env.get(procfs.HOME_VAR), self.instance_id)

    def launch_hash(self, secrets: frozenset[str] | None = None) -> str:
        """A digest of what the process is started with: argv, env (secret values left out: the record
        holding it is not a secret), cwd and the config file's digest. Recorded at spawn; a new daemon image
        that adopts a process recorded with another one restarts it (an edit made while it was down).
        ``secrets``: `secret_values`, when the caller has them already (an adoption needs both)."""
        if secrets is None:
            secrets = self.secret_values()
        shape = {
            "argv": list(self.argv),
            "env": sorted(
                (k, REDACTED if v in secrets or k in self.secret_env else v) for k, v in self.env.items()
            ),
            "cwd": str(self.cwd),
            "config_hash": self.config_hash,
            "sandbox": self._sandbox_shape(),
        }
        if self.secrets_digest:
            shape["secrets"] = self.secrets_digest
        if self.files_digest:
            shape["files"] = self.files_digest
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    def secret_values(self) -> frozenset[str]:
        """Values never to be recorded: those of secret-looking variables and of `secret_env` (long enough
        to be worth hiding: see `supervisor.engine._redact.secret_values`)."""
        named = {k: v for k, v in self.env.items() if k in self.secret_env}
        return secret_values(self.env) | secret_values(named, any_name=True)

    def _sandbox_shape(self) -> dict[str, object] | None:
        """The policy without the daemon's own ``PATH``, which a daemon started otherwise may differ in."""
        if self.sandbox is None:
            return None
        shape = asdict(self.sandbox)
        del shape["search_path"]
        return shape

    def policies(self) -> tuple[RestartPolicy, HealthPolicy, LogPolicy, bool]:
        """What applies live, without a restart."""
        return (self.restart, self.health, self.logs, self.autostart)


def _as_path(value: Path | str) -> Path:
    """``value`` as a `Path`; one already is kept as it is (``Path(path)`` parses every component again)."""
    return value if isinstance(value, Path) else Path(value)
