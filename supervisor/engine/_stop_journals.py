"""The stop journals of the stops in flight (`supervisor.stop_journal`): one file for a crowd of stops.

Each operator stop whose ``instance.json`` write has not landed yet joins the journal being formed (`cover`);
the first of them to need its desired state on disk before its signal writes the journal for all that
joined by then, and the others wait for that one write (`saved`). As each covered record lands (`landed`)
the instance leaves its journal, and the journal file is removed once none is left. A covered instance
wanted running again leaves its journal before that wish is written (`release`): a journal on disk never
names an instance whose latest wish is to run.
"""

from __future__ import annotations

import enum
import functools
from pathlib import Path

import anyio
import anyio.to_thread
import structlog
from anyio.lowlevel import checkpoint

from supervisor.stop_journal import journal_path, remove_journal, write_journal

__all__ = ["StopJournals"]

log = structlog.get_logger("supervisor.engine")


class _State(enum.Enum):
    FORMING = "forming"  # instances join it; nobody needs it on disk yet
    CLOSING = "closing"  # its writer lets those asking in this turn of the loop join, then writes it
    WRITTEN = "written"  # written as its writer found it (or nothing was left to write)
    FAILED = "failed"  # could not be written: those it covered wait for their own records
    RETIRED = "retired"  # removed: every record it covered has landed


class _Journal:
    __slots__ = ("done", "lock", "on_disk", "path", "pending", "state")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: set[str] = set()  # covered instances whose record has not landed
        self.state = _State.FORMING
        self.on_disk = False
        self.done = anyio.Event()  # set once it is written, or failed
        self.lock = anyio.Lock()  # one write of the file at a time


class StopJournals:
    """Which journal covers each instance whose stop has not landed in its ``instance.json``."""

    def __init__(self, root: Path, boot_id: str, limiter: anyio.CapacityLimiter | None = None) -> None:
        self._root = root
        self._boot_id = boot_id
        self._limiter = limiter
        self._forming: _Journal | None = None
        self._by_id: dict[str, _Journal] = {}
        self.written = 0  # journal files written (a count for tests and benchmarks)

    def covers(self, instance_id: str) -> bool:
        return instance_id in self._by_id

    def cover(self, instance_id: str) -> None:
        """The instance is wanted stopped and its record is not on disk yet: it joins the journal being
        formed."""
        if instance_id in self._by_id:
            return
        journal = self._forming
        if journal is None:
            journal = self._forming = _Journal(journal_path(self._root))
        journal.pending.add(instance_id)
        self._by_id[instance_id] = journal

    async def saved(self, instance_id: str) -> bool:
        """Wait until a journal naming the instance is on disk: True then; False when none covers it or
        its journal could not be written (its own record must land first)."""
        journal = self._by_id.get(instance_id)
        if journal is None:
            return False
        if journal.state is _State.FORMING:
            await self._write(journal)
        else:
            await journal.done.wait()
        return journal.state is not _State.FAILED and (journal.on_disk or instance_id not in journal.pending)

    async def landed(self, instance_id: str, desired: str | None, boot_id: str) -> None:
        """A record of the instance was written with this desired state: a stop it shows leaves the
        instance's journal, which goes once it covers nothing more."""
        journal = self._by_id.get(instance_id)
        if journal is None or desired != "stopped" or boot_id != self._boot_id:
            return
        del self._by_id[instance_id]
        journal.pending.discard(instance_id)
        if not journal.lock.locked():  # else its writer settles it
            self._settle(journal)

    def forget(self, instance_id: str) -> None:
        """The instance is gone (removed): nothing is left to cover."""
        journal = self._by_id.pop(instance_id, None)
        if journal is not None:
            journal.pending.discard(instance_id)
            if not journal.lock.locked():
                self._settle(journal)

    async def release(self, instance_id: str) -> None:
        """Before a record wanting the instance running is written: take it out of its journal, on disk
        too, so that a daemon starting after a crash does not stop it."""
        journal = self._by_id.pop(instance_id, None)
        if journal is None:
            return
        journal.pending.discard(instance_id)
        async with journal.lock:  # a write in flight ends first
            if not journal.on_disk or journal.state is _State.RETIRED:
                return
            if journal.pending:
                try:
                    await self._write_file(journal)
                except OSError as exc:
                    # a journal that still named it would stop it after a crash; without the journal, a
                    # crash before the others' records land restarts them instead
                    log.warning("stop_journal_not_rewritten", path=str(journal.path), error=str(exc))
                    self._retire(journal)
                else:
                    self._settle(journal)
            else:
                self._retire(journal)

    async def _write(self, journal: _Journal) -> None:
        """Write ``journal`` for every instance that joined it by the next turn of the event loop."""
        journal.state = _State.CLOSING
        try:
            await checkpoint()  # the others stopping in this turn join
            if self._forming is journal:
                self._forming = None
            async with journal.lock:
                if journal.pending:
                    await self._write_file(journal)
                    journal.on_disk = True
                    self.written += 1
                journal.state = _State.WRITTEN
                self._settle(journal)
        except OSError as exc:
            log.warning("stop_journal_not_saved", path=str(journal.path), error=str(exc))
            journal.state = _State.FAILED
            for instance_id in journal.pending:
                self._by_id.pop(instance_id, None)
        finally:
            if journal.state is _State.CLOSING:  # cancelled before it was written
                journal.state = _State.FAILED
                if self._forming is journal:
                    self._forming = None
                for instance_id in journal.pending:
                    self._by_id.pop(instance_id, None)
            journal.done.set()

    def _settle(self, journal: _Journal) -> None:
        """Remove a written journal that covers nothing more."""
        if journal.state is _State.WRITTEN and not journal.pending:
            if journal.on_disk:
                self._retire(journal)
            else:
                journal.state = _State.RETIRED

    def _retire(self, journal: _Journal) -> None:
        try:
            remove_journal(journal.path)
        except OSError as exc:  # applied at the next start: it names stops that have landed since
            log.warning("stop_journal_not_removed", path=str(journal.path), error=str(exc))
        journal.state = _State.RETIRED
        journal.on_disk = False

    async def _write_file(self, journal: _Journal) -> None:
        write = functools.partial(write_journal, journal.path, sorted(journal.pending), self._boot_id)
        await anyio.to_thread.run_sync(write, limiter=self._limiter)
