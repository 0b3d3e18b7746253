"""Removal never destroys data by surprise: a real eyried moves removed instances to the trash, keeps it
within its retention, plans a reload without applying it, and `eyriectl trash` brings an instance back."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from supervisor.fleet import load_fleet
from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from supervisor.trash import Trash
from tests._cli import eyriectl, ok
from tests._daemon import FAST_DEFAULTS, embedded, fleet_yaml, pid_alive, running_daemon, wait_for

COMMENTED = f"""\
# my fleet: every comment here must survive a restore
version: 1
{FAST_DEFAULTS}
instances:
  # the first agent
  - name: alpha
    framework: embedded
  # the helper, with a model of its own
  - name: helper
    framework: embedded
    model: helper-model   # chosen by hand
# end of the fleet
"""


def _memory(home: Path, instance_id: str) -> Path:
    return home / "instances" / instance_id / "workspace" / "memory" / "notes.md"


def _trash_entries(home: Path, name: str) -> list[Path]:
    root = home / "removed"
    return sorted(p for p in root.glob(f"{name}-*") if p.is_dir()) if root.is_dir() else []


class TestRemovalByReload:
    def test_rename_keeps_the_old_memory_in_the_trash(self, tmp_path: Path) -> None:
        """A rename in fleet.yaml (a removal plus an addition) stops the old agent and moves its directory,
        memory included, to the trash instead of deleting it."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("scout"))) as d:
            pids = d.wait_running("alpha", "scout")
            old = d.instance("scout")
            _memory(tmp_path, old["id"]).write_text("what scout learned\n")
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("scout-renamed")))
            d.signal(signal.SIGHUP)
            d.wait_running("scout-renamed")
            wait_for(lambda: not pid_alive(pids["scout"]), 20, "the old agent to stop")
            (entry,) = wait_for(lambda: _trash_entries(tmp_path, "scout"), 20, "scout's files in the trash")
            assert entry.name.startswith(f"scout-{old['id']}-")
            assert (entry / "workspace" / "memory" / "notes.md").read_text() == "what scout learned\n"
            assert not (tmp_path / "instances" / old["id"]).exists()
            assert d.instance("alpha")["pid"] == pids["alpha"]

    def test_symlinked_instance_directory_is_moved_as_a_link(self, tmp_path: Path) -> None:
        """An instance directory planted as a symlink before eyried starts is never entered: the name gets a
        fresh instance, whose removal neither kills eyried nor touches what the link points at, outside the
        home; the link stays where it was, reported."""
        home = tmp_path / "home"
        home.mkdir()
        linked = Provisioner(Store(Home(home)), Home(home)).provision(
            CreateRequest(name="linked", framework="embedded")
        )
        outside = tmp_path / "outside"
        os.rename(home / "instances" / linked.id, outside)
        (home / "instances" / linked.id).symlink_to(outside)
        (outside / "workspace" / "memory" / "notes.md").write_text("kept outside\n")
        with running_daemon(home, fleet_yaml(embedded("alpha"), embedded("linked"))) as d:
            alpha = d.wait_running("alpha")["alpha"]
            wait_for(lambda: "daemon_ready" in d.log(), 30, "eyried to be ready")
            d.write_fleet(fleet_yaml(embedded("alpha")))
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_applied" in d.log(), 30, "the reload to be applied")
            (entry,) = wait_for(lambda: list((home / "removed").glob("linked-*Z")), 20, "the link trashed")
            assert not entry.is_symlink() and (home / "instances" / linked.id).is_symlink()
            assert (outside / "workspace" / "memory" / "notes.md").read_text() == "kept outside\n"
            assert (outside / "instance.json").exists()
            assert d.proc is not None and d.proc.poll() is None
            assert d.instance("alpha")["pid"] == alpha and pid_alive(alpha)


class TestRetention:
    def test_entries_past_the_retention_are_deleted_at_start(self, tmp_path: Path) -> None:
        """At start eyried deletes trash entries older than daemon.trash_retention and keeps younger ones."""
        home = Home(tmp_path)
        provisioner = Provisioner(Store(home), home)
        now = datetime.now(UTC)
        old = provisioner.provision(CreateRequest(name="old", framework="embedded"))
        young = provisioner.provision(CreateRequest(name="young", framework="embedded"))
        Trash(home).move_in(old.id, name="old", now=now - timedelta(days=3))
        Trash(home).move_in(young.id, name="young", now=now - timedelta(hours=1))
        retention = "version: 1\ndaemon: {trash_retention: 2d}\n"
        fleet = fleet_yaml(embedded("alpha")).replace("version: 1\n", retention, 1)
        with running_daemon(tmp_path, fleet) as d:
            wait_for(lambda: not _trash_entries(tmp_path, "old"), 30, "the old entry to be deleted")
            wait_for(lambda: "trash_expired" in d.log(), 30, "the summary, logged after the deletions")
            assert [e.name for e in Trash(home).entries()] == ["young"]


class TestDryRun:
    def test_plan_lists_every_kind_and_applies_nothing(self, tmp_path: Path) -> None:
        """reload --dry-run names what would be added, removed, restarted and updated, and changes nothing."""
        fleet = fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma"), embedded("delta"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "beta", "gamma", "delta")
            wait_for(lambda: "daemon_ready" in d.log(), 30, "eyried to be ready")
            d.write_fleet(
                fleet_yaml(
                    embedded("alpha"),
                    embedded("beta", "model: other-model"),
                    embedded("gamma", "restart: {max_retries: 2}"),
                    embedded("epsilon"),
                )
            )
            text = ok(eyriectl(tmp_path, "reload", "--dry-run")).stdout
            assert text.splitlines()[0] == "plan (nothing applied):"
            assert "would add: epsilon" in text and "would remove (directories to the trash): delta" in text
            assert "would restart: beta" in text and "would update live: gamma" in text
            plan = json.loads(ok(eyriectl(tmp_path, "reload", "--dry-run", "--json")).stdout)
            assert (plan["dry_run"], plan["added"], plan["removed"]) == (True, ["epsilon"], ["delta"])
            assert (plan["restarted"], plan["updated"], plan["unchanged"]) == (["beta"], ["gamma"], ["alpha"])
            assert "epsilon" not in d.instances() and "reload_applied" not in d.log()
            assert all(d.instance(name)["pid"] == pid and pid_alive(pid) for name, pid in pids.items())

    def test_invalid_file_is_reported(self, tmp_path: Path) -> None:
        """A plan of an invalid file exits 1 with the error, like the reload it previews."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            d.write_fleet("version: 1\ninstances:\n  - name: alpha\n    framework: [oops\n")
            result = eyriectl(tmp_path, "reload", "--dry-run")
            assert result.returncode == 1 and "reload rejected" in result.stderr

    def test_offline_plan_from_disk(self, tmp_path: Path) -> None:
        """With eyried down, --dry-run plans against the instances on disk and exits 3."""
        home = Home(tmp_path)
        Provisioner(Store(home), home).provision(CreateRequest(name="alpha", framework="embedded"))
        home.fleet_file.write_text(fleet_yaml(embedded("alpha"), embedded("beta")))
        result = eyriectl(tmp_path, "reload", "--dry-run", "--json")
        assert result.returncode == 3 and "not running" in result.stderr
        plan = json.loads(result.stdout)
        assert (plan["added"], plan["unchanged"], plan["dry_run"]) == (["beta"], ["alpha"], True)


class TestRestore:
    def test_remove_then_restore_round_trip(self, tmp_path: Path) -> None:
        """remove moves helper to the trash; trash restore puts its directory and its declaration back
        (comments kept) and the running eyried adopts it with its memory; a second restore finds nothing."""
        with running_daemon(tmp_path, COMMENTED) as d:
            d.wait_running("alpha", "helper")
            helper = d.instance("helper")
            _memory(tmp_path, helper["id"]).write_text("helper's memory\n")
            ok(eyriectl(tmp_path, "remove", "helper"))
            listed = json.loads(ok(eyriectl(tmp_path, "trash", "list", "--json")).stdout)
            assert [(e["name"], e["id"], e["declared"]) for e in listed] == [("helper", helper["id"], True)]
            restored = ok(eyriectl(tmp_path, "trash", "restore", "helper", "--json"))
            out = json.loads(restored.stdout)
            assert (out["restored"], out["id"]) == ("helper", helper["id"])
            assert out["reload"]["added"] == ["helper"]
            d.wait_running("helper")
            assert d.instance("helper")["id"] == helper["id"]
            assert _memory(tmp_path, helper["id"]).read_text() == "helper's memory\n"
            decl = load_fleet(d.fleet_file).decl("helper")
            assert decl.model == "helper-model"
            text = d.fleet_file.read_text()
            assert "# my fleet" in text and "# the first agent" in text and "# end of the fleet" in text
            again = eyriectl(tmp_path, "trash", "restore", "helper")
            assert again.returncode == 1 and "no instance 'helper' in the trash" in again.stderr

    def test_refused_while_the_name_is_declared(self, tmp_path: Path) -> None:
        """While fleet.yaml declares the name again, restore exits 1 and the entry stays in the trash."""
        with running_daemon(tmp_path, COMMENTED) as d:
            d.wait_running("alpha", "helper")
            ok(eyriectl(tmp_path, "remove", "helper"))
            ok(eyriectl(tmp_path, "add", "helper", "--framework", "embedded", "--no-start"))
            result = eyriectl(tmp_path, "trash", "restore", "helper")
            assert result.returncode == 1 and "declared" in result.stderr
            assert len(_trash_entries(tmp_path, "helper")) == 1


class TestOffline:
    def test_trash_commands_work_with_the_daemon_down(self, tmp_path: Path) -> None:
        """list, restore and empty are file operations: they work with eyried down and say what is left."""
        home = Home(tmp_path)
        home.fleet_file.write_text(COMMENTED)
        provisioner = Provisioner(Store(home), home)
        helper = provisioner.provision(CreateRequest(name="helper", framework="embedded"))
        ok(eyriectl(tmp_path, "remove", "helper"))
        assert "helper" not in load_fleet(home.fleet_file).names()
        assert "helper" in ok(eyriectl(tmp_path, "trash")).stdout
        restored = ok(eyriectl(tmp_path, "trash", "restore", "helper"))
        assert "adopts the instance at its next start" in restored.stderr
        assert Store(home).get_by_name("helper").id == helper.id
        assert load_fleet(home.fleet_file).decl("helper").model == "helper-model"
        ok(eyriectl(tmp_path, "remove", "helper"))
        kept = json.loads(ok(eyriectl(tmp_path, "trash", "empty", "--older-than", "1d", "--json")).stdout)
        assert kept == [] and len(_trash_entries(tmp_path, "helper")) == 1
        emptied = json.loads(ok(eyriectl(tmp_path, "trash", "empty", "--json")).stdout)
        assert [e["name"] for e in emptied] == ["helper"] and _trash_entries(tmp_path, "helper") == []
        bad = eyriectl(tmp_path, "trash", "empty", "--older-than", "soon")
        assert bad.returncode == 2
