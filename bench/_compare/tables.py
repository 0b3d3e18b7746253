"""The printed tables: one per N with eyried / anchor ratios, the growth of each figure across N, floors."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FIGURES", "MANAGERS", "Figure", "Results", "floors_table", "growth_table", "size_table"]

MANAGERS = ("eyried", "supervisord", "systemd")

Results = dict[str, dict[int, dict[str, float]]]
"""manager → N → figure key → value."""


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    digits: int


FIGURES = (
    Figure("start", "start, already provisioned: all N exec'd", "s", 2),
    Figure("first_start", "first start, provisioning all N (fresh home)", "s", 2),
    Figure("rss", "manager RSS, idle", "MiB", 1),
    Figure("idle_cpu", "idle CPU, % of one core", "%", 3),
    Figure("respawn_p50", "crash → respawned (exec'd) p50", "ms", 1),
    Figure("respawn_p95", "crash → respawned (exec'd) p95", "ms", 1),
    Figure("respawn_missed", "kills with no respawn within 10 s", "", 0),
    Figure("confined_p50", "confined (default sandbox): crash → respawned p50", "ms", 1),
    Figure("confined_p95", "confined (default sandbox): crash → respawned p95", "ms", 1),
    Figure("adoption", "SIGKILL manager → new one exec'd → all adopted", "s", 2),
    Figure("adoption_cli", "  the same as seen by the CLI (launch → `ps` shows all)", "s", 2),
    Figure("adoption_restarts", "  instances restarted by the adoption", "", 0),
    Figure("reload_same", "reload, no change (round trip)", "ms", 1),
    Figure("reload_one", "reload, one instance changed (round trip)", "ms", 1),
    Figure("reload_one_restarted", "  instances restarted by it", "", 0),
    Figure("stop", "stop of the whole fleet: command → all children gone", "s", 2),
    Figure("stop_cli", "  the same by `eyriectl stop --all` (its start-up included)", "s", 2),
    Figure("storm_all_back", "crash storm: all back", "ms", 1),
    Figure("storm_p95", "crash storm: p95 of each one's respawn", "ms", 1),
    Figure("storm_missing", "crash storm: never came back", "", 0),
    Figure("storm_ps_p50", "`eyriectl ps` during the storm p50", "ms", 1),
    Figure("storm_ps_p95", "`eyriectl ps` during the storm p95", "ms", 1),
    Figure("storm_ps_runs", "  `ps` runs during the storm", "", 0),
    Figure("storm_events_missed", "respawns missing from an SSE client's events", "", 0),
)


def _cell(value: float | None, figure: Figure) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "n/a"
    unit = f" {figure.unit}" if figure.unit and figure.unit != "%" else figure.unit
    return f"{value:.{figure.digits}f}{unit}"


def _ratio(mine: float | None, anchor: float | None) -> str:
    if mine is None or anchor is None or math.isnan(mine) or math.isnan(anchor) or anchor == 0:
        return "—"
    return f"{mine / anchor:.2f}×"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def size_table(results: Results, n: int, managers: list[str]) -> list[str]:
    """One N: a column per manager, then eyried / each anchor."""
    anchors = [m for m in managers if m != "eyried"]
    ratios = [f"eyried / {a}" for a in anchors] if "eyried" in managers else []
    lines = [_row(["figure", *managers, *ratios]), _row(["---"] * (1 + len(managers) + len(ratios)))]
    for figure in FIGURES:
        values = {m: results.get(m, {}).get(n, {}).get(figure.key) for m in managers}
        if all(v is None for v in values.values()):
            continue
        cells = [_cell(values[m], figure) for m in managers]
        if ratios:
            cells += [_ratio(values["eyried"], values[a]) if figure.unit else "—" for a in anchors]
        lines.append(_row([figure.label, *cells]))
    return lines


def growth_table(results: Results, sizes: list[int], managers: list[str]) -> list[str]:
    """Each figure at every N, and how much it grew from the smallest N to the largest."""
    span = f"growth {sizes[0]} → {sizes[-1]} (N ×{sizes[-1] / sizes[0]:.0f})" if len(sizes) > 1 else "growth"
    lines = [
        _row(["manager", "figure", *(f"N={n}" for n in sizes), span]),
        _row(["---"] * (3 + len(sizes))),
    ]
    for manager in managers:
        for figure in FIGURES:
            values = [results.get(manager, {}).get(n, {}).get(figure.key) for n in sizes]
            if all(v is None for v in values) or not figure.unit:
                continue
            first, last = values[0], values[-1]
            growth = _ratio(last, first) if len(sizes) > 1 else "—"
            lines.append(_row([manager, figure.label, *(_cell(v, figure) for v in values), growth]))
    return lines


def floors_table(floors: list[tuple[str, float]]) -> list[str]:
    lines = [_row(["floor", "median"]), _row(["---", "---"])]
    lines += [_row([label, f"{ms:.2f} ms"]) for label, ms in floors]
    return lines
