"""What each import of the daemon's start-up adds to its memory, in a fresh process; JSON on stdout.

    python -m bench._import_memory rss      # VmRSS / RssAnon after each step (the libraries, then eyrie's)
    python -m bench._import_memory traced   # tracemalloc: live bytes of ``import supervisor.daemon.main``

``traced`` charges each live block to the module whose code made it: the innermost module of eyrie's own or
the module being imported, whichever is nearer (a pydantic model's schema is its module's, as its class
statement made it), libraries by top-level package; code objects loaded by the import machinery apart.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
import tracemalloc
from pathlib import Path

STEPS = ["anyio", "click", "pydantic", "ruamel.yaml", "structlog", "supervisor.daemon.main"]
_IMPORTING = "<frozen importlib._bootstrap"
_SHARED_TABLE = 256 * 1024
_TABLE = "a single block of an interpreter-wide table, grown meanwhile"
"""A block this big is a table of the whole interpreter (the interned strings') that grew while some import
ran, charged to none."""


def status() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0])
    return found


def rss_steps() -> list[dict[str, object]]:
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # as eyried holds it out
    gc.disable()
    steps: list[dict[str, object]] = [{"step": "the interpreter", **status()}]
    for name in STEPS:
        importlib.import_module(name)
        if name == "pydantic":
            import pydantic

            class _First(pydantic.BaseModel):  # the first model brings pydantic's plugin loader
                name: str

        steps.append({"step": name, **status()})
    return steps


def _module(path: str) -> str:
    if "/supervisor/" in path:
        return "supervisor." + path.rsplit("/supervisor/", 1)[1].removesuffix(".py").replace("/", ".")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return "the standard library"


def group(frames: list[tracemalloc.Frame]) -> str:
    """The module a block is charged to; ``frames`` from the most recent outwards."""
    for i, frame in enumerate(frames):
        if frame.filename.startswith(_IMPORTING):
            if i == 0 or frames[i - 1].filename.startswith(_IMPORTING):
                return "code objects (every module's, as loaded)"
            return _module(frames[i - 1].filename)
        if "/supervisor/" in frame.filename:
            return _module(frame.filename)
    return "(outside any import)"


def _bytecode() -> dict[str, int]:
    """Bytes of the compiled files loaded: eyrie's, and everything else's."""
    sizes = {"eyrie": 0, "the rest": 0}
    for module in list(sys.modules.values()):
        cached = getattr(module, "__cached__", None)
        if cached and Path(cached).is_file():
            key = "eyrie" if module.__name__.startswith("supervisor") else "the rest"
            sizes[key] += Path(cached).stat().st_size
    return sizes


def traced() -> dict[str, int]:
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    gc.disable()
    tracemalloc.start(60)
    import supervisor.daemon.main  # noqa: F401

    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    totals: dict[str, int] = {}
    for name, size in _bytecode().items():
        totals[f"(bytecode files of {name}, for scale)"] = size
    for trace in snapshot.traces:
        big = trace.size >= _SHARED_TABLE
        key = _TABLE if big else group(list(reversed(trace.traceback)))
        totals[key] = totals.get(key, 0) + trace.size
    return totals


if __name__ == "__main__":
    print(json.dumps(rss_steps() if sys.argv[1:] == ["rss"] else traced()))
