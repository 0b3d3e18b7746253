"""What eyried owns in an instance directory is opened without following a symlink: a link an agent (or
anyone) plants there is refused, and the file it points at is neither read nor changed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from supervisor._fs import locked
from supervisor.errors import ProvisionError
from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from tests._cli import eyriectl


class TestNoFollow:
    def test_lock_file_symlink_is_refused(self, tmp_path: Path) -> None:
        """A per-instance ``.lock`` replaced by a symlink is not opened (nor created at its target)."""
        target = tmp_path / "elsewhere"
        os.symlink(target, tmp_path / ".lock")
        with pytest.raises(OSError) as info, locked(tmp_path / ".lock"):
            pass
        assert info.value.errno == errno.ELOOP
        assert not target.exists()

    def test_logs_refuses_a_symlinked_log(self, home: Home, tmp_path: Path) -> None:
        """`eyriectl logs` on a log replaced by a symlink says so and prints nothing of the target."""
        inst = Provisioner(Store(home), home).provision(CreateRequest(name="alpha", framework="embedded"))
        secret = tmp_path / "not-a-log"
        secret.write_text("private text\n")
        os.symlink(secret, Store(home).dir(inst.id) / "logs" / "embedded.log")
        result = eyriectl(home.root, "logs", "alpha")
        assert result.returncode == 1 and "is a symlink" in result.stderr
        assert "private text" not in result.stdout

    def test_layout_dirs_planted_as_symlinks_are_refused(self, home: Home, tmp_path: Path) -> None:
        """An instance whose tmp/ is a symlink does not get it followed when eyried completes its layout."""
        store = Store(home)
        provisioner = Provisioner(store, home)
        inst = provisioner.provision(CreateRequest(name="alpha", framework="embedded"))
        tmp = store.dir(inst.id) / "tmp"
        tmp.rmdir()
        os.symlink(tmp_path, tmp)
        with pytest.raises(ProvisionError, match="is not a directory"):
            provisioner.ensure_layout(inst.id)
