#!/usr/bin/env bash
# A second fleet on this machine, for proving the test suite does not collide with one:
#   scripts/neighbour_fleet.sh start DIR   clone this checkout into DIR/clone, run eyried from the clone on the
#                                          demo fleet (default port range, home DIR/home), wait until it runs
#   scripts/neighbour_fleet.sh stop DIR    stop that eyried and its agents (SIGTERM, then SIGKILL), remove DIR
# The clone runs with this checkout's .venv interpreter; PYTHONPATH puts the clone's package first.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: neighbour_fleet.sh start|stop DIR}
dir=${2:?usage: neighbour_fleet.sh start|stop DIR}
python=$PWD/.venv/bin/python
home=$dir/home

alive() { [ -f "$dir/eyried.pid" ] && kill -0 "$(cat "$dir/eyried.pid")" 2>/dev/null; }

case $action in
start)
  mkdir -p "$dir"
  git clone --quiet --no-hardlinks "$PWD" "$dir/clone"
  mkdir -p "$home"
  cp "$dir/clone/config/fleet.demo.yaml" "$home/fleet.yaml"
  (cd "$dir/clone" && exec env PYTHONPATH="$dir/clone" EYRIE_HOME="$home" \
    setsid "$python" -m supervisor.daemon --home "$home" >"$dir/eyried.log" 2>&1 </dev/null) &
  echo $! >"$dir/eyried.pid"
  (cd "$dir/clone" && PYTHONPATH=$dir/clone "$python" - "$home" "$dir/eyried.pid") <<'PY'
import json, os, pathlib, sys, time
home, pid = pathlib.Path(sys.argv[1]), int(pathlib.Path(sys.argv[2]).read_text())
deadline = time.monotonic() + 90
while True:
    rows = []
    for path in home.glob("instances/*/instance.json"):
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    if len(rows) >= 3 and all(r.get("status") == "running" for r in rows):  # the demo commander adds a 4th
        break
    if time.monotonic() > deadline:
        sys.exit(f"neighbour fleet not running after 90s: {[(r.get('name'), r.get('status')) for r in rows]}")
    os.kill(pid, 0)  # eyried still up
    time.sleep(0.2)
cwd = os.readlink(f"/proc/{pid}/cwd")
print(f"neighbour fleet: eyried pid {pid} running in {cwd},"
      f" home {home}, ports {sorted(r['port'] for r in rows)}")
PY
  ;;
stop)
  if alive; then
    kill -TERM "$(cat "$dir/eyried.pid")"
    for _ in $(seq 600); do alive || break; sleep 0.1; done
  fi
  if alive; then
    echo "neighbour eyried did not stop within 60s; killing it and its agents" >&2
    kill -KILL "$(cat "$dir/eyried.pid")" || true
    "$python" - "$home" <<'PY'
import json, os, pathlib, signal, sys
for path in pathlib.Path(sys.argv[1]).glob("instances/*/instance.json"):
    pgid = json.loads(path.read_text()).get("pgid")
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
PY
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: neighbour_fleet.sh start|stop DIR" >&2
  exit 2
  ;;
esac
