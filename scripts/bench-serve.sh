#!/usr/bin/env bash
# `make bench-serve`: wrk against pm-serve (`serving` profile: release + LTO) and, alternately in
# the same run, a bare axum handler returning a constant (pm-bare, same profile) — the reference
# on this machine, since wrk and the server share the cores and absolute tail latency swings
# between runs.
#
# Scenarios on POST /predict: stateful (score a machine's buffered state), reading (the Python
# service's request shape: a reading, appended, then the state scored), window (the request
# carries 48 h of history), and POST /predict/batch (100 machines); c=1 and c=32, 15 s each.
# A yardstick beside them: the bare handler doing 4, 8 and 12 µs of CPU work per window request
# (what a given amount of work per request costs in throughput here), and the window request's CPU
# cost measured in isolation (serve/examples/window-cost.rs).
# Environment: PM_BENCH_SECS (default 15), PM_BENCH_BUCKET (model + data; default .cache/bench-serve),
# PM_BENCH_LOADGEN=batch: a diagnostic, not the judged setup — wrk runs as SCHED_BATCH, so that
# its wake-ups stop preempting the servers (as if the clients were on other machines;
# docs/decisions/serving-window-mode.md says what it shows).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
SECS="${PM_BENCH_SECS:-15}"
BUCKET="${PM_BENCH_BUCKET:-$ROOT/.cache/bench-serve}"
SERVE_PORT=18180
BARE_PORT=18181

if ! command -v wrk >/dev/null; then
  echo "bench-serve: installing wrk (Debian package)" >&2
  apt_install wrk
fi

# A model in a registry and the data it was trained on: the training pipeline, once.
cargo build --workspace --locked -q
if ! ls "$BUCKET"/registry/pm-failure/log/*.json >/dev/null 2>&1; then
  echo "bench-serve: training a model into $BUCKET (the default pipeline)" >&2
  local-sim/vertex-simulate.sh "$BUCKET" >/dev/null
fi
cargo build --profile serving --locked -q -p pm-serve --bins --example window-cost
BIN=target/serving

WORK="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
on_exit cleanup

STEPS_PER_US="$($BIN/pm-bare calibrate)"
$BIN/pm-bare "$BARE_PORT" &
pids+=($!)
# The yardstick: the bare handler doing 4, 8 or 12 µs of CPU work per request before answering,
# at a rate of work measured once, before the servers start (an idle machine).
YARDSTICK=(4 8 12)
for us in "${YARDSTICK[@]}"; do
  $BIN/pm-bare "$((BARE_PORT + us))" "$us" "$STEPS_PER_US" &
  pids+=($!)
done
RUST_LOG=warn $BIN/pm-serve --registry-uri "$BUCKET/registry" --prime-from "$BUCKET/raw" \
  --host 127.0.0.1 --port "$SERVE_PORT" &
pids+=($!)
up() { # pm-serve ready and every pm-bare answering; names the first that is not
  curl -sf "localhost:$SERVE_PORT/ready" >/dev/null || { echo "pm-serve (port $SERVE_PORT)"; return 1; }
  for us in 0 "${YARDSTICK[@]}"; do
    local port=$((BARE_PORT + us))
    curl -sf "localhost:$port/health" >/dev/null || { echo "pm-bare (port $port)"; return 1; }
  done
}
for _ in $(seq 1 200); do up >/dev/null && break; sleep 0.1; done
if ! down=$(up); then echo "bench-serve: $down did not become ready" >&2; exit 1; fi

# Request bodies: a window request (machine 1's last 48 h from the raw CSV) and a 100-item batch.
# And each machine's latest reading, its numbers as written in the CSV: sent again, it is the same
# reading (a retry, accepted as a no-op) but it re-enters the machine's buffer, so the row and
# scores are computed again on every request.
python3 - "$BUCKET/raw/PdM_telemetry.csv" "$WORK" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sensors = ("volt", "rotate", "pressure", "vibration")
hist = [{"datetime": r["datetime"], **{k: float(r[k]) for k in sensors}} for r in rows if r["machineID"] == "1"][-48:]
json.dump({"machineID": 1, "history": {"readings": hist}}, open(f"{sys.argv[2]}/window.json", "w"))
json.dump({"predictions": [{"machineID": m} for m in range(1, 101)]}, open(f"{sys.argv[2]}/batch.json", "w"))
latest = {}
for r in rows:
    latest[r["machineID"]] = r
with open(f"{sys.argv[2]}/reading.txt", "w") as out:
    for m, r in sorted(latest.items(), key=lambda kv: int(kv[0])):
        values = ", ".join(f'"{k}": {r[k]}' for k in sensors)
        out.write(f'{{"machineID": {m}, "datetime": "{r["datetime"]}", {values}}}\n')
with open(f"{sys.argv[2]}/stateful.txt", "w") as out:
    out.writelines(f'{{"machineID":{m}}}\n' for m in range(1, 101))
PY
# Scenarios that cycle through one body per machine (a file of bodies, one per line). Requests are
# built once in init(): a request() that formats strings costs wrk more than the bare server's
# whole answer.
for name in stateful reading; do
  cat > "$WORK/$name.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local reqs = {}
local n = 0
init = function(args)
  for line in io.lines("$WORK/$name.txt") do
    reqs[#reqs + 1] = wrk.format(nil, "/predict", nil, line)
  end
end
request = function()
  n = n % #reqs + 1
  return reqs[n]
end
LUA
done
for name in window batch; do
  path=/predict; [[ $name == batch ]] && path=/predict/batch
  body=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$WORK/$name.json")
  cat > "$WORK/$name.lua" <<LUA
wrk.method = "POST"
wrk.path = "$path"
wrk.headers["Content-Type"] = "application/json"
wrk.body = $body
LUA
done
cat > "$WORK/bare.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"machineID":1}'
LUA
# The window scenario's reference: the bare handler receiving the same 48 h body.
sed 's|^wrk.path = .*||' "$WORK/window.lua" > "$WORK/bare-window.lua"

LOADGEN=()
if [[ ${PM_BENCH_LOADGEN:-} == batch ]]; then LOADGEN=(chrt --batch 0); fi
run() { # name port script conns
  local threads=2; [[ $4 == 1 ]] && threads=1
  "${LOADGEN[@]}" wrk -t"$threads" -c"$4" -d"${SECS}s" --latency -s "$WORK/$3.lua" "http://127.0.0.1:$2/predict" > "$WORK/$1-c$4.txt"
}
for c in 1 32; do
  echo "bench-serve: c=$c ..." >&2
  run bare1 "$BARE_PORT" bare "$c"
  run stateful "$SERVE_PORT" stateful "$c"
  run reading "$SERVE_PORT" reading "$c"
  run window "$SERVE_PORT" window "$c"
  run bare-window "$BARE_PORT" bare-window "$c"
  if [[ $c == 32 ]]; then
    for us in "${YARDSTICK[@]}"; do run "busy$us" "$((BARE_PORT + us))" bare-window "$c"; done
  fi
  run batch "$SERVE_PORT" batch "$c"
  run bare2 "$BARE_PORT" bare "$c"
done
# pm-serve's own work per window request, without HTTP and without wrk beside it.
$BIN/examples/window-cost "$BUCKET/registry" "$WORK/window.json" > "$WORK/window-cost.txt"
python3 "$ROOT/scripts/bench/serve_report.py" "$WORK"
