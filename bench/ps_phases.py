"""Where each ``eyriectl ps`` of a run spent its time, from both ends: reads what `bench/_ps_probe` wrote
(one JSON line per process: the daemon, the timing loop, each ``eyriectl``) and joins each ``eyriectl`` with
its connection in the daemon by its pid (the daemon saw it as the socket's peer).

    .venv/bin/python -m bench.storm_bench --phases /tmp/ps.jsonl ...   # prints this at its end
    .venv/bin/python -m bench.ps_phases /tmp/ps.jsonl [--from T --to T] [--slowest 5]

The phases, in order, each from the end of the one before (ms):

- ``exec``: the timing loop's fork/exec until the interpreter ran its site hook;
- ``entry``: the entry point's imports until the quick path starts;
- ``imports``: the quick path's own imports until it dials;
- ``connect``: dialling (abstract socket, pid check, the socket file);
- ``send``: the request written;
- ``queued``: request sent until the daemon's listing starts (the loop's other work, the accept);
- ``listing``: the daemon building the rows (its main thread's CPU time in it, and the time of its looks
  at the fleet file and the config hashes: more wall than CPU is time the listing waited, for a worker
  thread, for the loop or for a core);
- ``body``: the body encoded and handed to the socket;
- ``read``: until the client has the whole body (the daemon's remaining writes and the client's reads);
- ``parse``: the JSON parsed;
- ``render``: the table built; ``write``: printed; ``exit``: until the timing loop saw the process end.

Garbage collections and heap settlings of the daemon inside a run's window are named beside it.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "report", "runs"]

PHASES = (
    "exec",
    "entry",
    "imports",
    "connect",
    "send",
    "queued",
    "listing",
    "body",
    "read",
    "parse",
    "render",
    "write",
    "exit",
)

Marks = list[tuple[str, float, Any]]


def _first(marks: Marks, name: str, after: float = 0.0, detail: object = None) -> float | None:
    for mark, at, value in marks:
        if mark == name and at >= after and (detail is None or value == detail):
            return at
    return None


def _load(path: str) -> tuple[Marks, Marks, dict[int, Marks]]:
    daemon: Marks = []
    timer: Marks = []
    clis: dict[int, Marks] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        marks: Marks = [(str(m[0]), float(m[1]), m[2]) for m in record["marks"]]
        if record["role"] == "daemon":
            daemon += marks
        elif record["role"] == "timer":
            timer += marks
        else:
            clis[record["pid"]] = marks
    daemon.sort(key=lambda m: m[1])
    return daemon, timer, clis


def _spawns(timer: Marks) -> dict[int, tuple[float, float | None]]:
    """Child pid → (the timing loop's spawn began, its run ended)."""
    found: dict[int, tuple[float, float | None]] = {}
    spawn_at = 0.0
    for i, (name, at, detail) in enumerate(timer):
        if name == "timer.spawn":
            spawn_at = at
        elif name == "timer.spawned":
            done = next((a for n, a, _ in timer[i:] if n == "timer.run.end"), None)
            found[int(detail)] = (spawn_at, done)
    return found


_NAN = float("nan")

_CLIENT_MARKS = {
    "site": "cli.site",
    "quick": "cli.quick.start",
    "dial": "cli.connect.start",
    "dialled": "cli.connect.end",
    "sent": "cli.request.end",
    "read": "cli.body.end",
    "parsed": "cli.get.end",
}


def _since(later: float | None, earlier: float | None) -> float:
    return later - earlier if later is not None and earlier is not None else _NAN


def runs(path: str) -> list[dict[str, Any]]:
    """One dict per ``eyriectl ps`` the timing loop ran: its start, each phase in ms, the daemon's
    collections and settlings inside it."""
    daemon, timer, clis = _load(path)
    spawns = _spawns(timer)
    times = [at for _, at, _ in daemon]
    found = []
    for pid, marks in clis.items():
        if pid not in spawns:
            continue
        at = {key: _first(marks, name) for key, name in _CLIENT_MARKS.items()}
        if any(value is None for value in at.values()):
            continue
        client = {key: value for key, value in at.items() if value is not None}
        spawn, done = spawns[pid]
        rendered = _first(marks, "cli.render.end") or client["parsed"]
        written = _first(marks, "cli.write.end") or rendered
        finish = done if done is not None else _first(marks, "cli.exit") or written
        accepted = next((t for name, t, d in daemon if name == "conn.accepted" and d == pid), None)
        start = _first(daemon, "listing.start", after=accepted or client["sent"])
        end = _first(daemon, "listing.end", after=start or client["sent"])
        body_end = _first(daemon, "listing.body.end", after=end or client["sent"])
        phases = {
            "exec": client["site"] - spawn,
            "entry": client["quick"] - client["site"],
            "imports": client["dial"] - client["quick"],
            "connect": client["dialled"] - client["dial"],
            "send": client["sent"] - client["dialled"],
            "queued": _since(start, client["sent"]),
            "listing": _since(end, start),
            "body": _since(body_end, end),
            "read": client["read"] - (body_end or client["sent"]),
            "parse": client["parsed"] - client["read"],
            "render": rendered - client["parsed"],
            "write": written - rendered,
            "exit": finish - written,
        }
        lo, hi = bisect.bisect_left(times, spawn), bisect.bisect_right(times, finish)
        events = [
            f"{name} {detail}" if name.startswith("gc.") else name
            for name, _, detail in daemon[lo:hi]
            if name in ("gc.start", "settle.start")
        ]
        found.append(
            {
                "pid": pid,
                "at": spawn,
                "total": (finish - spawn) * 1000,
                "phases": {k: v * 1000 for k, v in phases.items()},
                "listing_cpu": _cpu(daemon, start, end) * 1000,
                "fleet": _span(daemon, "listing.fleet_file", start, end) * 1000,
                "hashes": _span(daemon, "listing.config_hashes", start, end) * 1000,
                "daemon_events": events,
            }
        )
    return sorted(found, key=lambda run: float(run["at"]))


def _cpu(marks: Marks, start: float | None, end: float | None) -> float:
    """The daemon's main-thread CPU seconds between a listing's start and end marks."""
    began = next((d for n, at, d in marks if n == "listing.start" and at == start), None)
    ended = next((d for n, at, d in marks if n == "listing.end" and at == end), None)
    return (ended - began) if isinstance(began, float) and isinstance(ended, float) else float("nan")


def _span(marks: Marks, name: str, start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 0.0
    began = _first(marks, name + ".start", after=start)
    ended = _first(marks, name + ".end", after=began or start)
    return (ended - began) if began is not None and ended is not None and ended <= end else 0.0


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def _line(run: dict[str, Any]) -> str:
    parts = " ".join(f"{k} {v:.0f}" for k, v in run["phases"].items())
    extra = (
        f" (listing: CPU {run['listing_cpu']:.0f} of it; fleet file {run['fleet']:.0f}, "
        f"hashes {run['hashes']:.0f})"
    )
    events = f"; daemon: {', '.join(run['daemon_events'])}" if run["daemon_events"] else ""
    return f"{run['total']:7.0f} ms = {parts}{extra}{events}"


def report(
    path: str, windows: Sequence[tuple[float, float]] = (), slowest: int = 5, title: str = "ps"
) -> None:
    """Print each phase's p50 / p95 / max over the runs (inside ``windows`` when given) and the slowest
    runs phase by phase."""
    found = runs(path)
    if windows:
        found = [r for r in found if any(lo <= r["at"] <= hi for lo, hi in windows)]
    if not found:
        print(f"{title}: no run of eyriectl ps recorded with its phases in {path}")
        return
    print(f"\nwhere each eyriectl ps went, {title} ({len(found)} runs; ms: p50 / p95 / max):")
    for phase in PHASES:
        values = [r["phases"][phase] for r in found]
        print(f"  {phase:8} {_pct(values, 0.5):7.1f} {_pct(values, 0.95):7.1f} {max(values):7.1f}")
    totals = [r["total"] for r in found]
    print(f"  {'total':8} {_pct(totals, 0.5):7.1f} {_pct(totals, 0.95):7.1f} {max(totals):7.1f}")
    print(f"the slowest {min(slowest, len(found))}:")
    for run in sorted(found, key=lambda r: -r["total"])[:slowest]:
        print("  " + _line(run))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path")
    parser.add_argument("--from", dest="start", type=float, default=0.0, help="time.monotonic() from")
    parser.add_argument("--to", dest="end", type=float, default=float("inf"))
    parser.add_argument("--slowest", type=int, default=5)
    args = parser.parse_args(argv)
    report(args.path, [(args.start, args.end)], args.slowest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
