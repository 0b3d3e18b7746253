"""Render ``units/eyried.service`` into a unit file, escaping every value the way systemd parses it.

Paths come from the user (``--home``) and from where the package was installed, so they may hold spaces,
``%``, ``$``, quotes or backslashes. Each value is validated first (absolute path; no control characters,
since a newline would start a new directive; no quotes or backslashes in the program path, which systemd
refuses there) and then quoted for its directive (systemd.syntax(7), systemd.service(5)):

- ``ExecStart=`` words are double-quoted with C escapes for ``\\`` and ``"``; ``%`` becomes ``%%``
  (specifiers) and ``$`` becomes ``$$`` (environment substitution). Substitution applies to the arguments,
  not to the program path, so a path holding ``$`` is given with the ``@`` prefix and argv[0] as its own,
  escaped word.
- ``Environment=`` assignments are double-quoted with the same C escapes and ``%%``; systemd does not
  expand ``$`` there.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from supervisor._resources import data_dir
from supervisor.errors import UnitValueError

__all__ = [
    "STOP_MARGIN",
    "UNIT_MARKER",
    "UNIT_NAME",
    "UnitValueError",
    "render_unit",
    "served_home",
    "unit_template",
]

UNIT_NAME = "eyried.service"
"""The default home's unit (any other home's is named by `supervisor.systemd.names`), and the template's
file name; before each home had its own unit, every home installed this one."""
UNIT_MARKER = "# Rendered by `eyriectl install`"
"""First line of every rendered unit: how ``uninstall`` and ``doctor`` recognise a file they may own."""

STOP_MARGIN = 15.0
"""Seconds added to the longest instance stop timeout: the daemon stops every instance in parallel, then waits
for each tree to be gone and its port free."""

BASE_ENV: Mapping[str, str] = MappingProxyType({"PYTHONUNBUFFERED": "1"})
"""Always in the unit: log lines reach the journal as they are written."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_ENV: Mapping[str, str] = MappingProxyType({})


def unit_template() -> str:
    """The shipped template (``units/eyried.service``)."""
    return (data_dir("units") / UNIT_NAME).read_text()


def render_unit(
    *,
    eyried: Path,
    home: Path,
    stop_timeout: float,
    watchdog_sec: float = 30,
    extra_env: Mapping[str, str] = _NO_ENV,
) -> str:
    """The text of ``eyried.service`` for this install.

    ``eyried`` and ``home`` must be absolute; ``stop_timeout`` is the longest instance stop timeout in seconds
    (``TimeoutStopSec`` is that rounded up plus `STOP_MARGIN`); ``watchdog_sec`` 0 turns the watchdog off.
    Raises `UnitValueError` for anything systemd would misread.
    """
    exe = _checked_path("eyried path", eyried)
    if any(c in exe for c in "\"'\\"):
        raise UnitValueError(
            f"eyried path {exe!r} holds a quote or backslash, which systemd refuses in a program path"
        )
    home_dir = _checked_path("home", home)
    if not math.isfinite(stop_timeout) or stop_timeout < 0:
        raise UnitValueError(f"stop timeout must be a number of seconds >= 0, not {stop_timeout!r}")
    if not math.isfinite(watchdog_sec) or watchdog_sec < 0:
        raise UnitValueError(f"watchdog interval must be a number of seconds >= 0, not {watchdog_sec!r}")
    env = {**BASE_ENV, **extra_env}
    lines = [f"Environment={_env_assignment(name, value)}" for name, value in sorted(env.items())]
    return unit_template().format(
        description_home=home_dir.replace("%", "%%"),
        exec_start=_exec_start(exe, ["--home", home_dir]),
        timeout_stop_sec=f"{math.ceil(stop_timeout + STOP_MARGIN)}s",
        watchdog_sec=_timespan(watchdog_sec),
        environment="\n".join(lines),
    )


def served_home(text: str) -> Path | None:
    """The ``--home`` of a unit `render_unit` wrote (this release or an older one); None for any other."""
    if not text.startswith(UNIT_MARKER):
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(line.removeprefix("ExecStart="))
            except ValueError:
                return None
            words = [word.replace("%%", "%").replace("$$", "$") for word in words]
            if "--home" in words[:-1]:
                return Path(words[words.index("--home") + 1])
    return None


def _checked_path(what: str, path: Path) -> str:
    text = str(path)
    _check_text(what, text)
    if not path.is_absolute():
        raise UnitValueError(f"{what} must be an absolute path, not {text!r}")
    return text


def _check_text(what: str, text: str) -> None:
    bad = next((c for c in text if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise UnitValueError(
            f"{what} {text!r} contains the control character {bad!r}; a unit file cannot hold it safely"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnitValueError(f"{what} {text!r} is not valid UTF-8") from None


def _quote(value: str) -> str:
    """A double-quoted systemd word: C escapes for backslash and quote, ``%%`` for a literal percent."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def _exec_start(exe: str, args: list[str]) -> str:
    words = [_quote(arg.replace("$", "$$")) for arg in args]
    if "$" in exe:
        # The path is not env-substituted but argv[0] is: give argv[0] its own, escaped word.
        return " ".join([_quote("@" + exe), _quote(exe.replace("$", "$$")), *words])
    return " ".join([_quote(exe), *words])


def _env_assignment(name: str, value: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise UnitValueError(f"environment variable name {name!r} is invalid (use letters, digits and _)")
    _check_text(f"environment variable {name}", value)
    return _quote(f"{name}={value}")


def _timespan(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{math.ceil(seconds * 1000)}ms"
