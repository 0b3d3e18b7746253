"""What the daemon's start-up keeps out until it is used, held structurally (the timings are in
bench/start_imports.py): modules only an error or a rare request needs are not loaded by importing the
daemon, the models a start never validates are not built, and such a model, once used, validates as before."""

from __future__ import annotations

import json
import subprocess
import sys
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

KEPT_OUT = ("difflib", "supervisor.fleet._locate", "psutil", "jinja2", "httpx", "starlette", "uvicorn")
"""Where the fleet file's errors are located; a port holder's name; templates; HTTP client and server."""

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
    "modules": sorted(sys.modules),
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


def _run(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestDaemonImport:
    def test_importing_the_daemon_loads_none_of_what_only_errors_and_rare_requests_need(self) -> None:
        """``import supervisor.daemon.main`` (all a start imports before its fleet runs) loads none of
        `KEPT_OUT`."""
        modules = set(json.loads(_run(_PROBE))["modules"])
        assert "supervisor.daemon.daemon" in modules  # the probe imported the daemon
        assert {name for name in KEPT_OUT if name in modules} == set()

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
