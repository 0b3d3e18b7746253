"""The shipped identity templates tell agents only what they can really do.

Every persona's templates are rendered for every role, as provisioning renders them (with ``PROJECT.md``).
Then:

* every ``curl`` line is sent, as an agent of that role, to the real agent API app (its Starlette routes,
  its body schemas and its permission table) and must succeed;
* every ``$VARIABLE`` those lines use is one eyried puts in the agent's environment;
* ``eyriectl`` appears only where the agent is told never to run it. Agents are confined and the operator
  socket refuses them, so no ``eyriectl`` command is one an agent can run: a command line in a template
  must parse with the real CLI parser (so a typo is found as such), and is then refused all the same.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import pytest

from supervisor.agentapi.app import create_agent_app
from supervisor.agentapi.permissions import Member
from supervisor.cli.main import cli
from supervisor.control.schema import AddRequest, Event, InstanceView
from supervisor.daemon.runtime import build_runtime
from supervisor.fleet import parse_fleet
from supervisor.models import CreateRequest, HierarchyRole, TemplateContext
from supervisor.paths import Home
from supervisor.personas import Persona, PersonaCatalog, render_template
from supervisor.project_file import ProjectContext, render_project_file
from supervisor.provision import Provisioner, identity_templates
from supervisor.store import Store

pytestmark = pytest.mark.anyio

R = HierarchyRole
URL = "http://127.0.0.1:43999/v1"
CALLERS = {
    R.COMMANDER: Member("chief", "id-chief", R.COMMANDER),
    R.CAPTAIN: Member("apollo-lead", "id-lead", R.CAPTAIN, "apollo"),
    R.TALON: Member("apollo-hand", "id-hand", R.TALON, "apollo"),
    R.STANDALONE: Member("loner", "id-loner", R.STANDALONE),
}
PARENTS = {R.CAPTAIN: "chief", R.TALON: "apollo-lead"}
MANAGED = "apollo-hand"
"""The instance a template's ``NAME`` in a path stands for: one the commander and the captain manage."""
NEW = "fresh-talon"
"""What ``NAME`` in a request body (a new instance's name) stands for."""


@dataclass
class FleetTarget:
    """The agent API's view of a small fleet, in memory: every call answers as eyried would."""

    members_now: list[Member] = field(default_factory=lambda: list(CALLERS.values()))
    max_children: int = 8

    def members(self) -> list[Member]:
        return list(self.members_now)

    def token(self, instance_id: str) -> str:
        return f"token-{instance_id}"

    async def view(self, name: str) -> InstanceView:
        return InstanceView(name=name)

    async def views(self) -> list[InstanceView]:
        return [InstanceView(name=m.name) for m in self.members_now]

    async def create(self, request: AddRequest) -> InstanceView:
        return InstanceView(name=request.name)

    async def remove(self, name: str) -> None:
        return None

    async def start(self, name: str) -> InstanceView:
        return InstanceView(name=name)

    async def stop(self, name: str) -> InstanceView:
        return InstanceView(name=name)

    async def write_note(self, instance_id: str, note: str) -> None:
        return None

    def publish(self, event: Event) -> None:
        return None


def rendered(persona: Persona | None, role: HierarchyRole) -> dict[str, str]:
    """The files provisioning writes into the workspace of an instance of ``role`` in project apollo."""
    parent = PARENTS.get(role, "")
    project = ProjectContext(
        project_id="apollo",
        project_name="Apollo",
        goal="Land on the moon",
        description="Guidance and telemetry.",
        parent_name=parent,
    )
    ctx = TemplateContext(
        name=CALLERS[role].name,
        display_name=CALLERS[role].name.title(),
        role=persona.role if persona else "",
        description=persona.description if persona else "",
        eyrie_url=URL,
        framework="embedded",
        **project.template_fields(),
    )
    files = {
        name: render_template(name, text, ctx)
        for name, text in identity_templates(role, persona=persona).items()
    }
    project_text = render_project_file(ctx, persona.templates.get("PROJECT.md") if persona else None)
    assert project_text is not None
    files["PROJECT.md"] = project_text
    return files


def _cases() -> list[tuple[str, HierarchyRole]]:
    personas = [p.id for p in PersonaCatalog.load(Home(Path("/nonexistent-home"))).list()]
    return [(persona, role) for persona in ["", *personas] for role in CALLERS]


CASES = _cases()


def _persona(persona_id: str) -> Persona | None:
    return PersonaCatalog.load(Home(Path("/nonexistent-home"))).get(persona_id) if persona_id else None


def _code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, continuation lines joined."""
    lines, inside, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: str | None


def curl_calls(text: str) -> list[Call]:
    """Every ``curl`` command of the code blocks, as the request it sends."""
    calls = []
    for line in _code_lines(text):
        if not line.lstrip().startswith("curl"):
            continue
        args = shlex.split(line, comments=True)
        method, body, url = "", None, ""
        it = iter(args[1:])
        for arg in it:
            if arg == "-X":
                method = next(it)
            elif arg in ("-d", "--data"):
                body = next(it)
            elif arg == "-H":
                assert next(it) == "$auth", f"a header other than the agent's token: {line}"
            elif arg.startswith("$EYRIE_URL"):
                url = arg
            elif arg not in ("-s", "-sS", "-f", "-fsS"):
                pytest.fail(f"curl option the test does not know: {arg!r} in {line}")
        assert url, f"a curl line that does not call $EYRIE_URL: {line}"
        calls.append(
            Call(method or ("POST" if body is not None else "GET"), url.removeprefix("$EYRIE_URL"), body)
        )
    return calls


def eyriectl_mentions(text: str) -> tuple[list[list[str]], list[str]]:
    """Command lines that run ``eyriectl`` (code lines, inline code), and the sentences only naming it."""
    commands = [shlex.split(line, comments=True) for line in _code_lines(text) if "eyriectl" in line]
    for span in re.findall(r"`([^`\n]*)`", text):
        words = span.split()
        if words and words[0] == "eyriectl" and len(words) > 1:
            commands.append(shlex.split(span))
    prose = [
        sentence
        for sentence in re.split(r"(?<=[.:])\s+", text.replace("\n", " "))
        if re.search(r"`eyriectl`", sentence)
    ]
    return commands, prose


def agent_environment(tmp_path: Path) -> set[str]:
    """The names of the variables eyried puts in an agent's environment."""
    home = Home(tmp_path)
    store = Store(home)
    inst = Provisioner(store, home).provision(CreateRequest(name="probe", framework="embedded"))
    resolved = parse_fleet("version: 1\ninstances: [{name: probe}]\n").resolve("probe")
    return set(build_runtime(resolved, inst, store, config_hash="", eyrie_url=URL).env)


def _parses(args: list[str]) -> str:
    """The command path ``args`` names (``eyriectl ps``), parsed by the real CLI; fails the test if not."""
    assert args[0] == "eyriectl"
    tokens = args[1:]
    if tokens[:1] == ["--home"]:
        tokens = tokens[2:]
    command: click.Command = cli
    ctx = click.Context(cli, info_name="eyriectl")
    path = ["eyriectl"]
    while isinstance(command, click.Group):
        assert tokens, f"{' '.join(path)} needs a command: {' '.join(args)}"
        name, *tokens = tokens
        found = command.get_command(ctx, name)
        assert found is not None, f"{' '.join(path)} has no command {name!r}: {' '.join(args)}"
        path.append(name)
        command, ctx = found, click.Context(found, info_name=name, parent=ctx)
    command.make_context(path[-1], tokens, parent=ctx.parent)
    return " ".join(path)


class TestCurlLines:
    @pytest.mark.parametrize(("persona_id", "role"), CASES)
    async def test_every_call_succeeds_as_that_agent(self, persona_id: str, role: HierarchyRole) -> None:
        """Each curl line of the rendered files is a real route, method and body, allowed for the role."""
        app = create_agent_app(FleetTarget())
        caller = CALLERS[role]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent-api") as client:
            for file, text in rendered(_persona(persona_id), role).items():
                for call in curl_calls(text):
                    path = "/v1" + call.path.replace("NAME", MANAGED)
                    body = call.body.replace("NAME", NEW) if call.body is not None else None
                    answer = await client.request(
                        call.method,
                        path,
                        content=body,
                        headers={"Authorization": f"Bearer token-{caller.instance_id}"},
                    )
                    assert answer.is_success, f"{file} ({role.value or 'standalone'}): {call} → {answer.text}"

    def test_the_check_finds_every_call(self) -> None:
        """The commander's TOOLS.md has calls of every method; the parser sees them all."""
        methods = {c.method for c in curl_calls(rendered(None, R.COMMANDER)["TOOLS.md"])}
        assert methods == {"GET", "POST", "DELETE"}

    def test_variables_are_in_the_agents_environment(self, tmp_path: Path) -> None:
        """Every ``$VARIABLE`` the templates use, other than their own ``auth``, is set by eyried."""
        given = agent_environment(tmp_path)
        used = {
            var
            for persona_id, role in CASES
            for text in rendered(_persona(persona_id), role).values()
            for line in _code_lines(text)
            for var in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", line)
        }
        assert used and used <= given, used - given

    async def test_a_wrong_route_is_caught(self) -> None:
        """A call the API does not have fails the check (so a passing check means something)."""
        app = create_agent_app(FleetTarget())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent-api") as client:
            for method, path in (("POST", "/v1/instances/apollo-hand/pause"), ("PUT", "/v1/self")):
                answer = await client.request(
                    method, path, headers={"Authorization": "Bearer token-id-chief"}
                )
                assert not answer.is_success


class TestEyriectl:
    @pytest.mark.parametrize(("persona_id", "role"), CASES)
    def test_never_an_operator_command(self, persona_id: str, role: HierarchyRole) -> None:
        """No rendered file tells an agent to run an eyriectl command; it is named only to forbid it."""
        for file, text in rendered(_persona(persona_id), role).items():
            commands, prose = eyriectl_mentions(text)
            for args in commands:
                pytest.fail(f"{file}: tells the agent to run `{_parses(args)}`, an operator command")
            for sentence in prose:
                assert re.search(r"\b[Nn]ever run\b", sentence), f"{file}: {sentence!r}"

    def test_command_lines_are_parsed_by_the_real_cli(self) -> None:
        """The check reads a command line as eyriectl would: a real one parses, a typo is an error."""
        commands, _ = eyriectl_mentions("Run `eyriectl ps --project apollo` or `eyriectl trash list`.\n")
        assert [_parses(args) for args in commands] == ["eyriectl ps", "eyriectl trash list"]
        for bad in (["eyriectl", "ps", "--project"], ["eyriectl", "launch"]):
            with pytest.raises((click.UsageError, AssertionError)):
                _parses(bad)

    def test_only_the_prohibition_names_eyriectl(self) -> None:
        """The shipped role templates name eyriectl, and only to say never to run it."""
        _, prose = eyriectl_mentions(rendered(None, R.CAPTAIN)["TOOLS.md"])
        assert prose and all("Never run" in sentence for sentence in prose)
