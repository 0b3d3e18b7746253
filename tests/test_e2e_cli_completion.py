"""Shell completion through click's own protocol, run as the shell runs it: the real eyriectl with
``_EYRIECTL_COMPLETE`` and ``COMP_WORDS``/``COMP_CWORD`` set, instance names read from fleet.yaml."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests._cli import EYRIECTL
from tests._daemon import embedded, fleet_yaml

FLEET = fleet_yaml(embedded("alpha"), embedded("alpine"), embedded("beta"))
NAMED = ["start", "stop", "restart", "remove", "enable", "disable", "logs", "status"]


def complete(home: Path, words: str, *, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """What eyriectl answers the shell for the command line ``words`` (the cursor after its last word)."""
    env = {
        **os.environ,
        "_EYRIECTL_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": f"eyriectl --home {home} {words}",
        "COMP_CWORD": str(len(words.split(" ")) + 2),
    }
    return subprocess.run(
        [str(EYRIECTL)], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def bash_values(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0 and result.stderr == "", result
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


class TestInstanceNames:
    @pytest.mark.parametrize("command", NAMED)
    def test_names_complete_from_the_fleet_file(self, tmp_path: Path, command: str) -> None:
        """Each command that takes instance names completes the declared ones that match the prefix."""
        (tmp_path / "fleet.yaml").write_text(FLEET)
        assert bash_values(complete(tmp_path, f"{command} al")) == ["alpha", "alpine"]
        assert bash_values(complete(tmp_path, f"{command} ")) == ["alpha", "alpine", "beta"]

    def test_zsh_gets_the_names_too(self, tmp_path: Path) -> None:
        """zsh's protocol (type, value, help lines) carries the same names."""
        (tmp_path / "fleet.yaml").write_text(FLEET)
        result = complete(tmp_path, "stop b", shell="zsh")
        assert result.returncode == 0 and result.stdout.splitlines() == ["plain", "beta", "_"]

    def test_commands_complete(self, tmp_path: Path) -> None:
        """The command names complete as well (click's own completion of the group)."""
        assert bash_values(complete(tmp_path, "sta")) == ["start", "status"]

    @pytest.mark.parametrize(
        "text",
        [
            "version: 1\ninstances: [unterminated\n",
            'version: 1\ninstances:\n  - name: "\\e]0;pwned\\a"\n    framework: embedded\n',
            "a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" * 3,
            "[" * 10000,
        ],
        ids=["syntax-error", "escape-in-name", "alias-bomb", "deep-nesting"],
    )
    def test_a_broken_or_hostile_fleet_file_completes_nothing(self, tmp_path: Path, text: str) -> None:
        """A fleet file that does not load completes nothing, quietly: no traceback in the shell."""
        (tmp_path / "fleet.yaml").write_text(text)
        assert bash_values(complete(tmp_path, "start ")) == []

    def test_no_fleet_file_completes_nothing(self, tmp_path: Path) -> None:
        """A home without fleet.yaml completes nothing."""
        assert bash_values(complete(tmp_path, "logs ")) == []


class TestScripts:
    @pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
    def test_each_shell_gets_its_script(self, shell: str) -> None:
        """``_EYRIECTL_COMPLETE={shell}_source eyriectl`` prints the script the README tells users to load."""
        env = {**os.environ, "_EYRIECTL_COMPLETE": f"{shell}_source"}
        result = subprocess.run([str(EYRIECTL)], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "_EYRIECTL_COMPLETE" in result.stdout
