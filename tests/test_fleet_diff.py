"""Comparing two fleet files the way a reload does."""

from __future__ import annotations

from typing import Any

from supervisor.fleet import FleetFile, diff_fleets


def fleet(*instances: dict[str, Any], **extra: Any) -> FleetFile:
    return FleetFile.model_validate({"version": 1, "instances": list(instances), **extra})


class TestDiffFleets:
    def test_first_load_adds_everything(self) -> None:
        """With no previous file, every instance is added."""
        d = diff_fleets(None, fleet({"name": "a"}, {"name": "b"}))
        assert d.added == ("a", "b") and d.changed

    def test_identical(self) -> None:
        """The same file twice: everything unchanged, nothing to do."""
        d = diff_fleets(fleet({"name": "a"}), fleet({"name": "a"}))
        assert d.unchanged == ("a",) and not d.changed

    def test_each_kind(self) -> None:
        """Added, removed, process-changed, policy-changed and unchanged are told apart per instance."""
        old = fleet({"name": "keep"}, {"name": "gone"}, {"name": "proc"}, {"name": "pol"})
        new = fleet(
            {"name": "keep"},
            {"name": "proc", "model": "other"},
            {"name": "pol", "restart": {"max_retries": 2}},
            {"name": "new"},
        )
        d = diff_fleets(old, new)
        assert d.added == ("new",)
        assert d.removed == ("gone",)
        assert d.process_changed == ("proc",)
        assert d.policy_changed == ("pol",)
        assert d.unchanged == ("keep",)

    def test_process_and_policy_is_process(self) -> None:
        """A change to both process and policy keys needs a restart."""
        d = diff_fleets(
            fleet({"name": "a"}), fleet({"name": "a", "env": {"X": "1"}, "health": {"interval": 1}})
        )
        assert d.process_changed == ("a",) and d.policy_changed == ()

    def test_defaults_change_reaches_instances(self) -> None:
        """Changing ``defaults`` changes the policy of every instance that does not override it."""
        old = fleet({"name": "a"}, {"name": "b", "health": {"interval": 5}})
        new = fleet(
            {"name": "a"}, {"name": "b", "health": {"interval": 5}}, defaults={"health": {"interval": 1}}
        )
        d = diff_fleets(old, new)
        assert d.policy_changed == ("a",) and d.unchanged == ("b",)

    def test_framework_override_restarts_its_instances(self) -> None:
        """A changed ``frameworks:`` entry restarts only the instances on that framework."""
        old = fleet({"name": "a", "framework": "zeroclaw"}, {"name": "b"})
        new = fleet(
            {"name": "a", "framework": "zeroclaw"},
            {"name": "b"},
            frameworks={"zeroclaw": {"command": ["/opt/zeroclaw", "daemon"]}},
        )
        d = diff_fleets(old, new)
        assert d.process_changed == ("a",) and d.unchanged == ("b",)

    def test_autostart_is_policy(self) -> None:
        """Enabling or disabling applies without a restart."""
        d = diff_fleets(fleet({"name": "a"}), fleet({"name": "a", "autostart": False}))
        assert d.policy_changed == ("a",)

    def test_reordering_is_no_change(self) -> None:
        """Moving instances around in the file changes nothing."""
        d = diff_fleets(fleet({"name": "a"}, {"name": "b"}), fleet({"name": "b"}, {"name": "a"}))
        assert not d.changed and set(d.unchanged) == {"a", "b"}
