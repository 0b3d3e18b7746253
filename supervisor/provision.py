"""Provisioning: turn a `CreateRequest` into an instance directory on disk, all of it or none of it.

An instance is built in ``instances/.staging/<id>/`` (the store never lists dot-directories) and renamed into
place only once every file, the token and ``instance.json`` are written, so other processes see either no
instance or a complete one. The store-wide lock is held from the name check to the rename, so a name or a port
cannot be taken twice, and anything found in ``.staging`` while we hold it is debris of a crash and removed.
Any failure removes what was written and leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from supervisor._fs import atomic_write, locked
from supervisor._resources import data_dir
from supervisor._safe_read import read_bytes
from supervisor._staging import DIR_MODE, SECRET_MODE, InstancePlan, Staging
from supervisor.errors import (
    EyrieError,
    NameExists,
    ProvisionError,
    RequiredField,
    UnsupportedFramework,
)
from supervisor.frameworks.registry import builtin_frameworks
from supervisor.frameworks.render import (
    DEFAULT_MODEL,
    DEFAULT_PROVIDER,
    RenderContext,
    render_config,
)
from supervisor.frameworks.spec import FrameworkSpec
from supervisor.models import (
    SCHEMA_VERSION,
    CreateRequest,
    HierarchyRole,
    Instance,
    InstanceStatus,
    TemplateContext,
    check_name,
    display_name_for,
    new_instance_id,
    utcnow,
)
from supervisor.paths import STATE_DIR, TMP_DIR, Home
from supervisor.port_claims import ClaimRegistry, PortOwner
from supervisor.ports import PortRange, first_free_port, port_reservation
from supervisor.project_file import (
    PROJECT_FILE,
    ProjectContext,
    project_file_digest,
    render_project_file,
    write_project_file,
)
from supervisor.store import TOKEN_FILE, NameIndex, Store

if TYPE_CHECKING:
    from supervisor.personas import Persona, PersonaCatalog
    from supervisor.trash import TrashEntry

__all__ = ["ProvisionBatch", "Provisioner", "identity_templates", "sha256_text"]

_MAX_CONFIG_BYTES = 4 * 1024 * 1024

log = structlog.get_logger("supervisor.provision")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def _builtin_templates() -> dict[str, dict[str, str]]:
    """``config/templates``: the shared files at its top, per-role files in ``commander/``, ``captain/``, …"""
    from supervisor.personas import check_template  # provisioning's (see `_identity_files`)

    root = data_dir("config") / "templates"
    found: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.md")):
        group = "" if path.parent == root else path.parent.name
        text = path.read_text(encoding="utf-8")
        try:
            check_template(path.name, text)
        except ValueError as exc:
            raise ProvisionError(f"{path}: {exc}") from None
        found.setdefault(group, {})[path.name] = text
    return found


def identity_templates(role: HierarchyRole, *, persona: Persona | None = None) -> dict[str, str]:
    """File name → template of the files written once, then the agent's: IDENTITY, SOUL and MEMORY for all,
    the role's own files (TOOLS.md for commander and captain), then the persona's templates over the top.
    ``PROJECT.md`` is not one of them: eyried keeps it current (`supervisor.project_file`)."""
    builtin = _builtin_templates()
    chosen = {k: v for k, v in builtin.get("", {}).items() if k != PROJECT_FILE}
    chosen.update(builtin.get(role.value, {}) if role is not HierarchyRole.STANDALONE else {})
    if persona is not None:
        chosen.update({k: v for k, v in persona.templates.items() if k != PROJECT_FILE})
    return chosen


def _config_path(instance: Instance) -> Path | None:
    """The stored config path; eyrie may have written it with a leading ``~``."""
    return Path(instance.config_path).expanduser() if instance.config_path else None


class Provisioner:
    """Creates, re-renders and removes instances under one home."""

    def __init__(
        self,
        store: Store,
        home: Home,
        *,
        frameworks: Mapping[str, FrameworkSpec] | None = None,
        personas: PersonaCatalog | None = None,
        eyrie_url: str = "",
        claims: ClaimRegistry | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.frameworks: Mapping[str, FrameworkSpec] = (
            frameworks if frameworks is not None else builtin_frameworks()
        )
        self._personas = personas
        self.eyrie_url = eyrie_url
        self.claims = claims if claims is not None else ClaimRegistry()
        self.ports = PortRange()
        """The range new instances get ports from (the fleet file's ``daemon.ports``)."""

    @property
    def personas(self) -> PersonaCatalog:
        """The catalog given, else the home's, loaded on first use."""
        if self._personas is None:
            from supervisor.personas import PersonaCatalog

            self._personas = PersonaCatalog.load(self.home)
        return self._personas

    # --- provisioning

    def provision(
        self, request: CreateRequest, persona: Persona | None = None, *, spec: FrameworkSpec | None = None
    ) -> Instance:
        """Create the instance ``request`` describes; ``persona`` defaults to ``request.persona_id``'s,
        ``spec`` (a fleet file may override a framework's) to the framework's in ``frameworks``."""
        try:
            with self.batch() as batch:
                inst = batch.add(request, persona, spec=spec)
                failed = batch.commit()
        except OSError as exc:  # the store lock or the store directory itself cannot be used
            where = f" ({exc.filename})" if exc.filename else ""
            raise ProvisionError(
                f"provisioning {request.name!r} failed: {exc.strerror or exc}{where}"
            ) from exc
        if inst.id in failed:
            raise failed[inst.id]
        return inst

    @contextlib.contextmanager
    def batch(self) -> Iterator[ProvisionBatch]:
        """Provision many instances under one hold of the store-wide lock (see `ProvisionBatch`); what was
        added and not committed when the block ends is removed, its port claims given back."""
        with locked(self.store.lock()):
            staging = Staging(self.store)
            staging.clear()
            batch = ProvisionBatch(self, self.store.index(), staging)
            try:
                yield batch
            finally:
                batch.abandon()

    def port_owner(self, instance_id: str) -> PortOwner:
        """Whose a port claim of this instance is."""
        return PortOwner.of(self.home.root, self.store.dir(instance_id), instance_id)

    def _reservation(self, instance_id: str) -> contextlib.AbstractContextManager[int]:
        """A port in `ports` for ``instance_id``, reserved in the store and claimed machine-wide."""
        owner = self.port_owner(instance_id)
        return port_reservation(
            self.store,
            span=self.ports,
            claim=lambda port: self.claims.claim(port, owner) is None,
            release=lambda port: self.claims.release(port, owner),
        )

    def _validate(self, request: CreateRequest, spec: FrameworkSpec | None) -> FrameworkSpec:
        if not request.name:
            raise RequiredField("instance name is required")
        if not request.framework:
            raise RequiredField("framework is required")
        check_name(request.name)
        if spec is None:
            spec = self.frameworks.get(request.framework)
        if spec is None:
            known = ", ".join(sorted(self.frameworks))
            raise UnsupportedFramework(
                f"unsupported framework {request.framework!r} (known: {known}; a fleet file may define"
                " others under 'frameworks:')"
            )
        return spec

    def _plan(
        self,
        request: CreateRequest,
        persona: Persona | None,
        spec: FrameworkSpec,
        port: int,
        instance_id: str,
    ) -> InstancePlan:
        final = self.store.dir(instance_id)
        workspace = final / "workspace"
        config_path = final / spec.config_file
        token = secrets.token_urlsafe(32)
        model = request.model or (persona.preferred_model if persona else "") or DEFAULT_MODEL
        now = utcnow()
        inst = Instance(
            id=instance_id,
            name=request.name,
            display_name=request.display_name or display_name_for(request.name),
            framework=request.framework,
            persona_id=persona.id if persona else request.persona_id,
            hierarchy_role=request.hierarchy_role,
            project_id=request.project_id,
            parent_id=request.parent_id,
            port=port,
            config_path=str(config_path),
            workspace_path=str(workspace),
            status=InstanceStatus.CREATED,
            status_updated_at=now,
            created_at=now,
            created_by=request.created_by or "user",
            schema_version=SCHEMA_VERSION,
            model=model,
        )
        inst.auth_token = token
        config_text = render_config(
            inst.framework,
            self._render_context(inst, model, persona, token),
            config_format=spec.config_format,
        )
        inst.config_hash = sha256_text(config_text)
        identity = self._identity_files(request, persona, inst)
        return InstancePlan(inst, identity, spec.config_file, config_text)

    def _identity_files(
        self, request: CreateRequest, persona: Persona | None, inst: Instance
    ) -> dict[str, str]:
        from supervisor.personas import render_template  # a provisioned start loads no persona

        project = ProjectContext(
            project_id=request.project_id,
            project_name=request.project_name,
            goal=request.project_goal,
            description=request.project_description,
            parent_name=request.parent_name,
        )
        ctx = self._template_context(inst, persona, project)
        templates = identity_templates(inst.hierarchy_role, persona=persona)
        rendered = {name: render_template(name, text, ctx) for name, text in templates.items()}
        if persona and persona.memory_seeds and "MEMORY.md" in rendered:
            seeds = "".join(f"- {seed}\n" for seed in persona.memory_seeds)
            rendered["MEMORY.md"] = rendered["MEMORY.md"].rstrip("\n") + "\n\n## Seed memories\n\n" + seeds
        if (project_text := self._project_text(ctx, persona)) is not None:
            rendered[PROJECT_FILE] = project_text
        return rendered

    def _template_context(
        self, inst: Instance, persona: Persona | None, project: ProjectContext
    ) -> TemplateContext:
        return TemplateContext(
            name=inst.name,
            display_name=inst.display_name,
            role=persona.role if persona else "",
            description=persona.description if persona else "",
            eyrie_url=self.eyrie_url,
            framework=inst.framework,
            **project.template_fields(),
        )

    @staticmethod
    def _project_text(ctx: TemplateContext, persona: Persona | None) -> str | None:
        return render_project_file(ctx, persona.templates.get(PROJECT_FILE) if persona else None)

    def write_project_file(self, instance: Instance, project: ProjectContext, persona: Persona | None) -> str:
        """Render the instance's ``PROJECT.md`` for ``project`` and write it if it differs (remove it when
        the instance has neither a project nor a parent); return the text's digest (``""``: no file)."""
        text = None
        if project.has_file:  # most instances have none: no template context to build for them
            text = self._project_text(self._template_context(instance, persona, project), persona)
        if write_project_file(f"{self.store.dir(instance.id)}/workspace", text):
            log.info("project_file_written", instance=instance.name, instance_id=instance.id)
        return project_file_digest(text)

    def _render_context(
        self, inst: Instance, model: str, persona: Persona | None, token: str
    ) -> RenderContext:
        instance_dir = self.store.dir(inst.id)
        return RenderContext(
            name=inst.name,
            port=inst.port,
            workspace=inst.workspace_path or str(instance_dir / "workspace"),
            instance_dir=str(instance_dir),
            config_path=inst.config_path,
            token=token,
            model=model,
            provider=DEFAULT_PROVIDER,
            temperature=persona.temperature if persona else None,
            max_tokens=persona.max_tokens if persona else 0,
        )

    # --- after provisioning

    def rerender(
        self,
        instance: Instance,
        *,
        model: str | None = None,
        persona: Persona | None = None,
        spec: FrameworkSpec | None = None,
    ) -> str:
        """Re-write the framework config in place (atomically) and return its sha256.

        ``model``: ``None`` keeps the instance's model; ``""`` means the persona's preferred model (or the
        default); anything else is used as given. ``persona`` is the persona the config is rendered for
        (``None``: none); ``spec`` the definition (a fleet file's), else the framework's in ``frameworks``.
        Updating ``instance.json`` (model, config_hash) is the caller's business.
        """
        spec = spec or self.frameworks.get(instance.framework)
        if spec is None:
            raise UnsupportedFramework(f"unsupported framework {instance.framework!r}")
        if model is None:
            model = instance.model
        model = model or (persona.preferred_model if persona else "") or DEFAULT_MODEL
        token = instance.auth_token or self.store.token(instance.id)
        if not token:  # an instance eyrie made has no token file: give it one
            token = secrets.token_urlsafe(32)
            secrets_dir = self.store.dir(instance.id) / "secrets"
            secrets_dir.mkdir(mode=DIR_MODE, exist_ok=True)
            atomic_write(secrets_dir / TOKEN_FILE, token + "\n", mode=SECRET_MODE)
        config_path = _config_path(instance) or self.store.dir(instance.id) / spec.config_file
        self.ensure_layout(instance.id)
        text = render_config(
            instance.framework,
            self._render_context(instance, model, persona, token),
            config_format=spec.config_format,
        )
        try:
            atomic_write(config_path, text, mode=SECRET_MODE)
        except OSError as exc:
            raise ProvisionError(f"cannot write {config_path}: {exc.strerror or exc}") from exc
        return sha256_text(text)

    def ensure_layout(self, instance_id: str) -> None:
        """Give an instance made before ``state/`` and ``tmp/`` existed those two directories (0700), so its
        agent's ``TMPDIR`` exists; moving a framework's files into ``state/`` is `eyriectl migrate`'s job."""
        instance_dir = self.store.dir(instance_id)
        for sub in (STATE_DIR, TMP_DIR):
            if _is_real_dir(f"{instance_dir}/{sub}"):  # one lstat: a fleet starting checks two per instance
                continue
            path = instance_dir / sub
            try:
                path.mkdir(mode=DIR_MODE)
            except FileExistsError:  # a symlink or a file planted there: refused, never followed
                raise ProvisionError(f"{path} is not a directory; move it away") from None
            except OSError as exc:
                raise ProvisionError(f"cannot create {path}: {exc.strerror or exc}") from exc
            path.chmod(DIR_MODE)

    def assign_port(self, instance: Instance) -> Instance:
        """Give an instance without a port (eyrie makes its embedded agents with ``port: 0``) a free one,
        saved in ``instance.json``; re-rendering its config is the caller's business."""

        def take(port: int) -> Callable[[Instance], None]:
            def assign(i: Instance) -> None:
                i.port = port

            return assign

        try:
            with port_reservation(self.store) as port:
                updated = self.store.update(instance.id, take(port))
        except OSError as exc:
            raise ProvisionError(f"cannot give {instance.name!r} a port: {exc.strerror or exc}") from exc
        log.info("instance_port_assigned", instance=updated.name, instance_id=updated.id, port=port)
        return updated

    def config_hash(self, instance: Instance) -> str:
        """sha256 of the framework config as it is on disk; ``""`` when there is no such regular file."""
        if not instance.config_path:
            return ""
        path = os.path.expanduser(instance.config_path)  # as `_config_path`, without parsing a Path
        try:
            text = read_bytes(path, limit=_MAX_CONFIG_BYTES, follow_symlinks=False)
        except OSError:  # missing, or planted as a FIFO, device, symlink or huge file: not our config
            return ""
        return hashlib.sha256(text).hexdigest()

    def deprovision(
        self,
        instance_id: str,
        *,
        purge: bool = False,
        name: str | None = None,
        declaration: dict[str, Any] | None = None,
    ) -> TrashEntry | None:
        """Remove an instance from the store, freeing its name and port. Its directory moves to the trash
        (the entry is returned, ``declaration`` kept with it for a restore), or with ``purge`` is deleted."""
        self._release_port(instance_id)
        if purge:
            self.store.delete(instance_id)
            log.info("instance_purged", instance=name, instance_id=instance_id)
            return None
        if name is None:
            try:
                name = self.store.get(instance_id).name
            except EyrieError:  # unreadable: it still goes to the trash, which says whether it exists
                name = "unreadable"
        from supervisor.trash import Trash  # a removal's only: not loaded by a start

        return Trash(self.home).move_in(instance_id, name=name, declaration=declaration)

    def _release_port(self, instance_id: str) -> None:
        """Give back the machine-wide claim on the instance's port (a foreign or missing claim stays)."""
        try:
            port = self.store.get(instance_id).port
        except EyrieError:
            return
        if port:
            self.claims.release(port, self.port_owner(instance_id))

    def move_port(self, instance_id: str, *, persona: Persona | None = None) -> Instance:
        """Give the instance another free port in `ports`: claim it, re-render the config for it, record it in
        ``instance.json`` (with the new config hash), and give back the old port's claim."""
        owner = self.port_owner(instance_id)
        with self._reservation(instance_id) as port:
            inst = self.store.get(instance_id)
            old = inst.port
            inst.port = port
            config_hash = self.rerender(inst, persona=persona)

            def moved(i: Instance) -> None:
                i.port = port
                i.config_hash = config_hash

            inst = self.store.update(instance_id, moved)
        if old and old != port:
            self.claims.release(old, owner)
        log.info("instance_port_moved", instance=inst.name, instance_id=instance_id, old_port=old, port=port)
        return inst


class ProvisionBatch:
    """Instances provisioned under one hold of the store-wide lock: the names and ports taken come from one
    scan of the store, kept current as instances are added (nobody else can add one meanwhile), so N
    instances cost one scan rather than N; each new port is still claimed machine-wide and checked unbound.
    Files are written as each is added and made durable together by `commit`, which moves them into place."""

    def __init__(self, provisioner: Provisioner, index: NameIndex, staging: Staging) -> None:
        self._provisioner = provisioner
        self._names = set(index.instances)
        self._contested = dict(index.contested)
        self._ports = set(index.ports)
        self._passed_over: set[int] = set()  # claimed by other homes or bound when this batch tried them
        self._staging = staging
        self._staged: dict[str, tuple[Instance, PortOwner]] = {}

    def add(
        self, request: CreateRequest, persona: Persona | None = None, *, spec: FrameworkSpec | None = None
    ) -> Instance:
        """Stage the instance ``request`` describes (see `Provisioner.provision`); it exists once `commit`
        says so. A refusal or failure raises and leaves nothing of it."""
        prov = self._provisioner
        spec = prov._validate(request, spec)
        if persona is None and request.persona_id:
            persona = prov.personas.get(request.persona_id)
        if request.name in self._contested:
            raise NameExists(self._contested[request.name])
        if request.name in self._names:
            raise NameExists(f"instance name {request.name!r} already exists")
        instance_id = new_instance_id()
        owner = prov.port_owner(instance_id)
        port = first_free_port(
            self._ports,
            prov.ports,
            claim=lambda port: prov.claims.claim(port, owner) is None,
            release=lambda port: prov.claims.release(port, owner),
            passed_over=self._passed_over,
        )
        try:
            try:
                plan = prov._plan(request, persona, spec, port, instance_id)
            except EyrieError:
                raise
            except Exception as exc:
                raise ProvisionError(f"provisioning {request.name!r} failed (render files): {exc}") from exc
            self._staging.stage_soon(plan)
        except BaseException:
            prov.claims.release(port, owner)
            raise
        self._names.add(request.name)
        self._ports.add(port)
        self._staged[instance_id] = (plan.instance, owner)
        return plan.instance

    def commit(self) -> dict[str, EyrieError]:
        """Make every instance added so far durable and move it into the store; the ids that could not be,
        and why (their port claims given back)."""
        failed = self._staging.place_all()
        for instance_id, (inst, owner) in self._staged.items():
            if instance_id in failed:
                self._provisioner.claims.release(inst.port, owner)
                self._names.discard(inst.name)
                self._ports.discard(inst.port)
                continue
            log.info(
                "instance_provisioned",
                instance=inst.name,
                instance_id=inst.id,
                framework=inst.framework,
                port=inst.port,
            )
        self._staged.clear()
        return failed

    def abandon(self) -> None:
        """Remove what was added and not committed, giving back its port claims."""
        for inst, owner in self._staged.values():
            self._provisioner.claims.release(inst.port, owner)
        self._staged.clear()
        self._staging.close()


def _is_real_dir(path: str | Path) -> bool:
    """A directory, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
