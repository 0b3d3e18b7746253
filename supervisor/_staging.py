"""Instance directories built in ``instances/.staging/<id>/`` and renamed into place whole.

Files are written unsynced and made durable together just before the renames (`place_all`): one
``syncfs(2)`` of the store's filesystem costs about what two or three ``fsync`` calls do, where an instance
has a dozen files and directories to sync one by one (measured: 2,000 small files, 0.07 s against 2.0 s).
Nothing is renamed before every file and directory in it is on disk, and the store directory itself is
synced once after the renames, before anything is reported provisioned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from supervisor._fs import fsync_dir, write_new
from supervisor.errors import EyrieError, ProvisionError
from supervisor.models import Instance
from supervisor.paths import STATE_DIR, TMP_DIR
from supervisor.store import TOKEN_FILE, Store

__all__ = ["DIR_MODE", "SECRET_MODE", "InstancePlan", "Staging"]

_STAGING = ".staging"
_AGENT_DIRS = ("workspace", STATE_DIR, TMP_DIR)
"""The directories of an instance its agent may write: its working directory, its framework's state and its
private ``TMPDIR`` (docs/layout.md); everything else in the instance directory is the daemon's."""
DIR_MODE = 0o700
_IDENTITY_MODE = 0o644
SECRET_MODE = 0o600
_STAGING_THREADS = 2


@dataclass(eq=False)
class InstancePlan:
    """One instance and every file it gets, rendered in memory before anything touches disk."""

    instance: Instance
    identity: dict[str, str]  # workspace file name → text
    config_file: str
    config_text: str


def _make_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE)
    path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask


class Staging:
    """The staging directory of one store; its user holds the store-wide lock throughout."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root / _STAGING
        self._staged: dict[str, tuple[Path, str]] = {}  # id → (its staging directory, its name)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[Future[None], str]] = {}  # id → (its staging, its name)
        self._order: list[str] = []  # ids in the order they were given: the order they are placed in

    def clear(self) -> None:
        """Remove debris of a crashed provisioning (the caller holds the store lock: none is running)."""
        try:
            if self.root.is_dir() and not self.root.is_symlink():
                shutil.rmtree(self.root)
            elif self.root.is_symlink() or self.root.exists():
                self.root.unlink()
        except OSError as exc:
            raise ProvisionError(f"cannot clear {self.root}: {exc.strerror or exc}") from exc

    def _stage(self, plan: InstancePlan) -> None:
        """Write every file of ``plan`` (not yet synced); on failure nothing of it is left."""
        inst = plan.instance
        built = self.root / inst.id
        step = "create directories"
        try:
            if not self.root.is_dir():
                _make_dir(self.root)
            for sub in ("", *_AGENT_DIRS, "workspace/memory", "workspace/sessions", "logs", "secrets"):
                _make_dir(built / sub)
            step = "write identity files"
            for name, text in plan.identity.items():
                write_new(built / "workspace" / name, text, _IDENTITY_MODE, durable=False)
            step = f"write {plan.config_file}"
            write_new(built / plan.config_file, plan.config_text, SECRET_MODE, durable=False)
            step = "write the auth token"
            write_new(built / "secrets" / TOKEN_FILE, inst.auth_token + "\n", SECRET_MODE, durable=False)
            step = "save instance.json"
            Store(self.root).save(inst, durable=False)
        except BaseException as exc:
            shutil.rmtree(built, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, EyrieError):
                raise ProvisionError(f"provisioning {inst.name!r} failed ({step}): {_reason(exc)}") from exc
            raise
        self._staged[inst.id] = (built, inst.name)

    def stage_soon(self, plan: InstancePlan) -> None:
        """Stage ``plan`` in a worker thread; `place_all` waits for it and reports its failure. Creating a
        dozen files and directories is mostly the filesystem's work, which two threads do side by side."""
        inst = plan.instance
        if self._pool is None:
            try:
                if not self.root.is_dir():  # made here: two threads must not race to make it
                    _make_dir(self.root)
            except OSError as exc:
                raise ProvisionError(
                    f"provisioning {inst.name!r} failed (create directories): {_reason(exc)}"
                ) from exc
            self._pool = ThreadPoolExecutor(_STAGING_THREADS, thread_name_prefix="staging")
        self._order.append(inst.id)
        self._pending[inst.id] = (self._pool.submit(self._stage, plan), inst.name)

    def _staged_soon(self) -> dict[str, EyrieError]:
        """Wait for every `stage_soon`; the ids that could not be staged, and why (nothing of them left). An
        interrupt in a staging thread is raised once all have ended."""
        pending, self._pending = self._pending, {}
        failed: dict[str, EyrieError] = {}
        interrupted: BaseException | None = None
        for instance_id, (future, name) in pending.items():
            try:
                future.result()
            except EyrieError as exc:
                failed[instance_id] = exc
            except Exception as exc:
                failed[instance_id] = ProvisionError(f"provisioning {name!r} failed: {_reason(exc)}")
            except BaseException as exc:
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted
        return failed

    def discard(self, instance_id: str) -> None:
        """Remove what was staged for ``instance_id``."""
        if (staged := self._staged.pop(instance_id, None)) is not None:
            shutil.rmtree(staged[0], ignore_errors=True)

    def place_all(self) -> dict[str, EyrieError]:
        """Sync every staged instance, rename each into the store, then sync the store directory; the ids
        that could not be placed, and why (nothing of them is left)."""
        failed = self._staged_soon()
        placed: list[str] = []
        synced = bool(self._staged) and _sync_filesystem(self.root)
        # in the order given: two threads stage in any order
        for instance_id in [i for i in self._order if i in self._staged]:
            built, name = self._staged[instance_id]
            try:
                if not synced:
                    _sync_tree(built)
                os.rename(built, self.store.dir(instance_id))
                placed.append(instance_id)
            except OSError as exc:
                shutil.rmtree(built, ignore_errors=True)
                failed[instance_id] = ProvisionError(
                    f"provisioning {name!r} failed (move the instance into place): {_reason(exc)}"
                )
        self._staged.clear()
        self._order.clear()
        try:
            if placed:
                fsync_dir(self.store.root)
        except OSError as exc:
            for instance_id in placed:
                shutil.rmtree(self.store.dir(instance_id), ignore_errors=True)
                failed[instance_id] = ProvisionError(f"cannot sync {self.store.root}: {_reason(exc)}")
        return failed

    def close(self) -> None:
        """Remove whatever is still staged, and the staging directory when it is empty."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)  # what runs ends; what waits never starts
            self._pool = None
        self._pending.clear()
        self._order.clear()
        for instance_id in list(self._staged):
            self.discard(instance_id)
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _sync_filesystem(path: Path) -> bool:
    """``syncfs(2)`` on the filesystem holding ``path``; False when the C library has no such call or it
    failed (the caller then syncs file by file, and sees any error there)."""
    import ctypes

    syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if syncfs is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def _sync_tree(top: Path) -> None:
    """fsync every file under ``top`` (a freshly built instance: a few dozen entries) and every directory
    with something in it (an empty one's own entry is its parent's)."""
    for directory, subdirs, files in os.walk(top, followlinks=False):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if subdirs or files:
            fsync_dir(Path(directory))


def _reason(exc: BaseException) -> object:
    return f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else exc
