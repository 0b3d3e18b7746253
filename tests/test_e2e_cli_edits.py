"""eyriectl end to end, fleet edits: add, remove and the ps flags, each test driving its own real eyried with
the real CLI, and a hand-written fleet.yaml keeping every comment through the daemon's edits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.fleet import load_fleet
from tests._cli import eyriectl, eyriectl_many, ok, ps
from tests._daemon import FAST_DEFAULTS, DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon

COMMENTED = f"""\
# ===========================================================================
# A hand-written fleet. Every comment here must survive eyriectl's edits.
# ===========================================================================
version: 1   # the file format

# --- policies: fast, for tests ----------------------------------------------
{FAST_DEFAULTS}
# --- the fleet -----------------------------------------------------------------
instances:
  # the one in charge
  - name: boss           # commander
    framework: embedded
    role: commander
    persona: strategist  # plans the work

  # project apollo
  - name: lead
    framework: embedded
    role: captain
    project: apollo      # the project it leads
    parent: boss
    # model: still to be chosen

  # a helper that comes and goes
  - name: helper
    framework: embedded  # needs no key
    autostart: true      # back after a reboot
# end of the fleet
"""
BASE = ("boss", "lead", "helper")


def _comments(text: str) -> list[str]:
    """Every comment in ``text``, whole-line or trailing, in order."""
    found = []
    for line in text.splitlines():
        if "#" in line:
            found.append(line[line.index("#") :].rstrip())
    return found


@pytest.fixture
def commented(tmp_path: Path) -> Iterator[DaemonProcess]:
    with running_daemon(tmp_path, COMMENTED) as daemon:
        daemon.wait_running(*BASE)
        yield daemon


class TestAdd:
    def test_every_option(self, commented: DaemonProcess) -> None:
        """add with role, persona, project, parent and model declares, provisions and starts it with them."""
        d = commented
        result = ok(
            eyriectl(
                d.home, "add", "scout", "--framework", "embedded", "--role", "talon", "--persona", "engineer",
                "--project", "apollo", "--parent", "lead", "--model", "model-x", "--json",
            )
        )  # fmt: skip
        view = json.loads(result.stdout)
        assert (view["name"], view["hierarchy_role"], view["framework"]) == ("scout", "talon", "embedded")
        pid = d.wait_running("scout")["scout"]
        inst = d.instance("scout")
        assert inst["id"] == view["id"]
        assert (inst["persona_id"], inst["project_id"], inst["model"]) == ("engineer", "apollo", "model-x")
        assert inst["parent_id"] == d.instance("lead")["id"]
        (decl,) = [decl for decl in load_fleet(d.fleet_file).instances if decl.name == "scout"]
        assert (decl.role.value, decl.persona, decl.project, decl.parent, decl.model, decl.autostart) == (
            "talon", "engineer", "apollo", "lead", "model-x", True,
        )  # fmt: skip
        row = ps(d.home)["scout"]
        assert (row["status"], row["pid"], row["flags"]) == ("running", pid, [])

    def test_no_enable_and_no_start(self, commented: DaemonProcess) -> None:
        """--no-enable runs it flagged DISABLED (autostart false); --no-start provisions it, not running."""
        d = commented
        for result in eyriectl_many(
            d.home,
            [
                ["add", "spare", "--framework", "embedded", "--no-enable"],
                ["add", "idle", "--framework", "embedded", "--no-start"],
            ],
        ):
            ok(result)
        d.wait_running("spare")
        rows = ps(d.home)
        assert (rows["spare"]["status"], rows["spare"]["flags"], rows["spare"]["autostart"]) == (
            "running", ["DISABLED"], False,
        )  # fmt: skip
        assert (rows["idle"]["status"], rows["idle"]["pid"], rows["idle"]["flags"]) == ("created", None, [])
        assert (d.home / "instances" / rows["idle"]["id"] / "config.json").exists()
        declared = {decl.name: decl.autostart for decl in load_fleet(d.fleet_file).instances}
        assert (declared["spare"], declared["idle"]) == (False, True)


class TestRemove:
    def test_remove_to_the_trash_and_purge(self, commented: DaemonProcess) -> None:
        """remove stops the agent and moves its files to the trash; --purge deletes them; both leave file
        and ps."""
        d = commented
        helper, lead = d.instance("helper"), d.instance("lead")
        purged, kept = eyriectl_many(d.home, [["remove", "helper", "--purge"], ["remove", "lead"]])
        assert ok(purged).stdout == "removed helper\n"
        assert ok(kept).stdout == "removed lead\n" and "eyriectl trash restore lead" in kept.stderr
        assert not pid_alive(helper["pid"]) and not pid_alive(lead["pid"])
        assert not (d.home / "instances" / helper["id"]).exists()
        assert not list((d.home / "removed").glob(f"helper-{helper['id']}*"))
        (kept_dir,) = (d.home / "removed").glob(f"lead-{lead['id']}-*Z")
        assert json.loads((kept_dir / "instance.json").read_text())["name"] == "lead"
        assert not (d.home / "instances" / lead["id"]).exists()
        assert [decl.name for decl in load_fleet(d.fleet_file).instances] == ["boss"]
        assert list(ps(d.home)) == ["boss"]


class TestComments:
    def test_comments_survive_add_disable_remove(self, commented: DaemonProcess) -> None:
        """After add, disable and remove through the running daemon every comment is still in fleet.yaml."""
        d = commented
        ok(eyriectl(d.home, "add", "extra", "--framework", "embedded", "--no-start"))
        ok(eyriectl(d.home, "disable", "helper"))
        ok(eyriectl(d.home, "remove", "extra"))
        text = d.fleet_file.read_text()
        assert _comments(text) == _comments(COMMENTED)
        assert text == COMMENTED.replace("    autostart: true      #", "    autostart: false      #")


class TestFlags:
    def test_drift_until_reload(self, tmp_path: Path) -> None:
        """A model edited in fleet.yaml shows DRIFT on that instance only; reload restarts it, clearing it."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            d.write_fleet(fleet_yaml(embedded("alpha", "model: model-y"), embedded("beta")))
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DRIFT"], [])
            table = ok(eyriectl(d.home, "ps")).stdout
            assert (
                next(line for line in table.splitlines() if line.startswith("alpha"))
                .rstrip()
                .endswith("DRIFT")
            )
            reloaded = ok(eyriectl(d.home, "reload")).stdout
            assert "  restarted: alpha\n" in reloaded and "  unchanged: 1\n" in reloaded
            alpha = d.wait_new_pid("alpha", pids["alpha"])
            assert alpha["model"] == "model-y"
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == ([], [])
            assert rows["beta"]["pid"] == pids["beta"]

    def test_drift_after_config_file_edit(self, tmp_path: Path) -> None:
        """A config file edited on disk after a listing (which keeps its hash) shows DRIFT at the next one,
        whether the edit keeps the file's size and inode or replaces the file."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            d.wait_running("alpha", "beta")
            assert (ps(d.home)["alpha"]["flags"], ps(d.home)["beta"]["flags"]) == ([], [])
            config = Path(d.instance("alpha")["config_path"])
            text = config.read_text()
            with config.open("r+") as f:  # same size, same inode: only the mtime tells
                f.write("X" if text[0] != "X" else "Y")
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DRIFT"], [])
            other = Path(d.instance("beta")["config_path"])
            replacement = other.with_name("config.json.new")
            replacement.write_text(other.read_text() + " ")
            replacement.replace(other)
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DRIFT"], ["DRIFT"])

    def test_hand_edits_before_reload(self, tmp_path: Path) -> None:
        """Before reload, an instance added to fleet.yaml by hand is MISSING, one removed by hand ORPHAN."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            d.wait_running("alpha", "beta")
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("gamma")))
            rows = ps(d.home)
            assert "ORPHAN" in rows["beta"]["flags"]
            assert rows.get("gamma", {}).get("flags") == ["MISSING"]
