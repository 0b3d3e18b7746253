"""The agent API end to end: a real eyried, real agents, real HTTP over TCP with each agent's own token, and
the real fleet.yaml it edits."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.errors import FleetFileError
from supervisor.fleet import parse_fleet
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from tests._cli import eyriectl, ok, ps
from tests._daemon import FAST_DEFAULTS, DaemonProcess, running_daemon, wait_for

REPO = Path(__file__).resolve().parent.parent


def _fleet(max_children: int = 8, extra: str = "") -> str:
    return f"""\
version: 1
daemon:
  agent_api: {{max_children: {max_children}}}
{FAST_DEFAULTS}instances:
  - {{name: boss, framework: embedded, role: commander}}
  - {{name: cap-a, framework: embedded, role: captain, project: apollo, parent: boss}}
  - {{name: cap-z, framework: embedded, role: captain, project: zeus, parent: boss}}
  - {{name: t-a, framework: embedded, role: talon, project: apollo, parent: cap-a}}
  - {{name: t-z, framework: embedded, role: talon, project: zeus, parent: cap-z}}
{extra}"""


ROSTER = ("boss", "cap-a", "cap-z", "t-a", "t-z")


class Agents:
    """HTTP clients for the agent API, one per agent, each with that agent's own token."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        record = json.loads((daemon.home / "run" / "agent-api" / "instance.json").read_text())
        self.url = f"http://127.0.0.1:{record['port']}/v1"
        self._clients: list[httpx.Client] = []

    def token(self, name: str) -> str:
        instance_id = str(self.daemon.instance(name)["id"])
        return (self.daemon.home / "instances" / instance_id / "secrets" / "token").read_text().strip()

    def as_(self, name: str) -> httpx.Client:
        return self.with_token(self.token(name))

    def with_token(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def fleet_agents(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Agents]:
    fleet = getattr(request, "param", _fleet())
    with running_daemon(tmp_path, fleet) as daemon:
        daemon.wait_running(*ROSTER)
        agents = Agents(daemon)
        try:
            yield agents
        finally:
            agents.close()


def _snapshot(home: Path) -> tuple[bytes, set[str]]:
    """The fleet file's bytes and the instance directories: what a refused call must leave as it was."""
    return (home / "fleet.yaml").read_bytes(), {p.name for p in (home / "instances").iterdir()}


def _recent_events(home: Path) -> list[dict[str, Any]]:
    transport = httpx.HTTPTransport(uds=str(home / "run" / "eyried.sock"))
    with httpx.Client(transport=transport, base_url="http://eyried") as control:
        answer: list[dict[str, Any]] = control.get("/v1/events/recent", params={"limit": 1000}).json()
    return answer


class TestAuthentication:
    def test_no_token_or_a_wrong_one_is_401_and_logged_without_it(self, fleet_agents: Agents) -> None:
        """Missing, malformed and unknown tokens get 401; the log names the peer, never the token; an
        agent's token is accepted and maps to that agent."""
        wrong = "x" * 43
        for client in (fleet_agents.with_token(None), fleet_agents.with_token(wrong)):
            answer = client.get("/self")
            assert answer.status_code == 401 and answer.json()["kind"] == "Unauthorized"
        basic = httpx.get(f"{fleet_agents.url}/self", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401
        assert fleet_agents.as_("t-a").get("/self").json()["name"] == "t-a"
        log = fleet_agents.daemon.log()
        assert "agent_api_unauthorized" in log and '"peer": "127.0.0.1:' in log
        assert wrong not in log and fleet_agents.token("t-a") not in log


class TestTalon:
    def test_a_talon_reads_itself_and_notes_but_manages_nothing(self, fleet_agents: Agents) -> None:
        """A talon gets its own record (no token in it) and posts a note shown by ps --json; listing,
        creating, starting, stopping and removing are 403 with fleet.yaml and the instances unchanged."""
        home = fleet_agents.daemon.home
        talon = fleet_agents.as_("t-a")
        me = talon.get("/self")
        assert me.status_code == 200 and me.json()["name"] == "t-a"
        assert "auth_token" not in me.json() and fleet_agents.token("t-a") not in me.text
        before = _snapshot(home)
        refused = [
            talon.get("/instances"),
            talon.get("/instances/t-z"),
            talon.post("/instances", json={"name": "t-new", "role": "talon", "project": "apollo"}),
            talon.post("/instances/t-z/stop"),
            talon.post("/instances/t-a/stop"),
            talon.post("/instances/boss/start"),
            talon.delete("/instances/t-z"),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert all(r.json()["kind"] == "Forbidden" for r in refused)
        assert _snapshot(home) == before
        assert all(fleet_agents.daemon.instance(n)["status"] == "running" for n in ROSTER)

        posted = talon.post("/self/note", json={"note": "survey half done ✓"})
        assert posted.status_code == 200 and posted.json()["note"] == "survey half done ✓"
        assert ps(home)["t-a"]["note"] == "survey half done ✓"
        for bad in ("clear\x1b[2J", "bidi\u202e", "x" * 501):
            answer = talon.post("/self/note", json={"note": bad})
            assert answer.status_code == 422, bad
        assert talon.post("/self/note", json={"note": "x", "status": "running"}).status_code == 422
        assert talon.post("/self/note", content=b"x" * 20_000).status_code == 413
        assert ps(home)["t-a"]["note"] == "survey half done ✓"

        log = fleet_agents.daemon.log()
        assert '"agent": "t-a"' in log and '"outcome": "refused"' in log and '"action": "remove"' in log
        events = [e for e in _recent_events(home) if e["event"] == "agent_api"]
        assert any(e["instance"] == "t-a" and e["data"]["outcome"] == "refused" for e in events)
        assert any(e["data"]["action"] == "note" and e["data"]["outcome"] == "allowed" for e in events)


class TestCommander:
    def test_a_commander_creates_runs_and_removes_a_talon(self, fleet_agents: Agents) -> None:
        """The talon lands in fleet.yaml (comments kept) with created_by and its captain as parent, runs,
        is stopped, started and removed by the commander; its token then stops working."""
        daemon = fleet_agents.daemon
        fleet_file = daemon.home / "fleet.yaml"
        fleet_file.write_text("# kept by every edit\n" + fleet_file.read_text())
        boss_id = daemon.instance("boss")["id"]
        boss = fleet_agents.as_("boss")
        assert {v["name"] for v in boss.get("/instances").json()} == set(ROSTER)

        made = boss.post("/instances", json={"name": "t-new", "role": "talon", "project": "apollo"})
        assert made.status_code == 201, made.text
        text = fleet_file.read_text()
        assert text.startswith("# kept by every edit\n")
        entry = text[text.index("- name: t-new") :]
        assert f"created_by: {boss_id}" in entry and "parent: cap-a" in entry
        daemon.wait_running("t-new")
        assert daemon.instance("t-new")["created_by"] == boss_id
        new_token = fleet_agents.token("t-new")

        assert boss.post("/instances/t-new/stop").status_code == 200
        daemon.wait_status("t-new", "stopped")
        assert boss.post("/instances/t-new/start").status_code == 200
        daemon.wait_running("t-new")
        assert boss.delete("/instances/t-new").status_code == 204
        assert "t-new" not in fleet_file.read_text()
        wait_for(lambda: "t-new" not in daemon.instances(), what="t-new gone")
        assert fleet_agents.with_token(new_token).get("/self").status_code == 401

        captain = boss.post("/instances", json={"name": "cap-new", "role": "captain", "project": "hermes"})
        assert captain.status_code == 201 and "parent: boss" in fleet_file.read_text()
        before = _snapshot(daemon.home)
        refused: list[dict[str, Any]] = [
            {"name": "boss-2", "role": "commander"},
            {"name": "lone", "role": ""},
        ]
        for body in refused:
            assert boss.post("/instances", json=body).status_code == 403
        orphan = boss.post("/instances", json={"name": "t-lost", "role": "talon", "project": "nowhere"})
        assert orphan.status_code == 409 and "no captain" in orphan.json()["error"]
        invalid: list[dict[str, Any]] = [
            {"name": "Bad Name", "role": "talon", "project": "apollo"},
            {"name": "t-x", "role": "talon", "project": "apollo", "framework": "nope"},
            {"name": "t-x", "role": "talon", "project": "apollo", "command": ["sh"]},
            {"name": "t-x", "role": "talon", "project": "apollo", "parent": "cap-z"},
        ]
        for body in invalid:
            answer = boss.post("/instances", json=body)
            assert 400 <= answer.status_code < 500 and answer.status_code != 403, (body, answer.text)
        assert boss.post("/instances", json={"name": "t-a", "project": "apollo"}).status_code == 409
        assert _snapshot(daemon.home) == before

    @pytest.mark.parametrize("fleet_agents", [_fleet(max_children=2)], indirect=True)
    def test_max_children_bounds_each_creator(self, fleet_agents: Agents) -> None:
        """Past daemon.agent_api.max_children live creations the answer is 429 and nothing changes; removing
        one makes room again."""
        boss = fleet_agents.as_("boss")
        for name in ("t-1", "t-2"):
            assert boss.post("/instances", json={"name": name, "project": "apollo"}).status_code == 201
        before = _snapshot(fleet_agents.daemon.home)
        over = boss.post("/instances", json={"name": "t-3", "project": "apollo"})
        assert over.status_code == 429 and "max_children = 2" in over.json()["error"]
        assert _snapshot(fleet_agents.daemon.home) == before
        captain = fleet_agents.as_("cap-a")
        assert captain.post("/instances", json={"name": "t-c"}).status_code == 201  # its own count
        assert boss.delete("/instances/t-1").status_code == 204
        assert boss.post("/instances", json={"name": "t-3", "project": "apollo"}).status_code == 201


class TestCaptain:
    def test_a_captain_manages_only_its_own_projects_talons(self, fleet_agents: Agents) -> None:
        """A captain lists and creates in its project (parent itself), manages its project's talons, and is
        refused another project's talon, a captain, and a talon for another project, changing nothing."""
        daemon = fleet_agents.daemon
        captain = fleet_agents.as_("cap-a")
        assert {v["name"] for v in captain.get("/instances").json()} == {"cap-a", "t-a"}
        made = captain.post("/instances", json={"name": "t-a2", "start": False})
        assert made.status_code == 201, made.text
        entry = (daemon.home / "fleet.yaml").read_text().split("- name: t-a2")[1]
        assert "project: apollo" in entry and "parent: cap-a" in entry
        assert captain.post("/instances/t-a2/start").status_code == 200
        daemon.wait_running("t-a2")

        before = _snapshot(daemon.home)
        refused = [
            captain.get("/instances/t-z"),
            captain.post("/instances/t-z/stop"),
            captain.post("/instances/cap-z/stop"),
            captain.delete("/instances/t-z"),
            captain.post("/instances", json={"name": "t-z2", "project": "zeus"}),
            captain.post("/instances", json={"name": "cap-b", "role": "captain", "project": "apollo"}),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert _snapshot(daemon.home) == before
        assert daemon.instance("t-z")["status"] == "running"
        assert captain.delete("/instances/t-a").status_code == 204


class TestListener:
    def test_port_and_url_survive_a_restart_and_reach_the_agents(self, tmp_path: Path) -> None:
        """The port is remembered and claimed; a restarted eyried listens on it again, and agents carry
        EYRIE_URL and EYRIE_AUTH_TOKEN_FILE; commander identity files name the URL and no eyriectl command;
        after a re-exec the agent is adopted and its URL still answers."""
        fleet = _fleet()
        with running_daemon(tmp_path, fleet) as daemon:
            daemon.wait_running("boss")
            url = Agents(daemon).url
        with running_daemon(tmp_path, fleet) as daemon:
            pids = daemon.wait_running("boss")
            assert Agents(daemon).url == url
            environ = _environ(pids["boss"])
            assert environ["EYRIE_URL"] == url
            token_file = Path(environ["EYRIE_AUTH_TOKEN_FILE"])
            bearer = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            answer = httpx.get(f"{url}/self", headers=bearer, timeout=10)
            assert answer.json()["name"] == "boss"
            tools = (Path(daemon.instance("boss")["workspace_path"]) / "TOOLS.md").read_text()
            assert url in tools and "$EYRIE_URL" in tools and "eyriectl add" not in tools

            assert f"agent API:   {url}" in ok(eyriectl(tmp_path, "status")).stdout
            readies = daemon.log().count('"event": "daemon_ready"')
            daemon.signal(signal.SIGUSR2)  # a re-exec: the agent is adopted, its EYRIE_URL still answers
            wait_for(lambda: daemon.log().count('"event": "daemon_ready"') > readies, 30, "the new image")
            assert daemon.wait_running("boss") == pids  # the same process: adopted, not restarted
            assert httpx.get(f"{url}/self", headers=bearer, timeout=10).json()["name"] == "boss"

    def test_the_fleet_file_turns_it_off(self, tmp_path: Path) -> None:
        """daemon.agent_api.enabled false: no listener, no EYRIE_URL, and `status` says it is off."""
        fleet = _fleet().replace("agent_api: {max_children: 8}", "agent_api: {enabled: false}")
        with running_daemon(tmp_path, fleet) as daemon:
            pids = daemon.wait_running("boss")
            assert "EYRIE_URL" not in _environ(pids["boss"])
            assert not (tmp_path / "run" / "agent-api").exists()
            assert "agent_api_off" in daemon.log()
            assert "agent API:   off" in eyriectl(tmp_path, "status").stdout  # 4 while t-z still starts

    def test_a_taken_port_is_replaced_and_said_so(self, tmp_path: Path) -> None:
        """When the remembered port is held by a stranger at start, eyried takes another, logs the move and
        remembers the new one; a pinned port is used as given."""
        fleet = _fleet()
        with running_daemon(tmp_path, fleet) as daemon:
            daemon.wait_running("boss")
            first = Agents(daemon).url
        port = int(first.rsplit(":", 1)[1].split("/")[0])
        with socket.create_server(("127.0.0.1", port)), running_daemon(tmp_path, fleet) as daemon:
            daemon.wait_running("boss")
            moved = Agents(daemon).url
            assert moved != first and "agent_api_port_moved" in daemon.log()
            # the adopted agent is restarted: what it was started with (EYRIE_URL) changed
            wait_for(lambda: _environ(daemon.wait_running("boss")["boss"]).get("EYRIE_URL") == moved)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            pinned = probe.getsockname()[1]
        fleet = _fleet().replace("{max_children: 8}", f"{{port: {pinned}}}")
        with running_daemon(tmp_path, fleet) as daemon:
            daemon.wait_running("boss")
            assert Agents(daemon).url == f"http://127.0.0.1:{pinned}/v1"

    def test_settings_are_validated(self) -> None:
        """daemon.agent_api refuses unknown keys, a port below 1024 and a negative max_children."""
        base = "version: 1\ndaemon:\n  agent_api: {}\ninstances: []\n"
        assert parse_fleet(base.replace("{}", "{max_children: 3}")).daemon.agent_api.max_children == 3
        for bad in ("{port: 80}", "{max_children: -1}", "{enable: true}", "{port: abc}"):
            with pytest.raises(FleetFileError, match="agent_api"):
                parse_fleet(base.replace("{}", bad))


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


class TestDemo:
    def test_the_demo_commander_creates_its_talon(self, tmp_path: Path) -> None:
        """config/fleet.demo.yaml: once up, commander-ada creates talon-hopper through the agent API, once."""
        fleet = (REPO / "config" / "fleet.demo.yaml").read_text()
        with running_daemon(tmp_path, fleet) as daemon:
            daemon.wait_running("commander-ada", "talon-hopper", timeout=60)
            commander = daemon.instance("commander-ada")
            entry = daemon.fleet_file.read_text().split("- name: talon-hopper")[1]
            assert f"created_by: {commander['id']}" in entry and "parent: captain-grace" in entry
            assert daemon.instance("talon-hopper")["created_by"] == commander["id"]


class TestTemplates:
    def test_identity_files_render_the_url_and_send_agents_to_the_api(self, home: Home) -> None:
        """{eyrie_url} is rendered into commander and captain TOOLS.md; without a URL they still point at
        $EYRIE_URL; none tells an agent to run eyriectl."""
        from supervisor.models import CreateRequest, HierarchyRole

        for url in ("http://127.0.0.1:43999/v1", ""):
            provisioner = Provisioner(Store(home), home, eyrie_url=url)
            for role, name in ((HierarchyRole.COMMANDER, "boss"), (HierarchyRole.CAPTAIN, "cap")):
                inst = provisioner.provision(
                    CreateRequest(name=f"{name}{len(url)}", framework="embedded", hierarchy_role=role)
                )
                tools = (Path(inst.workspace_path) / "TOOLS.md").read_text()
                assert "$EYRIE_URL" in tools and "$EYRIE_AUTH_TOKEN_FILE" in tools
                assert (url in tools) if url else "when this file was written" not in tools
                assert "eyriectl add" not in tools and "eyriectl start" not in tools
