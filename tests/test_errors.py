"""The error tree: its drawing, its groups, and every class surviving the trip from eyried to eyriectl."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import AsyncIterator

import httpx
import pytest

import supervisor
from supervisor import errors
from supervisor.client import ControlClient
from supervisor.control._error_answer import DETAILS_HEADER, details_headers, error_from_answer
from supervisor.control.app import create_app
from supervisor.errors import DaemonRunning, EyrieError, FleetFileError
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

ERROR_CLASSES = sorted(
    (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, EyrieError)),
    key=lambda c: c.__name__,
)

GROUP_STATUS = {
    errors.NotFound: 404,
    errors.InvalidRequest: 422,
    errors.ConfigurationError: 422,
    errors.Conflict: 409,
    errors.StoreError: 400,
}


def _drawn_parents() -> dict[str, str | None]:
    """Each class drawn in the module docstring of `supervisor.errors`, with the class drawn above it."""
    assert errors.__doc__ is not None
    drawing = errors.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    above: list[str] = []
    for line in drawing.splitlines():
        text = line.lstrip(" │├└─")
        depth = (len(line) - len(text)) // 4 - 1
        name = text.split()[0]
        del above[depth:]
        parents[name] = above[-1] if above else None
        above.append(name)
    return parents


def _real_parent(cls: type[EyrieError]) -> str | None:
    bases = [b.__name__ for b in cls.__bases__ if issubclass(b, EyrieError)]
    assert len(bases) <= 1, f"{cls.__name__} has two parents in the tree"
    return bases[0] if bases else None


def _all_subclasses(cls: type[EyrieError]) -> set[type[EyrieError]]:
    found = set(cls.__subclasses__())
    for sub in cls.__subclasses__():
        found |= _all_subclasses(sub)
    return found


def _sample(cls: type[EyrieError]) -> EyrieError:
    """An instance of ``cls`` as the daemon would raise it, with every detail it can carry filled in."""
    if cls is FleetFileError:
        return FleetFileError("unknown key", path="/h/fleet.yaml", line=7, key="instancez")
    if cls is DaemonRunning:
        return DaemonRunning(12, "/h")
    return cls(f"{cls.__name__} happened")


class TestErrorTree:
    def test_drawing_matches_the_classes(self) -> None:
        """The tree drawn in the module docstring has exactly the module's classes, each under its parent."""
        assert _drawn_parents() == {cls.__name__: _real_parent(cls) for cls in ERROR_CLASSES}

    def test_every_subclass_lives_in_the_errors_module(self) -> None:
        """No module of the package defines an EyrieError of its own: the tree is in one place."""
        for module in pkgutil.walk_packages(supervisor.__path__, "supervisor."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
        ours = {c for c in _all_subclasses(EyrieError) if c.__module__.startswith("supervisor.")}
        assert ours == set(ERROR_CLASSES) - {EyrieError}

    def test_all_lists_every_class(self) -> None:
        """``__all__`` names every error class and nothing that does not exist."""
        assert {c.__name__ for c in ERROR_CLASSES} <= set(errors.__all__)
        assert all(hasattr(errors, name) for name in errors.__all__)

    def test_every_class_is_documented(self) -> None:
        """Each class has a docstring of its own, not one inherited."""
        assert [c.__name__ for c in ERROR_CLASSES if not c.__dict__.get("__doc__")] == []

    def test_builtin_bases_are_kept(self) -> None:
        """What callers catch as ValueError or RuntimeError is still one."""
        value_errors = [
            errors.RequiredField,
            errors.UnsupportedFramework,
            errors.InvalidName,
            errors.InvalidID,
            errors.FleetFileError,
            errors.HierarchyError,
            errors.PersonaError,
            errors.UnitValueError,
            errors.NotifySocketError,
        ]
        assert all(issubclass(cls, ValueError) for cls in value_errors)
        assert issubclass(errors.IllegalTransition, RuntimeError)

    def test_systemd_import_paths_still_work(self) -> None:
        """The systemd errors can still be imported from the modules that raise them."""
        from supervisor.systemd.notify import NotifySocketError
        from supervisor.systemd.unit import UnitValueError

        assert UnitValueError is errors.UnitValueError and NotifySocketError is errors.NotifySocketError


class TestFromDetails:
    def test_fleet_file_error_keeps_where(self) -> None:
        """A FleetFileError built from its details has the same message, path, line and key."""
        error = FleetFileError("bad", path="/h/fleet.yaml", line=3, key="instances")
        again = FleetFileError.from_details(str(error), error.details())
        assert str(again) == str(error) and vars(again) == vars(error)

    def test_fleet_file_error_shows_an_unprintable_key_escaped(self) -> None:
        """A key holding a newline (a project id typed with one) stays on the message's one line, escaped."""
        error = FleetFileError("bad id", path="/h/fleet.yaml", line=3, key="projects.bad\nname")
        assert str(error) == "/h/fleet.yaml:3: projects.bad\\nname: bad id"
        assert error.key == "projects.bad\nname"

    def test_fleet_file_error_without_details(self) -> None:
        """Without details (or with ill-typed ones) a FleetFileError is rebuilt from its message alone."""
        message = "/h/fleet.yaml:3: instances: bad"
        for details in ({}, {"reason": "bad", "path": "/h/fleet.yaml", "line": "3", "key": "instances"}):
            again = FleetFileError.from_details(message, details)
            assert str(again) == message and again.path == ""

    def test_daemon_running_keeps_pid_and_home(self) -> None:
        """A DaemonRunning built from its details has the same message, pid and home."""
        again = DaemonRunning.from_details("ignored", DaemonRunning(None, "/h").details())
        assert (again.pid, again.home, str(again)) == (None, "/h", str(DaemonRunning(None, "/h")))

    def test_daemon_running_needs_details(self) -> None:
        """A DaemonRunning cannot be rebuilt from a message alone: TypeError."""
        with pytest.raises(TypeError, match="pid and home"):
            DaemonRunning.from_details("eyried is already running for /h (pid 12)", {"pid": "12"})

    def test_plain_classes_have_no_details(self) -> None:
        """A class that carries only its message sends no details."""
        assert errors.NotFound("gone").details() == {}


class TestErrorAnswer:
    def test_no_header_without_details(self) -> None:
        """An error with nothing beyond its message adds no header."""
        assert details_headers(errors.NameExists("taken")) == {}

    def test_header_is_ascii_json(self) -> None:
        """Details with non-ASCII text travel as ASCII JSON that reads back the same."""
        error = FleetFileError("bad", path="/home/zoë/fleet.yaml", line=1)
        text = details_headers(error)[DETAILS_HEADER]
        assert text.isascii() and json.loads(text) == error.details()

    def test_oversized_details_are_left_out(self) -> None:
        """Details too large for a header are dropped; the error still arrives by its message."""
        error = FleetFileError("bad", path="/" + "é" * 4000)
        assert details_headers(error) == {}
        again = error_from_answer({"error": str(error), "kind": "FleetFileError"}, {})
        assert type(again) is FleetFileError and str(again) == str(error)

    def test_not_an_error_body(self) -> None:
        """A body without an ``error`` key is not an error answer."""
        assert error_from_answer(None, {}) is None and error_from_answer(["error"], {}) is None

    def test_foreign_kind_is_eyrie_error(self) -> None:
        """A kind that is not one of our classes (BadRequest, InternalError, a stray name) is EyrieError."""
        for kind in ("BadRequest", "InternalError", "ValueError", "ErrorDetail", ""):
            error = error_from_answer({"error": "no", "kind": kind}, {})
            assert type(error) is EyrieError and str(error) == "no"

    def test_garbled_header_is_ignored(self) -> None:
        """A details header that is not a JSON object is treated as absent."""
        body = {"error": "where: bad", "kind": "FleetFileError"}
        for text in ("{not json", "[1, 2]"):
            error = error_from_answer(body, {DETAILS_HEADER: text})
            assert type(error) is FleetFileError and str(error) == "where: bad"


@pytest.mark.anyio
class TestRoundTrip:
    @pytest.fixture
    def target(self) -> MemoryTarget:
        t = MemoryTarget("/srv/eyrie")
        t.put("alpha", port=43001)
        return t

    @pytest.fixture
    async def transport(self, target: MemoryTarget) -> AsyncIterator[httpx.ASGITransport]:
        app = create_app(target)
        async with app.router.lifespan_context(app):
            yield httpx.ASGITransport(app)

    @pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
    async def test_client_raises_the_same_error(
        self, home: Home, target: MemoryTarget, transport: httpx.ASGITransport, cls: type[EyrieError]
    ) -> None:
        """An error raised in the daemon is raised by the client as the same class, message and details."""
        error = _sample(cls)
        target.fail_next["restart"] = error
        async with ControlClient(home, transport=transport) as client:
            with pytest.raises(cls) as caught:
                await client.restart("alpha")
        assert type(caught.value) is cls
        assert str(caught.value) == str(error) and vars(caught.value) == vars(error)

    @pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
    async def test_status_follows_the_group(
        self, target: MemoryTarget, transport: httpx.ASGITransport, cls: type[EyrieError]
    ) -> None:
        """Each error answers with its group's status (an invalid id, a malformed reference, is 400)."""
        target.fail_next["restart"] = _sample(cls)
        async with httpx.AsyncClient(transport=transport, base_url="http://eyried") as http:
            response = await http.post("/v1/instances/alpha/restart")
        group = next((g for g in cls.__mro__ if g in GROUP_STATUS), None)
        expected = 400 if cls is errors.InvalidID or group is None else GROUP_STATUS[group]
        assert response.status_code == expected
        assert response.json() == {"error": str(_sample(cls)), "kind": cls.__name__}
