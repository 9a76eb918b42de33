#!/usr/bin/env bash
# The CPU time and context switches one server process spends per call, by thread name: a
# profiling aid for issue 7 (docs/benchmarks.md), not a test and not a target.
#
#   tests/bench/per_call_cost.sh [--target=callleyr|echo|forward] [--concurrency=1] [--seconds=5]
#                                [--build=build] [--broker=PATH] [--callgrind=FILE]
#
# Starts on port 0 a sandbox and a shim pinned on CPU 0 and the server under test on CPU 1: the
# broker (callleyr), leyr-bench-echo (echo), or leyr-bench-echo --forward_to against the sandbox
# (forward). Warms up for 2 s, then runs leyr-bench on CPU 0 for --seconds and reads
# /proc/PID/task/*/stat and status before and after: user and system CPU time (clock ticks, so
# run long enough) and voluntary context switches per call. With --callgrind=FILE the server runs
# under valgrind's callgrind with instrumentation switched on only for the measured run (then
# callgrind_annotate FILE.1; instructions per call = total / the requests printed).
set -euo pipefail

TARGET=callleyr CONC=1 SECS=5 BUILD=build BROKER= CALLGRIND=
for arg; do
  case $arg in
    --target=*) TARGET=${arg#*=} ;;
    --concurrency=*) CONC=${arg#*=} ;;
    --seconds=*) SECS=${arg#*=} ;;
    --build=*) BUILD=${arg#*=} ;;
    --broker=*) BROKER=${arg#*=} ;;
    --callgrind=*) CALLGRIND=${arg#*=} ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "per_call_cost: unknown argument $arg" >&2; exit 2 ;;
  esac
done
case $TARGET in callleyr|echo|forward) ;; *) echo "per_call_cost: --target is callleyr, echo or forward" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BROKER=${BROKER:-$BUILD/server/broker/leyr-broker}
((CONC >= 1 && SECS >= 1)) || { echo "per_call_cost: concurrency and seconds must be at least 1" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "per_call_cost: needs two CPUs (it pins with taskset)" >&2; exit 2; }

W=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# listening PID LOG: the address of PID's "listening" log line.
listening() {
  local line
  line=$(timeout 30 tail -n +1 -f --pid="$1" "$2" | grep -m1 '"msg":"listening".*127\.0\.0\.1:' || true)
  [ -n "$line" ] || { echo "per_call_cost: $2: did not start" >&2; tail -n 5 "$2" >&2; exit 1; }
  sed -E 's/.*"address":"([^"]*)".*/\1/' <<<"$line"
}

head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$W/secret"
echo "{\"listen\": \"127.0.0.1:0\", \"broker_target\": \"unix:$W/broker.sock\"}" >"$W/shim.json"
taskset -c 0 "$BUILD/server/shim/leyr-callback-shim" --config="$W/shim.json" 2>"$W/shim.log" &
PIDS+=($!)
SHIM="http://$(listening $! "$W/shim.log")"
cat >"$W/sandbox.json" <<JSON
{"listen": "127.0.0.1:0", "leyr_latency": "0s",
 "clients": [{"client_id": "athena-client", "redirect_uri": "$SHIM/oauth/callback"}],
 "leyr_client_id": "leyr-client", "leyr_client_secret_file": "$W/secret", "max_connections": 8192}
JSON
taskset -c 0 "$BUILD/server/sandbox/leyr-sandbox" --config="$W/sandbox.json" 2>"$W/sandbox.log" &
PIDS+=($!)
SANDBOX="http://$(listening $! "$W/sandbox.log")"
LEYR_PATH=/api/emrs/athenapractice/care-units

UNDER=(taskset -c 1)
[ -z "$CALLGRIND" ] || UNDER+=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$CALLGRIND")
case $TARGET in
  callleyr)
    cat >"$W/broker.json" <<JSON
{"listen": ["unix:$W/broker.sock", "127.0.0.1:0"], "plaintext_development": true,
 "leyr": {"base_uri": "$SANDBOX", "client_id": "leyr-client", "client_secret_file": "$W/secret"},
 "connections": [{"name": "athena-sandbox", "emr": "athenapractice", "base_uri": "$SANDBOX",
                  "client_id": "athena-client", "redirect_uri": "$SHIM/oauth/callback"}]}
JSON
    "${UNDER[@]}" "$BROKER" --config="$W/broker.json" 2>"$W/server.log" &
    LOAD=(--target=callleyr --path="$LEYR_PATH") ;;
  echo)
    "${UNDER[@]}" "$BUILD/tests/bench/leyr-bench-echo" --listen=127.0.0.1:0 2>"$W/server.log" &
    LOAD=(--target=echo) ;;
  forward)
    enc() { /usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
    code=$(curl -fsS -H 'Accept: application/json' "$SANDBOX/oauth2/authorize?client_id=athena-client&redirect_uri=$(enc "$SHIM/oauth/callback")&aud=$(enc "$SANDBOX")&response_type=code&scope=openid%20profile%20user%2F%2A.%2A%20offline_access&state=cost$RANDOM$RANDOM" |
      /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["approve"]["code"])')
    printf 'leyr-client\n%s\n%s\n' "$(cat "$W/secret")" "$code" >"$W/credentials"
    "${UNDER[@]}" "$BUILD/tests/bench/leyr-bench-echo" --listen=127.0.0.1:0 \
      --forward_to="$SANDBOX$LEYR_PATH" --forward_credentials_file="$W/credentials" 2>"$W/server.log" &
    LOAD=(--target=echo) ;;
esac
PID=$!
PIDS+=($PID)
ADDR=$(listening $PID "$W/server.log")

# name utime stime voluntary_switches, summed by thread name.
snapshot() {
  for task in /proc/"$PID"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' '_' <"$task/comm")" "$(cut -d' ' -f14,15 <"$task/stat")" \
      "$(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status")"
  done | awk '{u[$1] += $2; s[$1] += $3; c[$1] += $4} END {for (n in u) print n, u[n], s[n], c[n]}'
}
BENCH=(taskset -c 0 "$BUILD/tests/bench/leyr-bench" --address="$ADDR" "${LOAD[@]}" --concurrency="$CONC")
"${BENCH[@]}" --duration=2s --warmup=0s >/dev/null
snapshot >"$W/before"
[ -z "$CALLGRIND" ] || { callgrind_control -z "$PID" >/dev/null; callgrind_control -i on "$PID" >/dev/null; }
"${BENCH[@]}" --json --duration="${SECS}s" --warmup=0s >"$W/run.json"
[ -z "$CALLGRIND" ] || { callgrind_control -i off "$PID" >/dev/null; callgrind_control -d "$PID" >/dev/null; }
snapshot >"$W/after"
/usr/bin/python3 - "$W/before" "$W/after" "$W/run.json" "$(getconf CLK_TCK)" "$TARGET" <<'PY'
import json, sys
before_path, after_path, run_path, ticks, target = sys.argv[1:6]
us_per_tick = 1e6 / int(ticks)
run = json.load(open(run_path))
n = run["requests"]
print(f"{target} c={run['concurrency']}: {n} calls, {run['throughput_rps']:.0f}/s, "
      f"p50 {run['latency_us']['p50'] / 1e3:.3f} ms, p99 {run['latency_us']['p99'] / 1e3:.3f} ms, "
      f"errors {run['errors']}")
def read(path):
    return {f[0]: tuple(map(int, f[1:])) for f in (line.split() for line in open(path))}
before, after = read(before_path), read(after_path)
total_user = total_sys = 0
for name in sorted(after):
    b = before.get(name, (0, 0, 0))
    user, system, switches = (after[name][i] - b[i] for i in range(3))
    total_user += user
    total_sys += system
    if user or system or switches:
        print(f"  {name:<18} user {user * us_per_tick / n:6.1f} µs  system {system * us_per_tick / n:6.1f} µs"
              f"  voluntary switches {switches / n:5.2f}  per call")
print(f"  {'all threads':<18} user {total_user * us_per_tick / n:6.1f} µs  "
      f"system {total_sys * us_per_tick / n:6.1f} µs  per call")
if n == 0 or run["errors"]:
    sys.exit(1)
PY
