"""The real OpenClaw gateway supervised end to end (see `tests.real._scenario`)."""

from __future__ import annotations

from tests.real._scenario import RealAgentScenario


class TestOpenClaw(RealAgentScenario):
    FRAMEWORK = "openclaw"
