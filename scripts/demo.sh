#!/usr/bin/env bash
# Set up .venv, write a demo fleet of three embedded agents into ~/.eyrie-demo, run eyried in the foreground.
# The home lies outside the checkout: a confined agent may read the checkout (the editable install's source),
# and a home inside it would keep the sandbox from granting more than the package directory itself.
# Once up, the commander creates a fourth agent, talon-hopper, through the agent API.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
export EYRIE_HOME="${EYRIE_DEMO_HOME:-$HOME/.eyrie-demo}"
mkdir -p "$EYRIE_HOME"
[ -f "$EYRIE_HOME/fleet.yaml" ] || cp config/fleet.demo.yaml "$EYRIE_HOME/fleet.yaml"
cat <<MSG
Demo home: $EYRIE_HOME   (Ctrl-C stops the fleet and the daemon)
In another terminal:
  export EYRIE_HOME=$EYRIE_HOME
  .venv/bin/eyriectl ps                 # the agents, their pids and ports; talon-hopper was made by
                                        #   commander-ada through the agent API (see fleet.yaml: created_by)
  kill -9 <a pid from ps>               # watch eyried restart it, then: .venv/bin/eyriectl ps
  .venv/bin/eyriectl events -f          # every transition as it happens
MSG
exec .venv/bin/eyried --dev
