"""What ``eyriectl ps`` asks for and how the daemon answers it cheaply: ``GET /v1/instances?view=ps`` sends
only the fields ps reads, byte for byte what pydantic writes for them, and the table drawn from them is the
table drawn from whole rows; a reload that changes nothing keeps the listing's rows and its reading of the
fleet file, and DRIFT still shows an edit made before or after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from supervisor.cli._plain import ps_lines, ps_notes
from supervisor.cli._quick_client import QuickClient
from supervisor.control._listing import Listing, RowJSON, listing_body
from supervisor.control._ps_row import PS_FIELDS, PS_VIEW
from supervisor.control.schema import InstanceView
from supervisor.daemon._statcache import StatCache, file_key
from supervisor.daemon._view_cache import ViewCache
from supervisor.errors import EyrieError
from supervisor.fleet import InstanceDecl
from supervisor.models import Instance, InstanceStatus
from supervisor.paths import Home
from tests._cli import eyriectl, ok, ps
from tests._daemon import embedded, fleet_yaml, running_daemon

_LIST = TypeAdapter(list[InstanceView])
_PS_ONLY: dict[str, set[str]] = {"__all__": set(PS_FIELDS)}

_ROWS: list[dict[str, Any]] = [
    {"name": "alpha", "framework": "embedded", "status": "running", "status_detail": "process 7 started",
     "phase": "running", "health_status": "healthy", "pid": 7, "port": 43001, "uptime_seconds": 3725.5,
     "restart_count": 2, "cpu_percent": 1.25, "memory_bytes": 31_000_000, "sandbox": "landlock",
     "flags": ["DRIFT"], "project_id": "p1", "last_error": "", "config_path": "/x/config.json",
     "cmdline": ["sleep", "infinity"], "launch_hash": "ab" * 32},
    {"name": "beta", "framework": "embedded", "status": "stopped", "phase": "backoff",
     "status_detail": "backoff 4s", "last_error": "exited with code 1", "restart_count": 5, "port": 43002,
     "sandbox": "off", "flags": [], "project_id": "p2", "hierarchy_role": "talon", "note": "busy"},
    {"name": "gamma", "framework": "embedded", "status": "error", "last_error": "crash loop\x1b[2J",
     "flags": ["DISABLED"], "project_id": "p1", "uptime_seconds": None, "memory_bytes": None},
    {"name": "delta", "framework": "embedded", "status": "", "flags": ["MISSING"], "last_error": "no port"},
]  # fmt: skip


def _cut(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in PS_FIELDS}


class TestTheFieldsPsReads:
    @pytest.mark.parametrize(("width", "colour"), [(250, False), (60, False), (250, True), (40, True)])
    def test_rows_cut_to_the_ps_fields_draw_the_same_table(self, width: int, colour: bool) -> None:
        """Each kind of row (running with a sample and DRIFT, in backoff with an error, in error, MISSING):
        the table and its notes from the rows cut to `PS_FIELDS` are those from whole rows, wide or narrow,
        in colour or not, and so is each project's share."""
        cut = [_cut(row) for row in _ROWS]
        assert ps_lines(cut, width=width, colour=colour) == ps_lines(_ROWS, width=width, colour=colour)
        assert ps_notes(cut) == ps_notes(_ROWS)
        for project in ("p1", "p2"):
            assert [r for r in cut if r.get("project_id") == project] == [
                _cut(r) for r in _ROWS if r.get("project_id") == project
            ]

    def test_kept_rows_join_as_pydantic_dumps_the_ps_fields(self) -> None:
        """A listing of kept rows (their uptimes changed in place since) and a fresh one, in the ps form and
        whole, one after the other: each the bytes of pydantic's dump with or without ``include``."""
        views = [InstanceView.model_validate(row) for row in _ROWS]
        listing = Listing()
        for view in views[:3]:
            listing.add(view, RowJSON(view))
        listing.add(views[3])
        assert listing_body(listing, PS_FIELDS) == _LIST.dump_json(listing, include=_PS_ONLY)
        views[0].uptime_seconds, views[1].uptime_seconds = 7200.25, 3e-05
        assert listing_body(listing) == _LIST.dump_json(listing)
        assert listing_body(listing, PS_FIELDS) == _LIST.dump_json(listing, include=_PS_ONLY)


def _decl(**fields: Any) -> InstanceDecl:
    return InstanceDecl.model_validate({"name": "alpha", **fields})


class TestAReloadThatChangesNothing:
    def test_an_equal_declaration_keeps_the_row_a_different_one_builds_it(self) -> None:
        """The same instance with its declaration read anew, equal: the kept row (no rebuild); one that
        declares it otherwise (disabled): a new row saying so."""
        cache = ViewCache()
        inst = Instance.model_validate(
            {"id": "i-1", "name": "alpha", "framework": "embedded", "status": InstanceStatus.STOPPED}
        )

        def row(decl: InstanceDecl) -> InstanceView:
            return cache.view(
                inst, decl=decl, drift=False, resources=None, last_seen=None, inst_json=inst.to_json_dict
            )

        first = row(_decl(project="p1"))
        assert row(_decl(project="p1")) is first
        disabled = row(_decl(project="p1", autostart=False))
        assert disabled is not first and disabled.autostart is False

    def test_a_value_put_is_kept_until_the_file_changes(self, tmp_path: Path) -> None:
        """`StatCache.put` keeps a value computed elsewhere for the file as its key found it: answered
        without computing while the file stays so; a change of the file, or one made between the key and
        the read, computes it again."""
        path = tmp_path / "fleet.yaml"
        path.write_text("a")
        key = file_key(path)
        assert key is not None
        cache = StatCache[str]()
        cache.put(path, key, "read by the start")
        assert cache.kept(path) == (True, "read by the start")
        assert cache.get(path, path.read_text) == "read by the start"
        path.write_text("bb")
        assert cache.kept(path) == (False, None)
        assert cache.get(path, path.read_text) == "bb"
        stale = file_key(path)
        assert stale is not None
        path.write_text("ccc")  # written after the key was taken: the key no longer matches
        cache.put(path, stale, "bb")
        assert cache.get(path, path.read_text) == "ccc"

    def test_drift_is_shown_for_edits_before_and_after_a_reload(self, tmp_path: Path) -> None:
        """A reload that changes nothing, then an edit of the file: DRIFT; reloaded: gone. The ps rows are
        the whole rows' fields all along."""
        fleet = fleet_yaml(embedded("alpha"), embedded("beta"))
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running("alpha", "beta")
            assert {n: r["flags"] for n, r in ps(d.home).items()} == {"alpha": [], "beta": []}
            ok(eyriectl(d.home, "reload"))
            assert {n: r["flags"] for n, r in ps(d.home).items()} == {"alpha": [], "beta": []}
            d.write_fleet(fleet_yaml(embedded("alpha", "env: {EDITED: '1'}"), embedded("beta")))
            assert {n: r["flags"] for n, r in ps(d.home).items()} == {"alpha": ["DRIFT"], "beta": []}
            with QuickClient(Home(d.home)) as client:
                cut = client.get(f"/v1/instances?view={PS_VIEW}")
                whole = client.get("/v1/instances")
            assert [set(row) for row in cut] == [PS_FIELDS, PS_FIELDS]
            assert [{**_cut(r), "uptime_seconds": 0} for r in whole] == [
                {**r, "uptime_seconds": 0} for r in cut
            ]
            ok(eyriectl(d.home, "reload"))
            assert {n: r["flags"] for n, r in ps(d.home).items()} == {"alpha": [], "beta": []}


class TestThroughTheDaemon:
    def test_ps_prints_the_table_of_whole_rows_and_an_unknown_view_is_refused(self, tmp_path: Path) -> None:
        """``eyriectl ps`` (which asks for the ps view) prints the table drawn from the whole rows, and
        ``view=`` anything else is a clear 400 that names the one it takes."""
        fleet = fleet_yaml(embedded("alpha", "autostart: false"), embedded("beta", "autostart: false"))
        with running_daemon(tmp_path, fleet) as d:
            d.wait_status("alpha", "created")
            d.wait_status("beta", "created")
            with QuickClient(Home(d.home)) as client:
                whole = client.get("/v1/instances")
                with pytest.raises(EyrieError, match="'view' must be 'ps'"):
                    client.get("/v1/instances?view=all")
            printed = ok(eyriectl(d.home, "ps")).stdout
        assert printed == "\n".join([*ps_lines(whole, width=250, colour=False), *ps_notes(whole)]) + "\n"
