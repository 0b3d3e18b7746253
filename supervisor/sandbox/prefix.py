"""Where a framework is installed, found from the program it is started with: the real path of the
binary, of a script's shebang interpreter, and of a venv's base interpreter (``pyvenv.cfg``'s ``home``),
so that npm (global or in a project's ``node_modules``), pipx and pyenv installs in the user's home stay
readable and executable."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from pathlib import Path

import supervisor

__all__ = ["install_prefixes"]

_MAX_SHEBANG = 256
_BIN_DIRS = ("bin", "sbin")


def install_prefixes(argv: Sequence[str], search_path: str, protected: Path) -> tuple[str, ...]:
    """The directories an agent started with ``argv`` needs to read and execute, beyond the system's.

    A prefix never holds ``protected`` (the eyrie home): a program in ``~/bin`` gets its own directory,
    not the whole home; nor is it ``/``.
    """
    found: dict[str, None] = {}
    program = _locate(argv[0], search_path) if argv else None
    if program is not None:
        for path in _chain(program, search_path):
            found.setdefault(str(_narrowed((_prefix_of(path), path.parent, path), protected)))
    if _runs_this_package(argv):
        package = Path(supervisor.__file__).resolve().parent
        found.setdefault(str(_narrowed((package.parent, package), protected)))
    return tuple(found)


def _narrowed(candidates: tuple[Path, ...], protected: Path) -> Path:
    """The widest candidate that is neither ``/`` nor holds ``protected``; else the last one."""
    for candidate in candidates:
        if candidate != Path("/") and not protected.is_relative_to(candidate):
            return candidate
    return candidates[-1]


def _locate(program: str, search_path: str) -> Path | None:
    if "/" in program:
        return Path(program).absolute()
    located = shutil.which(program, path=search_path)
    return Path(located) if located else None


def _chain(program: Path, search_path: str) -> list[Path]:
    """The program as named and as resolved, its shebang interpreter's, and a venv's base interpreter."""
    out = [program, program.resolve()]
    interpreter = _shebang(out[1], search_path)
    if interpreter is not None:
        out += [interpreter, interpreter.resolve()]
    for candidate in list(out):
        home = _venv_home(candidate)
        if home is not None:
            out += [home, home.resolve()]
    return out


def _shebang(script: Path, search_path: str) -> Path | None:
    try:
        with script.open("rb") as f:
            head = f.read(_MAX_SHEBANG)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return _locate(names[0], search_path) if names else None
    return Path(words[0])


def _venv_home(program: Path) -> Path | None:
    """The base interpreter's directory of the venv ``program`` lives in (its ``pyvenv.cfg`` says)."""
    cfg = program.parent.parent / "pyvenv.cfg"
    try:
        lines = cfg.read_text(errors="replace").splitlines()[:64]
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(value.strip()) / "python"
    return None


def _prefix_of(path: Path) -> Path:
    """``<p>/bin/x`` → ``<p>``; a file of an npm package → the directory holding its outermost
    ``node_modules`` (its dependencies are hoisted beside it, not inside it)."""
    packages = [ancestor for ancestor in path.parents if ancestor.name == "node_modules"]
    if packages:
        return packages[-1].parent
    parent = path.parent
    return parent.parent if parent.name in _BIN_DIRS else parent


def _runs_this_package(argv: Sequence[str]) -> bool:
    """``python -m supervisor…``: the package may be an editable install, its source outside the venv."""
    for flag, module in itertools.pairwise(argv):
        if flag == "-m" and (module == "supervisor" or module.startswith("supervisor.")):
            return True
    return False
