"""A listing learns which config files changed from the kernel (`supervisor.daemon._file_watch`) rather than
from a ``stat`` of each: what it tells must be at least what the file's size, inode and mtime told."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.daemon._file_watch import FileWatch
from supervisor.daemon._statcache import StatCache
from tests._cli import ps
from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for


def _write_keeping_mtime(path: Path, text: str) -> None:
    """Rewrite ``path`` in place with as many bytes, then put its mtime back: a stat cannot tell."""
    before = path.stat()
    with path.open("r+") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


class TestFileWatch:
    def test_in_place_rename_and_removal_are_reported(self, tmp_path: Path) -> None:
        config = tmp_path / "config.json"
        config.write_text("{}")
        watch = FileWatch()
        assert watch.watch(str(config))
        assert watch.changed() == set()
        assert watch.watched(str(config))
        _write_keeping_mtime(config, "[]")
        assert watch.changed() == {str(config)}
        assert not watch.watched(str(config))
        assert watch.watch(str(config))
        replacement = tmp_path / "config.json.new"
        replacement.write_text("{}")
        replacement.replace(config)
        watch.changed()
        assert not watch.watched(str(config))
        assert watch.watch(str(config))
        config.unlink()
        watch.changed()
        assert not watch.watched(str(config))

    def test_a_missing_file_is_not_vouched_for(self, tmp_path: Path) -> None:
        watch = FileWatch()
        assert not watch.watch(str(tmp_path / "absent"))
        assert not watch.watched(str(tmp_path / "absent"))


class TestStatCacheWithWatch:
    def test_a_change_a_stat_cannot_see_is_computed_again(self, tmp_path: Path) -> None:
        config = tmp_path / "config.json"
        config.write_text("{}")
        cache = StatCache[str](FileWatch())
        cache.refresh()
        assert cache.kept(config) == (False, None)
        assert cache.get(config, config.read_text) == "{}"
        cache.refresh()
        assert cache.kept(config) == (True, "{}")
        _write_keeping_mtime(config, "[]")
        cache.refresh()
        assert cache.kept(config) == (False, None)  # a stat alone would answer "{}" still
        assert cache.get(config, config.read_text) == "[]"
        cache.refresh()
        assert cache.kept(config) == (True, "[]")
        replacement = tmp_path / "config.json.new"
        replacement.write_text("[1]")
        replacement.replace(config)
        cache.refresh()
        assert cache.kept(config) == (False, None)
        assert cache.get(config, config.read_text) == "[1]"

    def test_a_file_created_later_is_seen(self, tmp_path: Path) -> None:
        config = tmp_path / "config.json"
        cache = StatCache[str](FileWatch())
        cache.refresh()
        assert cache.kept(config) == (True, None)
        config.write_text("{}")
        cache.refresh()
        assert cache.kept(config) == (False, None)
        assert cache.get(config, config.read_text) == "{}"


class TestDriftThroughTheDaemon:
    def test_an_edit_only_the_kernel_sees_shows_drift_and_its_undoing_clears_it(self, tmp_path: Path) -> None:
        """A config file rewritten in place with its size and mtime kept shows DRIFT at the next listing;
        written back as it was, the DRIFT goes at the next one."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            d.wait_running("alpha", "beta")
            assert (ps(d.home)["alpha"]["flags"], ps(d.home)["beta"]["flags"]) == ([], [])
            config = Path(d.instance("alpha")["config_path"])
            original = config.read_text()
            _write_keeping_mtime(config, "X" if original[0] != "X" else "Y")
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DRIFT"], [])
            _write_keeping_mtime(config, original[0])
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == ([], [])

    def test_files_edited_after_an_adoption_show_at_its_first_listing(self, tmp_path: Path) -> None:
        """The first listing after an adoption starts from what the adoption read (the fleet file, the hash
        of each config file): a config file and the fleet file edited since show all the same, as DRIFT and
        as a MISSING instance; what nobody edited shows as it is."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            d.kill()
            d.start()

            def adopted() -> bool:
                found = d.instances()
                return all(found[n].get("status_detail") == f"adopted pid {p}" for n, p in pids.items())

            wait_for(adopted, what="both adopted")
            config = Path(d.instance("alpha")["config_path"])
            config.write_text(config.read_text() + " ")
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma")))
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DRIFT"], [])
            assert (rows["alpha"]["pid"], rows["beta"]["pid"]) == (pids["alpha"], pids["beta"])
            assert rows["gamma"]["flags"] == ["MISSING"]
