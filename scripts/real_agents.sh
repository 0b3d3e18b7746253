#!/usr/bin/env bash
# The real-agent test tier: install the pinned OpenClaw (with Node from npm's `node` package) and Hermes into a
# cache outside the checkout, then run the tests marked `real` against them.
#
#   bash scripts/real_agents.sh [pytest args]   install what is missing, then run the tier
#   bash scripts/real_agents.sh --install-only  install what is missing and print the cache directory
#
# The cache is $EYRIE_REAL_CACHE (default /var/cache/eyrie-real as root, ~/.cache/eyrie-real otherwise). Each
# program lives in a directory named after its pins and counts as installed once its `.complete` stamp exists,
# so an interrupted install is redone and a pin change installs beside the old one (then removes it). Where the
# registries cannot be reached, the tier is skipped with that reason instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=real-agents.pins
source scripts/real-agents.pins
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/eyrie-real; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/eyrie-real"; fi
cache="${EYRIE_REAL_CACHE:-$default_cache}"
openclaw_dir="$cache/openclaw-$OPENCLAW_VERSION-node-$NODE_VERSION"
hermes_dir="$cache/hermes-$HERMES_VERSION"
python="${PYTHON:-python3}"

log() { printf 'real agents: %s\n' "$*" >&2; }

# Remove the other pins' directories of one program once its current one is complete.
prune() {
  local prefix=$1 keep=$2 dir
  for dir in "$cache/$prefix"-*; do
    [ -d "$dir" ] && [ "$dir" != "$keep" ] && rm -rf "$dir"
  done
  return 0
}

install_openclaw() {
  [ -f "$openclaw_dir/.complete" ] && return 0
  log "installing node@$NODE_VERSION and openclaw@$OPENCLAW_VERSION into $openclaw_dir"
  rm -rf "$openclaw_dir" && mkdir -p "$openclaw_dir"
  printf '{"name": "eyrie-real-openclaw", "private": true}\n' >"$openclaw_dir/package.json"
  # Node first, so that openclaw's own install scripts run on the Node it needs (>= 24), not the system's.
  (cd "$openclaw_dir" && npm install --no-audit --no-fund --save-exact "node@$NODE_VERSION") >"$openclaw_dir/install.log" 2>&1
  (cd "$openclaw_dir" && PATH="$openclaw_dir/node_modules/.bin:$PATH" \
    npm install --no-audit --no-fund --save-exact "openclaw@$OPENCLAW_VERSION") >>"$openclaw_dir/install.log" 2>&1
  local got
  got=$(PATH="$openclaw_dir/node_modules/.bin:$PATH" node --version)
  [ "$got" = "v$NODE_VERSION" ] || { log "node reports $got, not v$NODE_VERSION"; return 1; }
  touch "$openclaw_dir/.complete"
  prune openclaw "$openclaw_dir"
}

install_hermes() {
  [ -f "$hermes_dir/.complete" ] && return 0
  log "installing hermes-agent==$HERMES_VERSION into $hermes_dir"
  rm -rf "$hermes_dir"
  "$python" -m venv "$hermes_dir"
  "$hermes_dir/bin/pip" install --quiet --disable-pip-version-check "hermes-agent==$HERMES_VERSION" \
    >"$hermes_dir/install.log" 2>&1
  [ -x "$hermes_dir/bin/hermes" ] || { log "hermes-agent installed no hermes program"; return 1; }
  touch "$hermes_dir/.complete"
  prune hermes "$hermes_dir"
}

# Whether the registries answer at all: a failed install with reachable registries is a failure, not a skip.
registries_unreachable() {
  local why="" probe
  probe=$(mktemp -d)
  command -v npm >/dev/null 2>&1 || why="npm is not installed"
  if [ -z "$why" ] && ! timeout 60 npm view --fetch-retries=1 --fetch-timeout=15000 \
      "openclaw@$OPENCLAW_VERSION" version >/dev/null 2>&1; then
    why="the npm registry does not answer (npm view openclaw@$OPENCLAW_VERSION)"
  fi
  if [ -z "$why" ] && ! timeout 60 "$python" -m pip download --quiet --no-deps --retries 1 --timeout 15 \
      --dest "$probe" "hermes-agent==$HERMES_VERSION" >/dev/null 2>&1; then
    why="PyPI does not answer (pip download hermes-agent==$HERMES_VERSION)"
  fi
  rm -rf "$probe"
  [ -n "$why" ] && { printf '%s' "$why"; return 0; }
  return 1
}

mkdir -p "$cache"
skip=""
if [ ! -f "$openclaw_dir/.complete" ] || [ ! -f "$hermes_dir/.complete" ]; then
  skip=$(registries_unreachable) || true
fi
if [ -z "$skip" ]; then
  started=$SECONDS
  install_openclaw || { log "openclaw install failed; see $openclaw_dir/install.log"; tail -20 "$openclaw_dir/install.log" >&2; exit 1; }
  install_hermes || { log "hermes install failed; see $hermes_dir/install.log"; tail -20 "$hermes_dir/install.log" >&2; exit 1; }
  log "installed in $cache ($((SECONDS - started)) s)"
else
  log "skipping the tier: $skip"
fi

if [ "${1:-}" = "--install-only" ]; then
  [ -z "$skip" ] && echo "$cache"
  exit 0
fi
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install --quiet -e '.[test]'; }
export EYRIE_REAL_OPENCLAW="$openclaw_dir/node_modules/.bin" EYRIE_REAL_HERMES="$hermes_dir/bin"
[ -n "$skip" ] && export EYRIE_REAL_SKIP="$skip"
exec .venv/bin/pytest -m real tests/real "$@"
