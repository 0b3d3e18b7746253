"""The stop journals of the stops in flight (`supervisor.stop_journal`): one file for a crowd of stops.

Each operator stop whose ``instance.json`` write has not landed yet joins the journal being formed (`cover`).
In a crowd, the first stop to need its desired state on disk writes the journal for every stop that joined
by the next turn of the event loop, and the others wait for that one write (`saved`); their records are
written after it, while the signals go out. As each covered record lands (`landed`) the instance leaves its
journal, and the file is removed once none is left. A covered instance wanted running again leaves its
journal, on disk too, before that wish is written (`release`): a journal on disk never names an instance
whose latest wish is to run.

The file is written on the event loop (about a millisecond, fsyncs included): from a worker thread, each of
its system calls waited for the interpreter's lock while the loop was busy with the stops (60–140 ms at
N=200).
"""

from __future__ import annotations

import enum
from pathlib import Path

import anyio
import structlog
from anyio.lowlevel import checkpoint

from supervisor.stop_journal import journal_path, remove_journal, write_journal

__all__ = ["StopJournals"]

log = structlog.get_logger("supervisor.engine")


class _State(enum.Enum):
    FORMING = "forming"  # stops join it; none needs it on disk yet
    CLOSING = "closing"  # its writer lets the stops asking in this turn of the loop join, then writes it
    WRITTEN = "written"  # written for the stops pending then (or none was left to write it for)
    FAILED = "failed"  # could not be written: the stops it covered wait for their own records
    RETIRED = "retired"  # removed: every record it covered has landed


class _Journal:
    __slots__ = ("done", "on_disk", "path", "pending", "state")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: set[str] = set()  # covered instances whose record has not landed
        self.state = _State.FORMING
        self.on_disk = False
        self.done = anyio.Event()  # set once it is written, or failed


class StopJournals:
    """Which journal covers each instance whose stop has not landed in its ``instance.json``."""

    def __init__(self, root: Path, boot_id: str) -> None:
        self._root = root
        self._boot_id = boot_id
        self._forming: _Journal | None = None
        self._by_id: dict[str, _Journal] = {}
        self.written = 0
        """Journal files written so far (tests and benchmarks count them)."""

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
        """Wait until the instance's stop is on disk in a journal: True then (or once its record landed
        meanwhile); False when no journal covers it or its journal could not be written."""
        journal = self._by_id.get(instance_id)
        if journal is None:
            return False
        if journal.state is _State.FORMING:
            await self._write(journal)
        else:
            await journal.done.wait()
        return journal.state is not _State.FAILED

    def landed(self, instance_id: str, desired: str | None, boot_id: str) -> None:
        """A record of the instance was written with this desired state: a stop it shows leaves the
        instance's journal, which goes once it covers nothing more."""
        journal = self._by_id.get(instance_id)
        if journal is not None and desired == "stopped" and boot_id == self._boot_id:
            self._leave(instance_id, journal)

    def forget(self, instance_id: str) -> None:
        """The instance is gone (removed): there is nothing left to cover."""
        journal = self._by_id.get(instance_id)
        if journal is not None:
            self._leave(instance_id, journal)

    def release(self, instance_id: str) -> None:
        """Before a record wanting the instance running is written: take it out of its journal, on disk
        too, so that a daemon starting after a crash does not stop it."""
        journal = self._by_id.pop(instance_id, None)
        if journal is None:
            return
        journal.pending.discard(instance_id)
        if not journal.on_disk:
            return
        if not journal.pending:
            self._retire(journal)
            return
        try:
            write_journal(journal.path, sorted(journal.pending), self._boot_id)
        except OSError as exc:
            # a journal that still named it would stop it after a crash; without the journal, a crash
            # before the others' records land restarts those instead
            log.warning("stop_journal_not_rewritten", path=str(journal.path), error=str(exc))
            self._retire(journal)

    async def _write(self, journal: _Journal) -> None:
        """Write ``journal`` for every stop that joined it by the next turn of the event loop."""
        journal.state = _State.CLOSING
        try:
            await checkpoint()  # the others stopping in this turn join
            if self._forming is journal:
                self._forming = None
            if journal.pending:
                write_journal(journal.path, sorted(journal.pending), self._boot_id)
                journal.on_disk = True
                self.written += 1
            journal.state = _State.WRITTEN
            self._settle(journal)
        except OSError as exc:
            log.warning("stop_journal_not_saved", path=str(journal.path), error=str(exc))
        finally:
            if journal.state is _State.CLOSING:  # not written: the stops wait for their records
                journal.state = _State.FAILED
                if self._forming is journal:
                    self._forming = None
                for instance_id in journal.pending:
                    self._by_id.pop(instance_id, None)
            journal.done.set()

    def _leave(self, instance_id: str, journal: _Journal) -> None:
        del self._by_id[instance_id]
        journal.pending.discard(instance_id)
        self._settle(journal)

    def _settle(self, journal: _Journal) -> None:
        """Remove a written journal that covers nothing more."""
        if journal.state is _State.WRITTEN and not journal.pending:
            if journal.on_disk:
                self._retire(journal)
            journal.state = _State.RETIRED

    def _retire(self, journal: _Journal) -> None:
        try:
            remove_journal(journal.path)
        except OSError as exc:  # applied at the next start, naming stops that have landed since
            log.warning("stop_journal_not_removed", path=str(journal.path), error=str(exc))
        journal.on_disk = False
