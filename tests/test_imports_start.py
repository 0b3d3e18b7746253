"""What the daemon's start-up keeps out until it is used, held structurally (the timings are in
bench/start_imports.py): modules only an error, the API or a rare request needs are not loaded by importing
the daemon nor by the time it spawns its first agent, the models a start never validates are not built, and
such a model, once used, validates as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from supervisor.agentapi.schema import CreateChild, Note
from supervisor.control.schema import (
    AddRequest,
    DaemonStatus,
    InstanceDetail,
    InstanceView,
    ProbeState,
    ProcessRow,
)
from supervisor.models import CreateRequest, MigrationResult
from supervisor.personas import Persona
from tests._daemon import DaemonProcess, embedded, fleet_yaml, wait_for

KEPT_OUT = ("difflib", "supervisor.fleet._locate", "psutil", "jinja2", "httpx", "starlette", "uvicorn")
"""Where the fleet file's errors are located; a port holder's name; templates; HTTP client and server."""

KEPT_OUT_UNTIL_SERVED = (
    "importlib.metadata",
    "supervisor.control.app",
    "supervisor.control.schema",
    "supervisor.control._listing",
    "supervisor.daemon.inventory",
    "supervisor.daemon.views",
    "supervisor.daemon.metrics",
    "supervisor.daemon._edits",
    "supervisor.daemon._plan",
    "supervisor.daemon._children",
    "supervisor.fleet.edit",
    "supervisor.personas",
    "supervisor.trash",
)
"""What a start does without until its fleet runs: pydantic's plugin scan (off in the daemon), the control
API's models, listing, status, metrics and fleet edits, a reload's dry run, a re-exec's children, personas
and templates (provisioned, and no project file to write) and the trash."""

DEFERRED: dict[type[BaseModel], dict[str, Any]] = {
    InstanceView: {"name": 7, "pid": "x"},
    AddRequest: {"name": "a", "colour": "red"},
    DaemonStatus: {"pid": "one"},
    ProcessRow: {"pid": 1},
    ProbeState: {"role": "liveness", "ok": "perhaps"},
    InstanceDetail: {"name": "a", "surprise": True},
    CreateRequest: {"name": "a", "hierarchy_role": "king"},
    MigrationResult: {"applied": "all"},
    Persona: {"id": 3, "unknown": 1},
    CreateChild: {"name": "a", "start": "soon"},
    Note: {"note": 5},
}
"""Each model whose validator is built on first use, with a body it must refuse."""

_PROBE = r"""
import json, sys
import supervisor.daemon.main
imported = sorted(sys.modules)
loader = sys.modules.get("pydantic.plugin._loader")
from supervisor.agentapi.schema import CreateChild, Note
from supervisor.control.schema import (
    AddRequest, DaemonStatus, InstanceDetail, InstanceView, ProbeState, ProcessRow,
)
from supervisor.models import CreateRequest, MigrationResult
from supervisor.personas import Persona
import gc
models = [InstanceView, AddRequest, DaemonStatus, ProcessRow, ProbeState, InstanceDetail, CreateRequest,
          MigrationResult, Persona, CreateChild, Note]
print(json.dumps({
    "modules": imported,
    "plugin_loader": getattr(loader, "__file__", None) or "stand-in",
    "built": sorted(m.__name__ for m in models if m.__pydantic_complete__),
    "collecting": gc.isenabled(),
}))
"""

_VALIDATE = r"""
import json, sys
from pydantic import ValidationError
import supervisor.daemon.main
module, name, body = json.loads(sys.argv[1])
model = getattr(__import__(module, fromlist=[name]), name)
assert not model.__pydantic_complete__, "built before its first use"
try:
    model.model_validate(body)
except ValidationError as exc:
    print(json.dumps(exc.errors(include_url=False), default=str))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestDaemonImport:
    def test_importing_the_daemon_loads_none_of_what_only_errors_and_rare_requests_need(self) -> None:
        """``import supervisor.daemon.main`` (all a start imports before its fleet runs) loads none of
        `KEPT_OUT`."""
        modules = set(json.loads(_run(_PROBE))["modules"])
        assert "supervisor.daemon.daemon" in modules  # the probe imported the daemon
        assert {name for name in (*KEPT_OUT, *KEPT_OUT_UNTIL_SERVED) if name in modules} == set()

    def test_with_plugins_off_pydantic_builds_its_validators_without_scanning_for_plugins(self) -> None:
        """The daemon's own setting: its models build (the probe validates some) with the stand-in loader,
        and ``importlib.metadata`` is not loaded for it."""
        probe = json.loads(_run(_PROBE, env={"PYDANTIC_DISABLE_PLUGINS": "__all__"}))
        assert probe["plugin_loader"] == "stand-in"
        assert "importlib.metadata" not in probe["modules"]

    def test_an_operators_list_of_plugins_to_skip_keeps_pydantics_loader(self) -> None:
        """Only the settings that turn every plugin off use the stand-in: a list of names is pydantic's to
        apply."""
        probe = json.loads(_run(_PROBE, env={"PYDANTIC_DISABLE_PLUGINS": "logfire"}))
        assert probe["plugin_loader"].endswith("_loader.py")

    def test_the_models_a_start_never_validates_are_not_built_by_the_import(self) -> None:
        """Their validators and serializers are built on first use, not when the daemon is imported."""
        assert json.loads(_run(_PROBE))["built"] == []

    def test_the_import_leaves_garbage_collection_on(self) -> None:
        """Collection is paused only while the daemon's modules load: an importer keeps its collector."""
        assert json.loads(_run(_PROBE))["collecting"] is True


def _eager_twin(model: type[BaseModel]) -> type[BaseModel]:
    """The same model with its validator built at once."""
    twin: type[BaseModel] = type(model.__name__, (model,), {"model_config": ConfigDict(defer_build=False)})
    assert twin.__pydantic_complete__
    return twin


@pytest.mark.parametrize("model", list(DEFERRED), ids=lambda model: model.__name__)
def test_a_deferred_model_refuses_bad_input_with_the_same_errors(model: type[BaseModel]) -> None:
    """Built on its first validation in a fresh daemon process, the model refuses a bad body with exactly the
    errors an eagerly built copy of it gives."""
    body = DEFERRED[model]
    with pytest.raises(ValidationError) as eager:
        _eager_twin(model).model_validate(body)
    expected = json.loads(json.dumps(eager.value.errors(include_url=False), default=str))
    got = json.loads(_run(_VALIDATE, json.dumps([model.__module__, model.__name__, body])))
    assert got == expected
    assert got  # a refusal, with its reasons


class TestFirstSpawn:
    def test_a_provisioned_start_spawns_its_first_agent_before_loading_the_api(self, tmp_path: Path) -> None:
        """A real daemon on a provisioned home has loaded none of `KEPT_OUT` and `KEPT_OUT_UNTIL_SERVED` when
        it spawns its first agent (``bench._first_spawn`` notes ``sys.modules`` at that call; unconfined, as
        the benchmarks run, so that the spawn is the daemon's own call)."""
        daemon = DaemonProcess(tmp_path)
        daemon.write_fleet(fleet_yaml(embedded("alpha", "sandbox: off"), embedded("beta", "sandbox: off")))
        note = tmp_path / "first-spawn.json"
        try:
            daemon.start()
            daemon.wait_running("alpha", "beta")
            assert daemon.terminate() == 0  # provisioned, and stopped
            env = {**os.environ, "EYRIE_HOME": str(tmp_path), "EYRIE_BENCH_FIRST_SPAWN": str(note)}
            env.pop("NOTIFY_SOCKET", None)
            with daemon.output.open("ab") as out:
                daemon.proc = subprocess.Popen(
                    [sys.executable, "-m", "bench._first_spawn", "--home", str(tmp_path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            wait_for(lambda: note.exists() and note.stat().st_size > 0, 30, "the first spawn's note")
            daemon.wait_running("alpha", "beta")
            modules = set(json.loads(note.read_text())["modules"])
        finally:
            daemon.close()
        assert "supervisor.engine.process" in modules  # the note is the daemon's
        assert {name for name in (*KEPT_OUT, *KEPT_OUT_UNTIL_SERVED) if name in modules} == set()
