"""Every duration and number in the fleet file has bounds, refused at load with file, line and key."""

from __future__ import annotations

import pytest

from supervisor.errors import FleetFileError
from supervisor.fleet import parse_fleet

# (section path as YAML lines, key, a value below its bound or None, a value above it)
BOUNDED = [
    ("defaults:\n  health:\n", "interval", "0", "1.0e308"),
    ("defaults:\n  health:\n", "timeout", "0", "2h"),
    ("defaults:\n  health:\n", "start_timeout", "0", "1.0e308"),
    ("defaults:\n  health:\n", "failure_threshold", "0", "1000000"),
    ("defaults:\n  restart:\n", "initial_delay", "-1", "1.0e308"),
    ("defaults:\n  restart:\n", "factor", "0.5", "1.0e300"),
    ("defaults:\n  restart:\n", "max_delay", "0", "1.0e308"),
    ("defaults:\n  restart:\n", "jitter", "-0.5", "2"),
    ("defaults:\n  restart:\n", "reset_after", None, "1.0e12"),
    ("defaults:\n  restart:\n", "max_retries", "-1", "1.0e12"),
    ("defaults:\n  restart:\n", "cooldown", None, "1.0e12"),
    ("defaults:\n  logs:\n", "max_bytes", "10", "1.0e30"),
    ("defaults:\n  logs:\n", "backups", "-1", "100000"),
    ("defaults:\n", "stop_timeout", None, "1.0e9"),
]


def error_for(text: str) -> FleetFileError:
    with pytest.raises(FleetFileError) as info:
        parse_fleet(text, path="fleet.yaml")
    return info.value


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for section, key, low, high in BOUNDED:
        for value in (low, high):
            if value is not None:
                cases.append((section, key, value))
    return cases


class TestBoundsInDefaults:
    @pytest.mark.parametrize(("section", "key", "value"), _cases())
    def test_out_of_bounds_refused_at_its_line(self, section: str, key: str, value: str) -> None:
        """A value past a bound is an error at its own line and dotted key, not a crash later."""
        indent = "  " * section.count("\n")
        text = f"version: 1\n{section}{indent}{key}: {value}\ninstances:\n  - name: a\n"
        err = error_for(text)
        dotted = ".".join(line.strip().rstrip(":") for line in section.splitlines())
        assert (err.line, err.key) == (1 + section.count("\n") + 1, f"{dotted}.{key}")

    def test_busy_loop_interval_says_the_range(self) -> None:
        """``health.interval: 0`` (a busy liveness loop) is refused with the allowed range in units."""
        err = error_for("version: 1\ndefaults:\n  health:\n    interval: 0\n")
        assert err.reason == "must be between 100ms and 1d (got 0s)"

    def test_the_limits_themselves_are_accepted(self) -> None:
        """The edges of each range load."""
        text = (
            "version: 1\ndefaults:\n"
            "  health: {interval: 100ms, timeout: 10ms, start_timeout: 24h, failure_threshold: 1000}\n"
            "  restart: {initial_delay: 0, factor: 100, max_delay: 24h, jitter: 1, reset_after: 0,"
            " max_retries: 1000000, cooldown: 168h}\n"
            "  logs: {max_bytes: 1024, backups: 1000}\n"
            "  stop_timeout: 1h\n"
            "instances:\n  - name: a\n"
        )
        fleet = parse_fleet(text, path="fleet.yaml")
        assert fleet.defaults.restart.cooldown == 7 * 24 * 3600


class TestBoundsInOverrides:
    @pytest.mark.parametrize(
        ("block", "key"),
        [
            ("restart:\n      factor: 1.0e300", "restart.factor"),
            ("restart:\n      cooldown: 1.0e12", "restart.cooldown"),
            ("health:\n      interval: 1.0e308", "health.interval"),
            ("health:\n      interval: 0", "health.interval"),
            ("logs:\n      backups: 100000", "logs.backups"),
            ("stop_timeout: 1.0e9", "stop_timeout"),
            ("ready: {kind: process, seconds: 1.0e9}", "ready.seconds"),
            ("ready: {kind: http, expect: 1000}", "ready.expect"),
        ],
    )
    def test_instance_keys_are_bounded_too(self, block: str, key: str) -> None:
        """An instance's own key past a bound is refused at that key of that instance."""
        text = f"version: 1\ninstances:\n  - name: a\n    {block}\n"
        err = error_for(text)
        assert (err.line, err.key) == (3 + block.count("\n") + 1, f"instances[0].{key}")

    def test_framework_definition_is_bounded(self) -> None:
        """A ``frameworks:`` entry's stop_timeout past its bound is refused in that entry."""
        text = (
            "version: 1\nframeworks:\n  notes:\n    command: [x]\n    stop_timeout: 1.0e9\n"
            "instances:\n  - name: a\n    framework: notes\n"
        )
        err = error_for(text)
        assert (err.line, err.key) == (5, "frameworks.notes.stop_timeout")
