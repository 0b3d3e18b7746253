"""Creating a file of a directory being built: its mode despite the umask, and nothing existing replaced or
followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from supervisor._fs import write_new


class TestWriteNew:
    def test_creates_the_file_with_its_mode_whatever_the_umask(self, tmp_path: Path) -> None:
        """Text or bytes land whole, with the mode asked for even where the umask would remove bits."""
        old = os.umask(0o077)
        try:
            write_new(tmp_path / "a", "text\n", 0o644)
            write_new(tmp_path / "b", b"bytes", 0o600)
        finally:
            os.umask(old)
        assert (tmp_path / "a").read_text() == "text\n" and (tmp_path / "b").read_bytes() == b"bytes"
        assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600

    def test_an_existing_file_is_left_alone(self, tmp_path: Path) -> None:
        """A file already there is an error, and keeps its content."""
        target = tmp_path / "a"
        target.write_text("old")
        with pytest.raises(FileExistsError):
            write_new(target, "new", 0o600)
        assert target.read_text() == "old"

    def test_a_symlink_is_not_followed(self, tmp_path: Path) -> None:
        """A symlink in the file's place is an error; nothing is created where it points."""
        (tmp_path / "a").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(FileExistsError):
            write_new(tmp_path / "a", "new", 0o600)
        assert not (tmp_path / "elsewhere").exists()
