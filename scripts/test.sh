#!/usr/bin/env bash
# Set up .venv with the test tools, then run every check CI runs: lint, types, layers, tests, and (when
# given no arguments) the real-agent tier: OpenClaw and Hermes installed and run (scripts/real_agents.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -m "not real" "$@"
if [ "$#" -eq 0 ]; then
  bash scripts/real_agents.sh
fi
