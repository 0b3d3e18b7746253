"""Process handles on real processes: spawning, exit statuses, pidfd watching, adoption checks, boot id."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from supervisor.engine import AdoptedProcess, ExitStatus, current_boot_id, procfs, spawn
from supervisor.engine._redact import redact_cmdline, secret_values
from supervisor.errors import StartFailed
from supervisor.testing import faulty, wait_for

pytestmark = pytest.mark.anyio

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class TestSpawn:
    async def test_child_runs_in_own_session_with_cwd_and_appends_to_log(self, tmp_path: Path) -> None:
        """The child leads its own session, runs in cwd, reads /dev/null and appends to the log file."""
        log = tmp_path / "logs" / "agent.log"
        log.parent.mkdir()
        log.write_text("kept\n")
        script = "import os, sys; print(os.getcwd(), sys.stdin.read() == ''); sys.exit(4)"
        proc = spawn(("python3", "-c", script), env=ENV, cwd=tmp_path, log_path=log)
        assert proc.pgid == proc.pid == os.getsid(proc.pid)
        status = await proc.wait()
        assert status == ExitStatus(code=4) and status.failed and status.describe() == "exit code 4"
        assert log.read_text() == f"kept\n{tmp_path} True\n"
        assert not proc.alive() and await proc.wait() is status

    async def test_signal_death_and_identity_are_recorded(self, tmp_path: Path) -> None:
        """A killed child reports the signal; start time, ticks and cmdline identify the process."""
        proc = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        assert proc.alive()
        assert proc.cmdline == tuple(faulty())
        assert abs(proc.start_time - psutil.Process(proc.pid).create_time()) < 0.01
        proc.send_signal(signal.SIGKILL)
        status = await proc.wait()
        assert status == ExitStatus(signal=9) and status.describe() == "killed by SIGKILL"
        proc.send_signal(signal.SIGTERM)  # gone: ignored

    def test_missing_program_is_command_not_found(self, tmp_path: Path) -> None:
        """A bare name not on the child's PATH fails before anything is spawned."""
        with pytest.raises(StartFailed, match=r"^openclaw: command not found on PATH$"):
            spawn(
                ("openclaw", "gateway"),
                env={"PATH": str(tmp_path)},
                cwd=tmp_path,
                log_path=tmp_path / "a.log",
            )

    def test_missing_path_and_working_directory_are_named(self, tmp_path: Path) -> None:
        """A missing program path or working directory is said plainly."""
        with pytest.raises(StartFailed, match=r"/nope/agent: no such file$"):
            spawn(("/nope/agent",), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        with pytest.raises(StartFailed, match=r"working directory .*/gone does not exist$"):
            spawn(("true",), env=ENV, cwd=tmp_path / "gone", log_path=tmp_path / "a.log")

    def test_unwritable_log_is_a_failed_start(self, tmp_path: Path) -> None:
        """A log path that cannot be opened fails the start with the reason."""
        (tmp_path / "file").write_text("")
        with pytest.raises(StartFailed, match=r"^cannot open log file .*/file/a.log: "):
            spawn(("true",), env=ENV, cwd=tmp_path, log_path=tmp_path / "file" / "a.log")


class TestAdoptedProcess:
    async def test_same_process_is_adopted_and_watched(self, tmp_path: Path) -> None:
        """A live pid with the recorded start time, cmdline and marker is adopted; its end is seen."""
        env = {**ENV, "EYRIE_INSTANCE_ID": "adoptee"}
        child = spawn(faulty(), env=env, cwd=tmp_path, log_path=tmp_path / "a.log")
        await wait_for(lambda: procfs.read_cmdline(child.pid) != [])  # spawn returns mid-exec
        adopted = AdoptedProcess.adopt(
            child.pid, start_time=child.start_time, cmdline=child.cmdline, marker="adoptee"
        )
        assert adopted is not None and adopted.alive() and adopted.pgid == child.pgid
        child.send_signal(signal.SIGKILL)
        status = await adopted.wait()
        assert status.signal == 9 or status == ExitStatus()
        await child.wait()

    async def test_a_different_process_is_not_adopted(self, tmp_path: Path) -> None:
        """Wrong start time or marker, or a dead pid: not ours, nothing adopted."""
        env = {**ENV, "EYRIE_INSTANCE_ID": "adoptee"}
        child = spawn(faulty(), env=env, cwd=tmp_path, log_path=tmp_path / "a.log")
        try:
            pid, start, cmd = child.pid, child.start_time, child.cmdline
            assert AdoptedProcess.adopt(pid, start_time=start - 60, cmdline=cmd, marker="adoptee") is None
            assert AdoptedProcess.adopt(pid, start_time=start, cmdline=cmd, marker="someone-else") is None
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        assert AdoptedProcess.adopt(pid, start_time=start, cmdline=cmd, marker="adoptee") is None

    async def test_a_retitled_process_is_adopted_by_its_marker(self, tmp_path: Path) -> None:
        """A program that rewrites its process title (OpenClaw shows ``openclaw-gateway``) is still the
        process recorded: its start time and the marker in its environment say so."""
        env = {**ENV, "EYRIE_INSTANCE_ID": "adoptee"}
        log = tmp_path / "a.log"
        child = spawn(faulty("--retitle", "openclaw-gateway"), env=env, cwd=tmp_path, log_path=log)
        try:
            await wait_for(lambda: procfs.read_cmdline(child.pid)[:1] == ["openclaw-gateway"])
            adopted = AdoptedProcess.adopt(
                child.pid, start_time=child.start_time, cmdline=child.cmdline, marker="adoptee"
            )
            assert adopted is not None and adopted.pid == child.pid
            adopted.release()
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()

    async def test_without_a_marker_the_command_line_decides(self, tmp_path: Path) -> None:
        """A process whose environment has no marker (or cannot be read) is ours only if its command line is
        the one recorded."""
        child = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        try:
            await wait_for(lambda: procfs.read_cmdline(child.pid) != [])
            pid, start, cmd = child.pid, child.start_time, child.cmdline
            assert AdoptedProcess.adopt(pid, start_time=start, cmdline=["other"], marker="adoptee") is None
            adopted = AdoptedProcess.adopt(pid, start_time=start, cmdline=cmd, marker="adoptee")
            assert adopted is not None
            adopted.release()
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()


class TestBootId:
    def test_boot_id_comes_from_the_named_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """EYRIE_BOOT_ID_FILE points the boot id elsewhere; by default it is the kernel's."""
        kernel = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        monkeypatch.delenv("EYRIE_BOOT_ID_FILE", raising=False)
        assert current_boot_id() == kernel
        fake = tmp_path / "boot_id"
        fake.write_text("simulated-boot\n")
        monkeypatch.setenv("EYRIE_BOOT_ID_FILE", str(fake))
        assert current_boot_id() == "simulated-boot"
        monkeypatch.setenv("EYRIE_BOOT_ID_FILE", str(tmp_path / "missing"))
        with pytest.raises(StartFailed, match="cannot read the boot id"):
            current_boot_id()


class TestExitStatus:
    def test_descriptions_and_failure(self) -> None:
        """Exit 0 is the only success; an unknown ending counts as a failure."""
        assert not ExitStatus(code=0).failed
        assert ExitStatus(code=1).failed and ExitStatus(signal=15).failed and ExitStatus().failed
        assert ExitStatus().describe() == "exited (status unknown)"
        assert ExitStatus(signal=15).describe() == "killed by SIGTERM"


class TestRedaction:
    def test_secrets_never_reach_the_recorded_cmdline(self) -> None:
        """Values after secret flags, --flag=value forms and known secret values become ***."""
        secrets = secret_values({"EYRIE_AUTH_TOKEN": "s3cr3t-token", "HOME": "/root"})
        cmd = ["gw", "--token", "abc", "--api-key=xyz", "--url=http://u:s3cr3t-token@h", "--port", "1"]
        assert redact_cmdline(cmd, secrets) == [
            "gw",
            "--token",
            "***",
            "--api-key=***",
            "--url=http://u:***@h",
            "--port",
            "1",
        ]
        assert secrets == {"s3cr3t-token"}
