"""The eyried unit: rendered from the shipped template, escaped for systemd, verified by systemd itself."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.systemd.unit import STOP_MARGIN, UNIT_MARKER, UnitValueError, render_unit
from tests.sandbox.systemd import UserManager, user_manager

PROGRAM = Path(__file__).parent / "sandbox" / "notify_program.py"
WEIRD_HOME = "ho me %h $HOME ${USER} 'q' \"dq\" \\b ;"
WEIRD_BIN = "bin %p $x ${HOME} ;"


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _stand_in(directory: Path, record: Path) -> Path:
    """An executable named eyried that runs the notify test program, recording the arguments it got."""
    directory.mkdir(parents=True)
    exe = directory / "eyried"
    exe.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(PROGRAM))}"
        f' --record {shlex.quote(str(record))} -- "$@"\n'
    )
    exe.chmod(0o755)
    return exe


class TestRenderUnit:
    def test_directives(self) -> None:
        """Every directive issue 5 asks for is there, with the values asked for."""
        text = render_unit(eyried=Path("/opt/eyrie/bin/eyried"), home=Path("/srv/fleet"), stop_timeout=330)
        assert text.startswith(UNIT_MARKER)
        d = _directives(text)
        assert d["Type"] == ["notify"]
        assert d["NotifyAccess"] == ["main"]
        assert d["ExecStart"] == ['"/opt/eyrie/bin/eyried" "--home" "/srv/fleet"']
        assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
        assert d["Restart"] == ["on-failure"]
        assert d["KillMode"] == ["process"]
        assert d["WatchdogSec"] == ["30s"]
        assert d["TimeoutStopSec"] == [f"{math.ceil(330 + STOP_MARGIN)}s"]
        assert d["WantedBy"] == ["default.target"]
        assert d["Environment"] == ['"PYTHONUNBUFFERED=1"']

    def test_stop_timeout_covers_the_longest_instance_with_a_margin(self) -> None:
        """TimeoutStopSec is the stop timeout rounded up plus the margin; a fractional watchdog is in ms."""
        text = render_unit(eyried=Path("/e"), home=Path("/h"), stop_timeout=2.2, watchdog_sec=2.5)
        d = _directives(text)
        assert d["TimeoutStopSec"] == [f"{math.ceil(2.2 + STOP_MARGIN)}s"]
        assert int(d["TimeoutStopSec"][0][:-1]) >= 2.2 + STOP_MARGIN
        assert d["WatchdogSec"] == ["2500ms"]

    def test_escaping(self) -> None:
        """Quotes, backslashes, % and $ in the home are escaped; a $ in the program path uses the @ form."""
        text = render_unit(
            eyried=Path(f"/x/{WEIRD_BIN}/eyried"), home=Path(f"/h/{WEIRD_HOME}"), stop_timeout=1
        )
        (exec_start,) = _directives(text)["ExecStart"]
        assert exec_start == (
            '"@/x/bin %%p $x ${HOME} ;/eyried" "/x/bin %%p $$x $${HOME} ;/eyried" "--home" '
            '"/h/ho me %%h $$HOME $${USER} \'q\' \\"dq\\" \\\\b ;"'
        )

    def test_extra_env(self) -> None:
        """Extra variables are sorted, quoted and %-escaped; $ stays literal (systemd does not expand it)."""
        text = render_unit(eyried=Path("/e"), home=Path("/h"), stop_timeout=1, extra_env={"B": 'a "b" %c $d'})
        assert _directives(text)["Environment"] == ['"B=a \\"b\\" %%c $d"', '"PYTHONUNBUFFERED=1"']

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"home": Path("/h/a\nExecStartPre=/bin/evil")}, "control character '\\\\n'"),
            ({"home": Path("/h/\ttab")}, "control character"),
            ({"home": Path("/h/\x7f")}, "control character"),
            ({"home": Path("relative/home")}, "home must be an absolute path"),
            ({"eyried": Path("bin/eyried")}, "eyried path must be an absolute path"),
            ({"eyried": Path("/opt/it's/eyried")}, "quote or backslash"),
            ({"eyried": Path("/opt/a\\b/eyried")}, "quote or backslash"),
            ({"stop_timeout": -1.0}, "stop timeout"),
            ({"stop_timeout": math.nan}, "stop timeout"),
            ({"watchdog_sec": math.inf}, "watchdog"),
            ({"extra_env": {"BAD-NAME": "x"}}, "BAD-NAME"),
            ({"extra_env": {"OK": "two\nlines"}}, "environment variable OK"),
            ({"home": Path("/h/\udcff")}, "not valid UTF-8"),
        ],
    )
    def test_refuses_what_systemd_would_misread(self, kwargs: dict[str, object], message: str) -> None:
        """Newlines, control characters, relative paths and other unsafe values are refused, saying why."""
        args: dict[str, object] = {"eyried": Path("/e"), "home": Path("/h"), "stop_timeout": 1.0, **kwargs}
        with pytest.raises(UnitValueError, match=message):
            render_unit(**args)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
class TestVerify:
    def test_systemd_analyze_verify_is_clean(self, tmp_path: Path) -> None:
        """systemd-analyze --user verify finds nothing wrong with a unit whose paths hold spaces, % and $."""
        exe = _stand_in(tmp_path / WEIRD_BIN, tmp_path / "record.jsonl")
        unit = tmp_path / "eyried.service"
        unit.write_text(render_unit(eyried=exe, home=tmp_path / WEIRD_HOME, stop_timeout=30))
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
        result = subprocess.run(
            ["systemd-analyze", "--user", "verify", str(unit)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


@pytest.mark.systemd
class TestRenderedUnitRuns:
    def test_program_gets_the_exact_home_and_reload_sends_sighup(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """Under a real manager the unit starts the program with --home exactly as given; reload works."""
        record = tmp_path / "record.jsonl"
        exe = _stand_in(tmp_path / WEIRD_BIN, record)
        home = tmp_path / WEIRD_HOME
        manager.write_unit("eyried.service", render_unit(eyried=exe, home=home, stop_timeout=1))
        manager.systemctl("daemon-reload")
        manager.systemctl("start", "eyried.service")
        assert manager.is_active("eyried.service") == "active"
        (started,) = [json.loads(line) for line in record.read_text().splitlines()]
        assert started["argv"][-3:] == ["--", "--home", str(home)]
        assert started["pid"] == manager.main_pid("eyried.service")
        manager.systemctl("reload", "eyried.service")
        manager.wait_until(lambda: manager.show("eyried.service", "StatusText") == "reloaded", what="reload")
        manager.systemctl("stop", "eyried.service")
        assert manager.show("eyried.service", "Result") == "success"
