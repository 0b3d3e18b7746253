"""A stop of many instances recorded in one file before any of its signals: the stop journal.

An operator's stop is on disk before its signal, so that a daemon that dies right after the signal does not
start again, at its next start, what the operator stopped (the desired state holds until the next boot).
Written one ``instance.json`` at a time, a fleet's stop held every signal back until the last of those
writes had landed (100–140 ms at N=200). A journal is one file naming every instance the stop covers and
the boot its desired state holds for: ``instances/.stopping-<token>.json`` (0600, written atomically and
fsynced). The ``instance.json`` writes follow the signals, and the journal is removed once each of them has
landed. A journal found when a daemon starts is applied before the store is read (`apply_journals`): the
instances it names are recorded as stopped, then the journal goes.

A journal is input like every file under the home: a symlink, a FIFO, a huge or torn file, or one that is
not a journal is left where it is with a warning; an id that is no instance's is skipped with one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from supervisor._fs import atomic_write
from supervisor._safe_read import read_bytes
from supervisor.errors import EyrieError, NotFound
from supervisor.models import Instance
from supervisor.paths import ID_PATTERN
from supervisor.store import Store

__all__ = [
    "JOURNAL_PREFIX",
    "MAX_JOURNAL_BYTES",
    "StopJournal",
    "apply_journals",
    "journal_path",
    "read_journal",
    "remove_journal",
    "write_journal",
]

JOURNAL_PREFIX = ".stopping-"
_SUFFIX = ".json"
_VERSION = 1
MAX_JOURNAL_BYTES = 4 * 1024 * 1024
"""The largest journal read: one names at most a few thousand ids of about 40 bytes."""

log = structlog.get_logger("supervisor.store")


@dataclass(frozen=True, slots=True)
class StopJournal:
    """What a journal says: these instances are wanted stopped until the boot after ``boot_id``."""

    path: Path
    boot_id: str
    ids: tuple[str, ...]
    bad_ids: tuple[str, ...] = ()
    """Entries that are not instance ids (skipped)."""


def journal_path(root: Path) -> Path:
    """A new journal's path in the instances directory ``root`` (hidden, so the store never lists it)."""
    return root / f"{JOURNAL_PREFIX}{secrets.token_hex(8)}{_SUFFIX}"


def write_journal(path: Path, ids: Iterable[str], boot_id: str) -> None:
    """Write (or replace) the journal at ``path``: temp file, fsync, rename, fsync the directory."""
    data = {"version": _VERSION, "desired": "stopped", "desired_boot_id": boot_id, "ids": list(ids)}
    atomic_write(path, json.dumps(data, separators=(",", ":")) + "\n", mode=0o600)


def remove_journal(path: Path) -> None:
    """Remove the journal (every record it covers has landed); one already gone is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read_journal(path: Path) -> StopJournal:
    """The journal at ``path``; `ValueError` or `OSError` saying why when it is not one."""
    raw = read_bytes(path, limit=MAX_JOURNAL_BYTES, follow_symlinks=False)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != _VERSION or data.get("desired") != "stopped":
        raise ValueError(f"not a version {_VERSION} stop journal")
    boot_id, ids = data.get("desired_boot_id"), data.get("ids")
    if not isinstance(boot_id, str) or not boot_id or not isinstance(ids, list):
        raise ValueError("no desired_boot_id or no list of ids")
    good = tuple(i for i in ids if isinstance(i, str) and ID_PATTERN.fullmatch(i))
    bad = tuple(repr(i)[:80] for i in ids if not (isinstance(i, str) and ID_PATTERN.fullmatch(i)))
    return StopJournal(path, boot_id, good, bad)


def _journals(root: Path) -> list[Path]:
    try:
        names = sorted(
            name
            for name in os.listdir(root)
            if name.startswith(JOURNAL_PREFIX) and name.endswith(_SUFFIX) and ".tmp" not in name
        )
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [root / name for name in names]


def apply_journals(store: Store) -> list[str]:
    """Record every instance a journal left behind names as stopped (durably), then remove the journal; the
    ids so recorded. Call before anything reads desired states from the store (a daemon's start)."""
    applied: list[str] = []
    for path in _journals(store.root):
        try:
            journal = read_journal(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.warning("stop_journal_ignored", path=str(path), reason=reason)
            continue
        if journal.bad_ids:
            log.warning("stop_journal_bad_ids", path=str(path), ids=list(journal.bad_ids[:10]))
        kept = False
        for instance_id in journal.ids:
            try:
                if _record_stopped(store, instance_id, journal.boot_id):
                    applied.append(instance_id)
            except NotFound:
                log.warning("stop_journal_unknown_instance", path=str(path), instance_id=instance_id)
            except (OSError, EyrieError) as exc:  # kept: the record may be repaired, the stop must hold
                log.warning(
                    "stop_journal_not_applied", path=str(path), instance_id=instance_id, error=str(exc)
                )
                kept = True
        if not kept:
            remove_journal(path)
        log.info("stop_journal_applied", path=str(path), instances=len(journal.ids), kept=kept)
    return applied


def _record_stopped(store: Store, instance_id: str, boot_id: str) -> bool:
    """Record the instance as wanted stopped for ``boot_id``; False when it already is."""
    inst = store.get(instance_id)
    if inst.desired == "stopped" and inst.desired_boot_id == boot_id:
        return False

    def stopped(record: Instance) -> None:
        record.desired = "stopped"
        record.desired_boot_id = boot_id

    store.update(instance_id, stopped)
    return True
