"""Run ``eyriectl`` as another user (nobody), whatever directory the checkout lives in.

The checkout's ``.venv`` (and the interpreter it links to) may sit where nobody cannot go: a clone under
``/root`` (mode 0700, Debian's default), or pyenv's interpreters there. Then `eyriectl_as_nobody` copies
what ``eyriectl`` needs (the ``supervisor`` package with its data, and the installed distributions it
requires) into a scratch directory everyone may read, and runs it with an interpreter of the same version
that nobody can run; when there is none, the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import supervisor
from tests._cli import EYRIECTL

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
DISTRIBUTION = "eyrie-supervisor"
_ENTRY = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'eyriectl';"
    " from supervisor.cli.main import main; sys.exit(main())"
)


def as_nobody(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` run as nobody from ``/``, to the end."""
    return subprocess.run(
        [*NOBODY, *argv], capture_output=True, text=True, timeout=60, cwd="/", stdin=subprocess.DEVNULL
    )


@contextlib.contextmanager
def eyriectl_as_nobody() -> Iterator[tuple[str, ...]]:
    """The command line (``setpriv`` included) that runs ``eyriectl`` as nobody, for the block."""
    direct = (*NOBODY, str(EYRIECTL))
    if as_nobody([str(EYRIECTL), "--version"]).returncode == 0:
        yield direct
        return
    python = _interpreter_for_nobody()
    if python is None:
        pytest.skip(
            f"no Python {sys.version_info.major}.{sys.version_info.minor} that user nobody may run"
            f" ({sys.executable} links to {os.path.realpath(sys.executable)})"
        )
    with tempfile.TemporaryDirectory(prefix="eyrie-nobody-") as scratch:
        lib = Path(scratch) / "lib"
        _copy_installation(lib)
        for path in (Path(scratch), *lib.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        argv = (python, "-I", "-c", _ENTRY, str(lib))
        check = as_nobody([*argv, "--version"])
        if check.returncode != 0:
            pytest.skip(f"eyriectl copied to {lib} does not run as nobody: {check.stderr.strip()[-300:]}")
        yield (*NOBODY, *argv)


def _interpreter_for_nobody() -> str | None:
    """An interpreter of this Python's version that nobody may run (compiled modules need the same one)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for python in dict.fromkeys(candidates):
        probe = as_nobody([python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return python
    return None


def _copy_installation(lib: Path) -> None:
    """The ``supervisor`` package (with ``config/`` and ``units/`` as installed data) and every distribution
    ``eyrie-supervisor`` requires, copied into ``lib``."""
    package = Path(supervisor.__file__).parent
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(package, lib / "supervisor", ignore=ignore)
    for data in ("config", "units"):
        if not (lib / "supervisor" / "_data" / data).is_dir():
            shutil.copytree(package.parent / data, lib / "supervisor" / "_data" / data, ignore=ignore)
    for dist in _required_distributions():
        for file in dist.files or []:
            parts = Path(file).parts
            if (
                ".." in parts
                or "__pycache__" in parts
                or file.name.endswith(".pth")
                or "__editable__" in file.name
            ):
                continue
            source = Path(str(dist.locate_file(file)))
            target = lib / file
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def _is_editable_hook(name: str) -> bool:
    """A file that points an editable install at the checkout (the copy carries the package itself)."""
    return name.endswith(".pth") or "__editable__" in name


def _required_distributions() -> list[importlib.metadata.Distribution]:
    """``eyrie-supervisor`` and what it requires, recursively, extras left out."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [DISTRIBUTION]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        dist = importlib.metadata.distribution(name)
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())
