"""Instance metadata on disk: ``$EYRIE_HOME/instances/<id>/instance.json``, one directory per instance.

The daemon and ``eyriectl`` are separate processes, so every write happens under a per-instance ``flock``
and lands atomically; readers never see a torn file. A corrupt file is skipped and reported, never deleted.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import ValidationError

from supervisor._fs import atomic_write, locked
from supervisor.errors import CorruptInstance, NameExists, NotFound, RequiredField
from supervisor.models import Instance, InstanceStatus, utcnow
from supervisor.paths import Home, check_id

__all__ = ["INSTANCE_FILE", "TOKEN_FILE", "Store", "StoreProblem"]

INSTANCE_FILE = "instance.json"
TOKEN_FILE = "token"
_LOCK_FILE = ".lock"

log = structlog.get_logger("supervisor.store")


@dataclass(frozen=True)
class StoreProblem:
    """An instance directory that could not be read, and why."""

    path: Path
    reason: str


class Store:
    """Reads and writes instance metadata under one root (``$EYRIE_HOME/instances``)."""

    def __init__(self, root: Path | Home) -> None:
        self.root = root.instances_dir if isinstance(root, Home) else Path(root)
        # id → (bytes of instance.json, what they parsed to): a scan re-parses only the files that changed
        self._parsed: dict[str, tuple[bytes, Instance]] = {}
        # name → id of the oldest instance of that name, as the last scan found them: where a lookup by
        # name looks first (one file read, verified) before it scans every instance
        self._names: dict[str, str] = {}

    # --- paths

    def dir(self, instance_id: str) -> Path:
        """The instance's directory; raises `InvalidID` before any path is built from a bad id."""
        return self.root / check_id(instance_id)

    def _file(self, instance_id: str) -> Path:
        return self.dir(instance_id) / INSTANCE_FILE

    def lock(self) -> Path:
        """The store-wide lock file: held while a name or port is chosen and the instance first saved."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.root / _LOCK_FILE

    # --- reading

    def get(self, instance_id: str) -> Instance:
        path = self._file(instance_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"instance {instance_id} not found") from None
        cached = self._parsed.get(instance_id)
        if cached is not None and cached[0] == raw:
            return _copy(cached[1])
        return _parse(path, raw)

    def get_by_name(self, name: str) -> Instance:
        hint = self._names.get(name)
        if hint is not None:
            with contextlib.suppress(NotFound, CorruptInstance):
                inst = self.get(hint)
                if inst.name == name:
                    return inst
        for inst in self.list():
            if inst.name == name:
                return inst
        raise NotFound(f"instance {name!r} not found")

    def list(self) -> list[Instance]:
        """Every readable instance, oldest first; unreadable ones are logged and left out (see `problems`)."""
        instances, problems = self._scan()
        for p in problems:
            log.warning("instance_unreadable", path=str(p.path), reason=p.reason)
        return instances

    def problems(self) -> builtins.list[StoreProblem]:
        """Instance directories whose ``instance.json`` is missing, torn or invalid."""
        return self._scan()[1]

    def _scan(self) -> tuple[builtins.list[Instance], builtins.list[StoreProblem]]:
        instances: builtins.list[Instance] = []
        problems: builtins.list[StoreProblem] = []
        try:
            entries = sorted(
                (e for e in os.scandir(self.root) if not e.name.startswith(".") and e.is_dir()),
                key=lambda e: e.name,
            )
        except (FileNotFoundError, NotADirectoryError):
            return instances, problems
        parsed: dict[str, tuple[bytes, Instance]] = {}
        for entry in entries:
            try:
                with open(os.path.join(entry.path, INSTANCE_FILE), "rb") as f:
                    raw = f.read()
                cached = self._parsed.get(entry.name)
                if cached is None or cached[0] != raw:
                    cached = (raw, _parse(Path(entry.path) / INSTANCE_FILE, raw))
                parsed[entry.name] = cached
                instances.append(_copy(cached[1]))
            except FileNotFoundError:
                problems.append(StoreProblem(Path(entry.path) / INSTANCE_FILE, "instance.json is missing"))
            except CorruptInstance as exc:
                problems.append(StoreProblem(Path(entry.path) / INSTANCE_FILE, str(exc)))
            except OSError as exc:
                path = Path(entry.path) / INSTANCE_FILE
                problems.append(StoreProblem(path, f"{path}: cannot be read ({exc.strerror or exc})"))
        self._parsed = parsed
        instances.sort(key=lambda i: (i.created_at is None, i.created_at or utcnow(), i.name))
        names: dict[str, str] = {}
        for inst in instances:
            names.setdefault(inst.name, inst.id)
        self._names = names
        return instances, problems

    def name_exists(self, name: str) -> bool:
        return any(inst.name == name for inst in self.list())

    def token(self, instance_id: str) -> str:
        """The instance's auth token from ``secrets/token`` ("" when it has none)."""
        try:
            return (self.dir(instance_id) / "secrets" / TOKEN_FILE).read_text().strip()
        except FileNotFoundError:
            return ""

    # --- writing

    def save(self, inst: Instance) -> None:
        """Write the whole instance (creating its directory); the caller owns every field."""
        _require(inst)
        directory = self.dir(inst.id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with locked(directory / _LOCK_FILE):
            _write(directory / INSTANCE_FILE, inst)

    def create(self, inst: Instance) -> None:
        """Save a new instance, refusing a taken name (`NameExists`); callers hold `lock` around it."""
        _require(inst)
        if self.name_exists(inst.name):
            raise NameExists(f"instance name {inst.name!r} already exists")
        self.save(inst)

    def update(
        self,
        instance_id: str,
        mutate: Callable[[Instance], object],
        *,
        durable: bool = True,
        wait: bool = True,
    ) -> Instance:
        """Read, change and write one instance under its lock, so concurrent writers lose nothing.

        ``durable=False`` skips the fsyncs (the write stays atomic): for runtime state that a reboot makes
        stale anyway, which the engine writes on every transition. ``wait=False`` raises `BlockingIOError`
        instead of waiting when another writer holds the instance's lock.
        """
        directory = self.dir(instance_id)
        file = directory / INSTANCE_FILE
        if not file.exists():
            raise NotFound(f"instance {instance_id} not found")
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locked(directory / _LOCK_FILE, wait=wait))
                raw = file.read_bytes()
            except FileNotFoundError:  # deleted between the check and the lock
                raise NotFound(f"instance {instance_id} not found") from None
            inst = _parse(file, raw)
            mutate(inst)
            _write(file, inst, durable=durable)
        return inst

    def update_status(self, instance_id: str, status: InstanceStatus | str) -> Instance:
        new = InstanceStatus(status)

        def apply(inst: Instance) -> None:
            inst.status = new
            inst.status_updated_at = utcnow()

        return self.update(instance_id, apply)

    def delete(self, instance_id: str) -> None:
        """Remove the instance directory and everything in it (a purge; a removal moves it to the trash).

        A directory that is a symlink is removed as the link: nothing it points at, maybe outside the
        home, is touched."""
        directory = self.dir(instance_id)
        if directory.is_symlink():
            directory.unlink()
            return
        if not directory.is_dir():
            raise NotFound(f"instance {instance_id} not found")
        with locked(directory / _LOCK_FILE):
            shutil.rmtree(directory)


def _write(file: Path, inst: Instance, *, durable: bool = True) -> None:
    atomic_write(file, _dump(inst), mode=0o600, durable=durable)


def _dump(inst: Instance) -> bytes:
    """``Instance.to_json_dict`` as indented JSON. pydantic's serialiser writes the same text several times
    faster than ``json.dumps`` (non-ASCII stays UTF-8 instead of ``\\u`` escapes); a kept unknown key that
    is ``null``, which it would leave out, takes the slow path."""
    if any(value is None for value in (inst.model_extra or {}).values()):
        return (json.dumps(inst.to_json_dict(), indent=2) + "\n").encode()
    return inst.model_dump_json(indent=2, exclude_none=True).encode() + b"\n"


def _copy(inst: Instance) -> Instance:
    """A copy the caller may change without touching the cached one (nested values copied too)."""
    last_exit = inst.last_exit.model_copy() if inst.last_exit is not None else None
    cmdline = list(inst.cmdline) if inst.cmdline is not None else None
    return inst.model_copy(update={"last_exit": last_exit, "cmdline": cmdline})


def _require(inst: Instance) -> None:
    for field in ("id", "name", "framework"):
        if not getattr(inst, field):
            raise RequiredField(f"instance {field} is required")
    check_id(inst.id)


def _parse(path: Path, raw: bytes) -> Instance:
    try:
        inst = Instance.model_validate_json(raw)  # the common case, parsed and validated in one pass
    except ValidationError:
        return _parse_slowly(path, raw)  # for the error message json and the dict validation give
    if inst.id != path.parent.name:
        raise CorruptInstance(f"{path}: id {inst.id!r} does not match its directory {path.parent.name!r}")
    return inst


def _parse_slowly(path: Path, raw: bytes) -> Instance:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptInstance(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptInstance(f"{path}: expected a JSON object")
    try:
        inst = Instance.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CorruptInstance(f"{path}: {where}: {first['msg']}") from None
    if inst.id != path.parent.name:
        raise CorruptInstance(f"{path}: id {inst.id!r} does not match its directory {path.parent.name!r}")
    return inst
