"""How ``eyriectl`` shows the fleet as text without rich: the ps table and the daemon's status, from the
daemon's JSON as it comes (plain dicts), so that ``ps`` and ``status`` load neither pydantic nor rich.

Every value shown here may come from a process (its name in ``/proc``) or a hand-edited file, so each passes
through `printable` on its way out: no value can send a terminal escape sequence, move the cursor or fake a
line of output. Colour is added on a terminal only, and never when ``NO_COLOR`` is set or ``TERM`` is dumb.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from supervisor.control._desired import not_as_desired

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "PS_COLUMNS",
    "degraded",
    "duration",
    "memory",
    "printable",
    "ps_lines",
    "ps_notes",
    "status_lines",
    "use_colour",
]

PS_COLUMNS = (
    "NAME",
    "FRAMEWORK",
    "ROLE",
    "STATUS",
    "HEALTH",
    "PID",
    "PORT",
    "UPTIME",
    "RESTARTS",
    "CPU",
    "MEM",
    "SANDBOX",
    "FLAGS",
)
_RIGHT = frozenset({"PID", "PORT", "RESTARTS", "CPU", "MEM"})
_SHRINKS = "STATUS"
"""On a narrow terminal only STATUS is shortened; every other cell shows in full."""
_GAP = "  "
_ELLIPSIS = "…"

_BOLD = "1"
_STATUS_STYLE = {"running": "32", "starting": "36", "stopped": "33", "error": "1;31"}
_HEALTH_STYLE = {"healthy": "32", "unhealthy": "31"}
_DASH = "-"
_REAL = (int, float)

_UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}
_UNPRINTABLE_BUT_LINES = {code: text for code, text in _UNPRINTABLE.items() if code not in (0x09, 0x0A)}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character (C0, DEL, C1) and bidirectional override shown as an escape
    (``\\x1b``), so that it reaches the terminal as text; ``lines=True`` keeps newlines and tabs."""
    if text.isprintable():  # none of them is printable: the common case, without a translation
        return text
    return text.translate(_UNPRINTABLE_BUT_LINES if lines else _UNPRINTABLE)


def use_colour(stream: Any) -> bool:
    """Colour for a terminal that wants it (the NO_COLOR convention, and TERM=dumb, turn it off)."""
    return bool(stream.isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def duration(seconds: float | None) -> str:
    """``42s``, ``3m12s``, ``5h04m``, ``2d03h``; a dash when unknown."""
    if not isinstance(seconds, _REAL):
        return _DASH
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def memory(size: int | None) -> str:
    """``980K``, ``312M``, ``1.4G`` (powers of 1024, as ``ps`` and ``top`` count); a dash when unknown."""
    if not isinstance(size, _REAL) or isinstance(size, bool) or size < 0:
        return _DASH
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f}{unit}" if unit == "G" and value < 100 else f"{value:.0f}{unit}"
    return f"{int(size)}B"


def _cpu(percent: float | None) -> str:
    if not isinstance(percent, _REAL) or isinstance(percent, bool):
        return _DASH
    return f"{percent:.1f}%"


def _text(value: object) -> str:
    return printable(value) if isinstance(value, str) and value else _DASH


def _number(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and value else _DASH


def _health(row: Mapping[str, Any]) -> str | None:
    health = row.get("health_status") if row.get("status") else None
    return health if isinstance(health, str) and health and health != "unknown" else None


def _texts(row: Mapping[str, Any]) -> list[str]:
    """One row's cells, in `PS_COLUMNS` order."""
    get = row.get
    status = get("status")
    status_text = _text(status)
    if status and get("status_detail"):
        status_text += f" ({_text(row['status_detail'])})"
    flags = get("flags")
    restarts = get("restart_count", 0)
    return [
        _text(get("name")),
        _text(get("framework")),
        _text(get("hierarchy_role")),
        status_text,
        _text(_health(row)),
        _number(get("pid")),
        _number(get("port")),
        duration(get("uptime_seconds")),
        str(restarts) if isinstance(restarts, int) else _DASH,
        _cpu(get("cpu_percent")),
        memory(get("memory_bytes")),
        _text(get("sandbox")),
        printable(",".join(str(f) for f in flags)) if isinstance(flags, list) and flags else _DASH,
    ]


def _styles(row: Mapping[str, Any], texts: Sequence[str]) -> list[str]:
    """One row's ANSI styles, in `PS_COLUMNS` order ("" for none)."""
    status = row.get("status")
    styles = [""] * len(PS_COLUMNS)
    styles[3] = _STATUS_STYLE.get(status, "") if isinstance(status, str) else ""
    styles[4] = _HEALTH_STYLE.get(_health(row) or "", "")
    styles[11] = "31" if row.get("sandbox") in ("off", "unavailable") else ""
    styles[12] = "35" if texts[12] != _DASH else ""
    return styles


def ps_lines(rows: Sequence[Mapping[str, Any]], *, width: int, colour: bool) -> list[str]:
    """The ps table, one string per line: a header, then one line per instance (``rows`` in the daemon's
    JSON shape). Columns are as wide as their widest cell and two spaces apart; when the table is wider
    than ``width``, STATUS is shortened with an ellipsis."""
    texts = [list(PS_COLUMNS), *map(_texts, rows)]
    widths = [max(map(len, column)) for column in zip(*texts, strict=True)]
    status = PS_COLUMNS.index(_SHRINKS)
    over = sum(widths) + len(_GAP) * (len(widths) - 1) - width
    if over > 0:
        widths[status] = max(len(_SHRINKS), widths[status] - over)
    if colour:
        header = [_BOLD] * len(PS_COLUMNS)
        styles = [header, *(_styles(row, cells) for row, cells in zip(rows, texts[1:], strict=True))]
        return [_styled_line(line, widths) for line in zip(texts, styles, strict=True)]
    # One format per line: at N = 1000 padding each cell on its own was a fifth of ``eyriectl ps``.
    template = _GAP.join(
        f"{{:{'>' if column in _RIGHT else '<'}{size}}}"
        for column, size in zip(PS_COLUMNS, widths, strict=True)
    )
    size = widths[status]
    lines = []
    for cells in texts:
        if len(cells[status]) > size:
            cells[status] = cells[status][: size - 1] + _ELLIPSIS
        lines.append(template.format(*cells).rstrip())
    return lines


def _styled_line(line: tuple[Sequence[str], Sequence[str]], widths: Sequence[int]) -> str:
    cells = []
    for column, text, style, size in zip(PS_COLUMNS, *line, widths, strict=True):
        if len(text) > size:
            text = text[: size - 1] + _ELLIPSIS
        padded = text.rjust(size) if column in _RIGHT else text.ljust(size)
        if style:
            padded = padded.replace(text, f"\x1b[{style}m{text}\x1b[0m", 1)
        cells.append(padded)
    return _GAP.join(cells).rstrip()


def ps_notes(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``name: last error`` for each instance that is failing: in error, not provisioned, or in backoff
    between two attempts (the reason it is waiting)."""
    return [
        printable(f"{row.get('name')}: {row['last_error']}")
        for row in rows
        if isinstance(row.get("last_error"), str)
        and row["last_error"]
        and (row.get("status") in ("error", "") or row.get("phase") == "backoff")
    ]


def degraded(status: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why the fleet is not all well, one reason per line; empty when every instance meant to run is
    running and the last reload applied (`status` then exits 0)."""
    reasons = []
    for row in rows:
        state = row.get("status") or ""
        flags = row.get("flags") or []
        if not_as_desired(state, row.get("desired"), row.get("autostart") is True, flags):
            error = row.get("last_error")
            why = f": {error}" if isinstance(error, str) and error else ""
            reasons.append(printable(f"{row.get('name')} is {state or 'not provisioned'}{why}"))
    last = status.get("last_reload")
    if isinstance(last, Mapping) and last.get("ok") is False:
        reasons.append(printable(f"the last reload was rejected: {last.get('error') or '?'}"))
    return reasons


def _when(text: object) -> str:
    from datetime import datetime  # status only: ps never shows a date

    try:
        return datetime.fromisoformat(str(text)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "?"


def _counted(counts: object) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return ""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def status_lines(status: Mapping[str, Any], problems: Sequence[str] = ()) -> list[str]:
    """The daemon's status (``GET /v1/status``), and ``problems`` (`degraded`) when there are any."""
    lines = [
        f"eyried {_text(status.get('version'))}, pid {status.get('pid')},"
        f" up {duration(status.get('uptime_seconds'))}",
        f"home:        {_text(status.get('home'))}",
        f"fleet file:  {_text(status.get('fleet_file'))}",
        f"instances:   {printable(_counted(status.get('instances')) or 'no instances')}",
        f"agent API:   {printable(str(status.get('agent_api') or 'off'))}",
    ]
    if sandbox := _counted(status.get("sandbox")):
        lines.append(f"sandbox:     {printable(sandbox)}")
    last = status.get("last_reload")
    if isinstance(last, Mapping):
        when = _when(last["at"]) if last.get("at") else "?"
        outcome = "ok" if last.get("ok") else f"rejected: {printable(str(last.get('error') or ''))}"
        lines.append(f"last reload: {when} {outcome}")
    daemon_problems = status.get("problems")
    if isinstance(daemon_problems, list) and daemon_problems:
        lines.append("problems:")
        lines.extend(f"  - {printable(str(p))}" for p in daemon_problems)
    if problems:
        lines.append("degraded:")
        lines.extend(f"  - {p}" for p in problems)
    return lines
