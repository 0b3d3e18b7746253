"""InstanceRuntime: validation with clear errors, and the fingerprint that decides restart vs live update."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from supervisor.engine import InstanceRuntime
from supervisor.errors import InvalidID
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.policies import HealthPolicy, LogPolicy, RestartPolicy


def runtime(**changes: object) -> InstanceRuntime:
    base = InstanceRuntime(
        instance_id="abc-123",
        name="scout",
        framework="embedded",
        port=43001,
        argv=("agent", "--port", "43001"),
        env={"EYRIE_AUTH_TOKEN": "secret-value"},
        cwd=Path("/srv/scout/workspace"),
        log_path=Path("/srv/scout/logs/embedded.log"),
        ready=Probe(kind=ProbeKind.HTTP, path="/ready"),
        live=Probe(kind=ProbeKind.HTTP, path="/health"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class TestInstanceRuntime:
    def test_bad_launch_data_is_refused_with_where_and_what(self) -> None:
        """Empty argv, a bad port, a bad id or an invalid probe name the instance and the problem."""
        with pytest.raises(ValueError, match="instance 'scout': argv must name a program"):
            runtime(argv=())
        with pytest.raises(ValueError, match=r"instance 'scout': port 70000 is not in 0..65535"):
            runtime(port=70000)
        with pytest.raises(InvalidID):
            runtime(instance_id="../etc")
        with pytest.raises(ValueError, match="instance 'scout': ready probe: log probe pattern"):
            runtime(ready=Probe(kind=ProbeKind.LOG, pattern="(unclosed"))
        with pytest.raises(ValueError, match="stop_timeout must not be negative"):
            runtime(stop_timeout=-1)

    def test_env_is_frozen_and_kept_out_of_repr(self) -> None:
        """The environment cannot be changed afterwards and its secrets never show in repr()."""
        rt = runtime()
        assert "secret-value" not in repr(rt)
        with pytest.raises(TypeError):
            rt.env["X"] = "y"  # type: ignore[index]
        assert rt.stop_signal is signal.SIGTERM

    @pytest.mark.parametrize(
        "change",
        [
            {"argv": ("agent", "--port", "43002")},
            {"env": {"EYRIE_AUTH_TOKEN": "rotated"}},
            {"port": 43002},
            {"cwd": Path("/elsewhere")},
            {"config_hash": "new"},
            {"ready": Probe(kind=ProbeKind.TCP)},
            {"live": None},
            {"stop_signal": signal.SIGINT},
            {"stop_timeout": 5.0},
        ],
    )
    def test_process_changes_alter_the_fingerprint(self, change: dict[str, object]) -> None:
        """Anything that shapes the process changes the fingerprint (a restart is needed)."""
        assert runtime(**change).process_fingerprint() != runtime().process_fingerprint()

    @pytest.mark.parametrize(
        "change",
        [
            {"restart": RestartPolicy(max_retries=3)},
            {"health": HealthPolicy(interval=1)},
            {"logs": LogPolicy(backups=9)},
            {"autostart": False},
        ],
    )
    def test_policy_changes_keep_the_fingerprint(self, change: dict[str, object]) -> None:
        """Restart, health and log policies and autostart apply live: same fingerprint, different runtime."""
        changed = runtime(**change)
        assert changed.process_fingerprint() == runtime().process_fingerprint()
        assert changed != runtime()
