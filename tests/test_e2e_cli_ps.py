"""``eyriectl ps`` through the real CLI: the reason an instance keeps failing is shown while it waits in
backoff, not only once it has given up."""

from __future__ import annotations

from pathlib import Path

from tests._cli import eyriectl, ok, ps
from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for

FLAKY = embedded(
    "flaky", 'command: ["false"]\nrestart: {policy: on-failure, initial_delay: 60s, max_retries: 5}'
)


class TestBackoff:
    def test_last_error_shown_in_backoff(self, tmp_path: Path) -> None:
        """An instance waiting to be retried has its last error under the table, and status exits 4."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), FLAKY)) as daemon:
            daemon.wait_running("alpha")
            row = wait_for(
                lambda: ps(tmp_path)["flaky"] if ps(tmp_path)["flaky"]["phase"] == "backoff" else {}
            )
            assert row["last_error"]
            table = ok(eyriectl(tmp_path, "ps")).stdout.splitlines()
            assert f"flaky: {row['last_error']}" in table
            assert not any(line.startswith("alpha: ") for line in table)
            status = eyriectl(tmp_path, "status")
            assert status.returncode == 4 and "  - flaky is " in status.stdout
