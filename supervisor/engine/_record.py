"""An actor's instance record: the fields the engine owns, kept in memory and written to ``instance.json`` in
order, with writes that pile up coalesced into one."""

from __future__ import annotations

import functools
from typing import Any

import anyio

from supervisor.engine._services import Services
from supervisor.engine._sparse import SparseLock
from supervisor.engine._stop_journals import StopJournals
from supervisor.engine.process import ExitStatus
from supervisor.errors import EyrieError, NotFound
from supervisor.models import Instance, LastExit, rfc3339, utcnow

__all__ = ["OWNED_FIELDS", "InstanceRecord", "assign"]

OWNED_FIELDS = (
    "status",
    "status_updated_at",
    "status_detail",
    "phase",
    "pid",
    "pgid",
    "proc_start_time",
    "boot_id",
    "cmdline",
    "started_at",
    "last_exit",
    "last_error",
    "next_start_at",
    "restart_count",
    "total_restarts",
    "health_status",
    "last_seen",
    "config_hash",
    "launch_hash",
    "sandbox",
    "desired",
    "desired_boot_id",
)
"""The fields of ``instance.json`` the engine owns; every write copies them from memory."""


class InstanceRecord:
    """``inst`` is the truth in memory; `snapshot` is what was last written, which is what others can read."""

    def __init__(self, inst: Instance, instance_id: str, services: Services, log: Any) -> None:
        self.inst = inst
        self.log = log  # the actor's bound logger, rebound when its runtime changes
        self._view = inst.model_copy()
        self._disk = self._view  # what instance.json was last read or written with
        self._instance_id = instance_id
        self._services = services
        self._lock = SparseLock()
        self._dirty = 0
        self._written = 0

    def show_memory(self) -> None:
        """Show what memory holds now, before it is written (what the actor wants shows at once)."""
        self._view = self.inst.model_copy()

    def process_ended(self, status: ExitStatus | None, reason: str = "") -> None:
        """The recorded process ended (``status`` None: it is not known how); ``reason``: why the supervisor
        ended it, when a limit did."""
        code, signal = (status.code, status.signal) if status is not None else (None, None)
        assign(self.inst, last_exit=LastExit(code=code, signal=signal, time=utcnow(), reason=reason))
        self.forget_process()

    def forget_process(self) -> None:
        assign(
            self.inst, pid=None, pgid=None, proc_start_time=None, cmdline=None, health_status=None, sandbox=""
        )

    def snapshot(self) -> Instance:
        """The state last written to ``instance.json``, with the current last_seen."""
        return self._view.model_copy(update={"last_seen": self.inst.last_seen})

    def written(self) -> Instance:
        """The state last written, shared rather than copied: a listing reads every instance on each call.
        Its last_seen may be older than `snapshot`'s; nobody may change it."""
        return self._view

    def written_json(self) -> dict[str, Any]:
        """``snapshot().to_json_dict()`` without a copy of the instance. Not kept: a listing asks for it only
        when the instance was written anew (`supervisor.daemon._view_cache`)."""
        data = self._view.to_json_dict()
        last_seen = self.inst.last_seen
        if last_seen == self._view.last_seen:
            return data
        if "last_seen" in data and last_seen is not None:
            data["last_seen"] = rfc3339(last_seen)
            return data
        return self.snapshot().to_json_dict()

    async def persist(self) -> None:
        """Write the owned fields to ``instance.json``; concurrent calls coalesce, order is kept."""
        self._dirty += 1
        mine = self._dirty
        journals = self._services.journals
        if journals is not None and self._stopping():
            journals.cover(self._instance_id)  # its signal need not wait for this write
        async with self._lock:
            if self._written >= mine:
                return
            target = self._dirty
            snapshot = {key: getattr(self.inst, key) for key in OWNED_FIELDS}
            crowded = self._services.writing.crowded(anyio.current_time())
            if journals is not None:
                await self._journal_first(journals, snapshot["desired"], crowded)
            try:
                disk = await self._store(snapshot, crowded)
            except (OSError, EyrieError) as exc:
                self.log.error("state_not_saved", error=str(exc))
                if journals is not None and isinstance(exc, NotFound):
                    journals.forget(self._instance_id)
                self.show_memory()  # memory stays the truth until a write succeeds
                return
            except BaseException:
                self.show_memory()
                raise
            self._written = target
            self._view = self._disk = disk
            current = {key: getattr(self.inst, key) for key in OWNED_FIELDS}
            self.inst = disk.model_copy(update=current)
            if journals is not None:
                journals.landed(self._instance_id, snapshot["desired"], snapshot["desired_boot_id"])

    async def persist_changes(self) -> None:
        """`persist`, unless memory holds what ``instance.json`` was last read or written with and no write
        is due: a repeated adoption writes nothing (a plain `persist` also takes in what others wrote)."""
        if self._written < self._dirty or not self._as_on_disk():
            await self.persist()

    def _as_on_disk(self) -> bool:
        memory, disk = self.inst.__dict__, self._disk.__dict__
        return all(memory[key] == disk[key] for key in OWNED_FIELDS)

    def _stopping(self) -> bool:
        """Whether memory wants the instance stopped and what others can read does not say so yet: an
        operator's stop, not written."""
        inst, view = self.inst, self._view
        return inst.desired == "stopped" and (
            view.desired != "stopped" or view.desired_boot_id != inst.desired_boot_id
        )

    async def _journal_first(self, journals: StopJournals, desired: str | None, crowded: bool) -> None:
        """What must be on disk before this record: a wish to run takes the instance out of its stop
        journal; in a crowd of stops, their journal is written first, so that the records' writes in
        worker threads begin once the signals have gone out rather than contend with them."""
        if desired != "stopped":
            journals.release(self._instance_id)
        elif crowded:
            await journals.saved(self._instance_id)

    async def desired_saved(self) -> None:
        """Wait until the desired state in memory is on disk, in ``instance.json`` or in a stop journal
        (`StopJournals`): what an operator's stop waits for before its first signal."""
        if self._written >= self._dirty:
            return
        journals = self._services.journals
        if journals is not None and await journals.saved(self._instance_id):
            return
        await self.flushed()

    async def flushed(self) -> None:
        """Wait until the writes asked for so far have ended; write once more only if one of them failed."""
        if self._written >= self._dirty:
            return
        async with self._lock:
            pass
        if self._written < self._dirty:
            await self.persist()

    async def _store(self, snapshot: dict[str, Any], crowded: bool) -> Instance:
        """Write on the loop when the write is a lone one and nobody else holds the instance's lock (a
        fraction of a millisecond); in a crowd, in worker threads with the others' (`WriteBatch`)."""
        services = self._services
        try:
            if not crowded:
                return self._write(snapshot, wait=False)
            return await services.batch.run(functools.partial(self._write, snapshot, False))
        except BlockingIOError:  # another process is writing this instance: wait for it off the loop
            return await anyio.to_thread.run_sync(self._write, snapshot, True, limiter=services.threads)

    def _write(self, snapshot: dict[str, Any], wait: bool) -> Instance:
        def apply(inst: Instance) -> None:
            # the values come from our own instance, already valid
            assign(inst, **{key: value for key, value in snapshot.items() if inst.__dict__[key] != value})

        # Runtime state only: after a power loss the boot id changes and `prepare` discards it anyway, so the
        # write is atomic but not fsynced (see docs/layout.md).
        return self._services.store.update(self._instance_id, apply, durable=False, wait=wait, keep=True)


def assign(inst: Instance, **values: Any) -> None:
    """Set fields the engine owns to values it built with their declared types (or copied from a valid
    instance), without pydantic's assignment validation: that re-validates per field and was a fifth of the
    CPU of a respawn. A value of the wrong type still shows: serialising it warns."""
    inst.__dict__.update(values)
    inst.__pydantic_fields_set__.update(values)
