"""``logs``: instance output, read straight from ``instances/<id>/logs/<framework>.log``.

No daemon is involved, so logs stay readable while eyried is down. ``-f`` follows a file across rotation:
when the name points to a new file, the rest of the old one is read first, then the new one from its start;
a file truncated in place is read again from its start.

Without a name, the logs of every instance are merged (as ``pm2 logs`` does), each line prefixed with its
instance's name. History is ordered by time: a line that starts with a timestamp (eyried's own lines always
do) has that time, a line without one takes the time of the line before it in the same file (the next one's
for the first lines), and a file with no timestamp at all sorts by its modification time; each file keeps
its own order. ``--since`` drops lines whose time is known and earlier. Followed lines print as they arrive.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import click

from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._complete import complete_instance_names
from supervisor.cli._logfiles import LINE_MAX, Followed, line_text, open_log, tail
from supervisor.cli._render import printable
from supervisor.store import Store

__all__ = ["log_path", "logs"]

_SINCE_LINES = 100_000
_POLL = 0.2
_RESCAN = 2.0
_STAMP = re.compile(rb"^\[?(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def log_path(cli: Cli, name: str) -> Path:
    store = Store(cli.home)
    inst = store.get_by_name(name)
    return store.dir(inst.id) / "logs" / f"{inst.framework}.log"


def _write(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _follow(path: Path, f: BinaryIO | None, show: _Show) -> None:
    """Print what is appended to ``path`` until interrupted."""
    followed = Followed(path, f)
    pending = b""
    try:
        while True:
            chunk = followed.read()
            if not chunk:
                time.sleep(_POLL)
                continue
            if show.raw:
                _write(chunk)
                continue
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if len(pending) > LINE_MAX:
                complete.append(pending)
                pending = b""
            for line in complete:
                show.line("", line)
    finally:
        followed.close()


@dataclass
class _Show:
    """How lines reach stdout: raw bytes (one instance, to a pipe), escaped text, or JSON lines."""

    as_json: bool
    raw: bool
    width: int = 0
    single: str = ""

    def line(self, name: str, line: bytes) -> None:
        name = name or self.single
        text = line_text(line.rstrip(b"\r"))
        if self.as_json:
            when = _stamp(line)
            record = {"instance": name, "line": text, "time": when.isoformat() if when else None}
            sys.stdout.write(json.dumps(record) + "\n")
        elif self.width:
            sys.stdout.write(f"{printable(name.ljust(self.width))} | {printable(text)}\n")
        else:
            sys.stdout.write(printable(text) + "\n")
        sys.stdout.flush()


def _stamp(line: bytes) -> datetime | None:
    """The time a log line starts with (``2026-11-30T15:04:05.123Z``, or local time without a zone)."""
    m = _STAMP.match(line)
    if m is None:
        return None
    day, clock, fraction, zone = (g.decode() if g else "" for g in m.groups())
    text = f"{day}T{clock}.{(fraction or '0')[:6].ljust(6, '0')}"
    if zone:
        text += "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.astimezone().astimezone(UTC)


def _since(value: str) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s`` ago, or a timestamp (local time unless zoned)."""
    text = value.strip()
    m = _DURATION.match(text)
    if m is not None:
        return datetime.now(UTC) - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (10m, 2h, 1d) nor a timestamp") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.astimezone().astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Timed:
    """One history line with the time it sorts by (``known``: that time came from the file's lines)."""

    at: datetime
    known: bool
    name: str
    line: bytes


def _timed(name: str, lines: list[bytes], fallback: datetime) -> list[_Timed]:
    """Each line with its own time, or the one before it, or the next one; ``fallback`` for a file that has
    none."""
    stamps = [_stamp(line) for line in lines]
    nxt: datetime | None = None
    after: list[datetime | None] = [None] * len(lines)
    for i in range(len(lines) - 1, -1, -1):
        nxt = stamps[i] or nxt
        after[i] = nxt
    out: list[_Timed] = []
    before: datetime | None = None
    for line, own, later in zip(lines, stamps, after, strict=True):
        before = own or before
        at = before or later
        out.append(_Timed(at or fallback, at is not None, name, line))
    return out


def _instance_logs(cli: Cli) -> list[tuple[str, Path]]:
    store = Store(cli.home)
    return sorted((inst.name, store.dir(inst.id) / "logs" / f"{inst.framework}.log") for inst in store.list())


def _history(name: str, path: Path, lines: int) -> tuple[list[_Timed], BinaryIO | None]:
    try:
        f = open_log(path)
    except (OSError, CommandFailed):
        return [], None
    data = tail(f, lines).splitlines()
    modified = datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime, UTC)
    return _timed(name, data, modified), f


def _merged(cli: Cli, follow: bool, lines: int, since: datetime | None, as_json: bool) -> None:
    files = _instance_logs(cli)
    if not files and not follow:
        cli.note("no instances")
        return
    show = _Show(as_json=as_json, raw=False, width=max((len(n) for n, _ in files), default=0))
    history: list[list[_Timed]] = []
    followed: dict[str, Followed] = {}
    for name, path in files:
        timed, f = _history(name, path, lines)
        history.append([t for t in timed if since is None or not t.known or t.at >= since])
        followed[name] = Followed(path, f)
    merged = list(heapq.merge(*history, key=lambda t: t.at))[-lines:] if lines else []
    for t in merged:
        show.line(t.name, t.line)
    if not follow:
        for one in followed.values():
            one.close()
        return
    try:
        _follow_all(cli, followed, show)
    finally:
        for one in followed.values():
            one.close()


def _follow_all(cli: Cli, followed: dict[str, Followed], show: _Show) -> None:
    """Print complete lines of every log as they arrive; instances added meanwhile are picked up."""
    pending: dict[str, bytes] = {}
    rescan = time.monotonic() + _RESCAN
    while True:
        quiet = True
        for name, one in list(followed.items()):
            chunk = one.read()
            if not chunk:
                continue
            quiet = False
            *complete, rest = (pending.get(name, b"") + chunk).split(b"\n")
            if len(rest) > LINE_MAX:
                complete.append(rest)
                rest = b""
            pending[name] = rest
            for line in complete:
                show.line(name, line)
        if time.monotonic() >= rescan:
            rescan = time.monotonic() + _RESCAN
            for name, path in _instance_logs(cli):
                if name not in followed:
                    followed[name] = Followed(path, None)
                    show.width = max(show.width, len(name))
        if quiet:
            time.sleep(_POLL)


def _single(cli: Cli, name: str, follow: bool, lines: int, since: datetime | None, as_json: bool) -> None:
    path = log_path(cli, name)
    raw = not as_json and since is None and not sys.stdout.isatty()
    show = _Show(as_json=as_json, raw=raw, single=name)
    f: BinaryIO | None = None
    try:
        f = open_log(path)
    except FileNotFoundError:
        if not follow:
            cli.note(f"{name} has no log yet ({path})")
            return
    if f is not None:
        data = tail(f, lines)
        if raw:
            _write(data)
        else:
            fallback = datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime, UTC)
            for t in _timed(name, data.splitlines(), fallback):
                if since is None or not t.known or t.at >= since:
                    show.line(name, t.line)
    if not follow:
        if f is not None:
            f.close()
        return
    _follow(path, f, show)


def _lines_default(lines: int | None, since: datetime | None) -> int:
    if lines is not None:
        return lines
    return _SINCE_LINES if since is not None else 50


@click.command(short_help="Print an instance's log, or with no NAME every instance's, merged.")
@click.argument("name", required=False, shell_complete=complete_instance_names)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output, across log rotation.")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    help="Lines of history (default 50; with --since, every line since then).",
)
@click.option("--since", metavar="WHEN", help="Only lines from then on: 10m, 2h, 1d, or a timestamp.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON lines: {instance, line, time}; time is the line's own timestamp or null.",
)
@click.pass_obj
def logs(
    cli: Cli, name: str | None, follow: bool, lines: int | None, since: str | None, as_json: bool
) -> None:
    """Print an instance's log (the agent's stdout and stderr, and eyried's own lines about it), or, with
    no NAME, every instance's log merged, each line prefixed with its instance. Works while eyried is down.

    \b
    Examples:
      eyriectl logs scout-sam
      eyriectl logs scout-sam -n 200
      eyriectl logs scout-sam -f
      eyriectl logs --since 10m
      eyriectl logs -f --json
    """
    start = _since(since) if since is not None else None
    count = _lines_default(lines, start)
    try:
        if name is None:
            _merged(cli, follow, count, start, as_json)
        else:
            _single(cli, name, follow, count, start, as_json)
    except KeyboardInterrupt:
        return
