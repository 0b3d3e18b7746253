"""What a start or adoption does per instance before its first spawn, done more cheaply: the results must be
the ones the slower ways gave (paths joined as text, a project file looked at without a template, a config
hash read through ``~``, a template without braces, the store's scan handed to the engine)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from supervisor.daemon._last_applied import APPLIED_FILE, load_applied, save_applied
from supervisor.daemon.reconciler import Reconciler
from supervisor.daemon.runtime import build_runtime
from supervisor.engine.runtime import InstanceRuntime
from supervisor.fleet import load_fleet
from supervisor.frameworks.expand import PlaceholderValues, expand
from supervisor.frameworks.spec import Probe
from supervisor.models import CreateRequest, Instance, InstanceStatus, TemplateContext
from supervisor.paths import Home
from supervisor.project_file import PROJECT_FILE, ProjectContext, render_project_file
from supervisor.provision import Provisioner
from supervisor.store import TOKEN_FILE, Store
from supervisor.testing import running_engine, wait_instance
from tests._daemon import embedded, fleet_yaml

FLEET = """\
version: 1
instances:
  - name: alpha
  - name: beta
    project: apollo
"""

VALUES = PlaceholderValues(port=1, config="c", instance_dir="/d", workspace="/w", name="n", id="i")


def _made(home: Home) -> tuple[Store, Provisioner, dict[str, Instance]]:
    home.fleet_file.write_text(FLEET)
    store = Store(home)
    provisioner = Provisioner(store, home)
    made = {n: provisioner.provision(CreateRequest(name=n, framework="embedded")) for n in ("alpha", "beta")}
    return store, provisioner, made


def test_runtime_paths_are_the_ones_pathlib_joins(home: Home) -> None:
    """The environment's paths, the log file and the working directory, joined as text, are exactly what
    joining them with pathlib gives."""
    store, _, _ = _made(home)
    fleet = load_fleet(home.fleet_file)
    inst = store.get_by_name("alpha")
    rt = build_runtime(fleet.resolve("alpha"), inst, store, config_hash="")
    directory = store.dir(inst.id)
    assert rt.env["EYRIE_HOME"] == str(home.root)
    assert rt.env["TMPDIR"] == str(directory / "tmp")
    assert rt.env["EYRIE_AUTH_TOKEN_FILE"] == str(directory / "secrets" / TOKEN_FILE)
    assert rt.log_path == directory / "logs" / f"{inst.framework}.log"
    assert rt.cwd == Path(inst.workspace_path)
    assert isinstance(rt.cwd, Path) and isinstance(rt.log_path, Path)


def test_runtime_takes_paths_as_text_too() -> None:
    """A composer may still give the working directory and the log as text: the runtime holds Paths."""
    rt = InstanceRuntime(
        instance_id="abc",
        name="n",
        framework="embedded",
        port=1,
        argv=("true",),
        env={},
        cwd="/tmp/w",  # type: ignore[arg-type]
        log_path="/tmp/l.log",  # type: ignore[arg-type]
        ready=Probe(kind="process"),
    )
    assert rt.cwd == Path("/tmp/w") and rt.log_path == Path("/tmp/l.log")


@pytest.mark.parametrize(
    "context",
    [
        ProjectContext(),
        ProjectContext(project_id="apollo"),
        ProjectContext(project_name="Apollo"),
        ProjectContext(goal="land", description="on the moon"),
        ProjectContext(parent_name="lead"),
    ],
)
def test_has_file_says_what_rendering_says(context: ProjectContext) -> None:
    """Whether a project context makes a PROJECT.md is decided without a template as with one."""
    ctx = TemplateContext(name="n", display_name="N", **context.template_fields())
    assert context.has_file == (render_project_file(ctx) is not None)


def test_project_file_written_removed_and_left_alone(home: Home) -> None:
    """An instance with a project gets its PROJECT.md (written once, then left as it is); one without a
    project or parent has a stale one removed, and a missing one stays missing."""
    store, provisioner, _ = _made(home)
    fleet = load_fleet(home.fleet_file)
    alpha, beta = store.get_by_name("alpha"), store.get_by_name("beta")
    beta_file = Path(beta.workspace_path) / PROJECT_FILE
    digest = provisioner.write_project_file(beta, fleet.resolve("beta").project_context(), None)
    assert beta_file.is_file() and digest == hashlib.sha256(beta_file.read_bytes()).hexdigest()
    before = beta_file.stat().st_ino
    assert provisioner.write_project_file(beta, fleet.resolve("beta").project_context(), None) == digest
    assert beta_file.stat().st_ino == before  # unchanged: not replaced
    alpha_file = Path(alpha.workspace_path) / PROJECT_FILE
    alpha_file.write_text("stale\n")
    assert provisioner.write_project_file(alpha, fleet.resolve("alpha").project_context(), None) == ""
    assert not alpha_file.exists()
    assert provisioner.write_project_file(alpha, fleet.resolve("alpha").project_context(), None) == ""
    assert not os.path.lexists(alpha_file)


def test_config_hash_follows_a_recorded_tilde(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config path recorded with a leading ``~`` is hashed where it leads; a symlink there is not ours."""
    store, provisioner, _ = _made(home)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "agent.yaml").write_text("model: x\n")
    inst = store.get_by_name("alpha")
    inst.config_path = "~/agent.yaml"
    assert provisioner.config_hash(inst) == hashlib.sha256(b"model: x\n").hexdigest()
    (tmp_path / "link.yaml").symlink_to(tmp_path / "agent.yaml")
    inst.config_path = "~/link.yaml"
    assert provisioner.config_hash(inst) == ""


@pytest.mark.parametrize("template", ["plain", "", "/a/b c"])
def test_template_without_braces_is_itself(template: str) -> None:
    assert expand(template, VALUES) == template


@pytest.mark.parametrize("template", ["a}b", "{b", "{unknown}"])
def test_stray_braces_are_still_refused(template: str) -> None:
    with pytest.raises(ValueError):
        expand(template, VALUES)


@pytest.mark.anyio
async def test_engine_takes_the_record_as_written_after_the_scan(home: Home) -> None:
    """An instance in ``error`` that no actor recorded is made runnable (written) after the store's scan and
    runs, as does one the engine takes straight from the scan."""
    store = Store(home)
    provisioner = Provisioner(store, home)
    held = provisioner.provision(CreateRequest(name="alpha", framework="embedded"))
    provisioner.provision(CreateRequest(name="beta", framework="embedded"))

    def failed(i: Instance) -> None:
        i.status, i.status_detail, i.last_error, i.phase = InstanceStatus.ERROR, "cannot run", "bad", None

    store.update(held.id, failed)
    home.fleet_file.write_text(fleet_yaml(embedded("alpha"), embedded("beta")))
    home.ensure_run_dir()
    async with running_engine(store) as engine:
        reconciler = Reconciler(home.fleet_file, store, provisioner, engine)
        assert (await reconciler.start()).ok
        for name in ("alpha", "beta"):
            applied = reconciler.applied(name)
            assert applied is not None, reconciler.errors()
            running = await wait_instance(
                engine, applied.instance_id, lambda i: i.status is InstanceStatus.RUNNING, timeout=20
            )
            assert running.pid


def test_the_fleet_last_applied_is_written_only_when_it_differs(home: Home) -> None:
    """Saving the fleet kept already leaves the file alone; another fleet, or the same one in a file that
    is no longer owner-only or is a symlink, is written (owner-only, as a regular file)."""
    home.fleet_file.write_text(FLEET)
    home.ensure_run_dir()
    fleet = load_fleet(home.fleet_file)
    kept = home.run_dir / APPLIED_FILE
    save_applied(home.run_dir, fleet)
    first = kept.stat().st_ino
    save_applied(home.run_dir, fleet)
    assert kept.stat().st_ino == first
    kept.chmod(0o644)
    save_applied(home.run_dir, fleet)
    assert kept.stat().st_ino != first and stat.S_IMODE(kept.stat().st_mode) == 0o600
    home.fleet_file.write_text(FLEET.replace("  - name: beta\n", "  - name: gamma\n"))
    save_applied(home.run_dir, load_fleet(home.fleet_file))
    assert load_applied(home.run_dir) == load_fleet(home.fleet_file)
    target = home.root / "elsewhere.json"
    target.write_bytes(kept.read_bytes())
    target.chmod(0o600)
    kept.unlink()
    kept.symlink_to(target)
    save_applied(home.run_dir, load_fleet(home.fleet_file))
    assert not kept.is_symlink() and load_applied(home.run_dir) == load_fleet(home.fleet_file)
