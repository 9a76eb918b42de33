#!/usr/bin/env bash
# The benchmark of issue 7, in one command (loopback only; not part of scripts/test.sh):
#
#   scripts/bench.sh [--quick] [--no-pin] [--no-install] [--no-build] [--rounds-only]
#
# Installs nginx, gnuplot and wrk with apt-get when missing, builds the servers and the harness
# (tests/bench/), starts on port 0: leyr-bench-echo, two stacks of shim + sandbox + broker (one
# sandbox answering at once, one after leyr_latency 1s), and nginx as a reverse proxy that adds
# the three x-leyr-* headers in front of the fast sandbox (upstream keep-alive; configuration
# generated into a temporary directory, nginx a non-daemon child on a free port). Then runs
# leyr-bench against each: the echo floor, the direct libcurl client, the same client through
# nginx, the broker's CallLeyr (a concurrency sweep for the plot), in the interleaved rounds also
# the forwarder (leyr-bench-echo --forward_to: the broker's Leyr client behind a bare gRPC
# service, reported for information), BeginAuthorization, the slow
# upstream with 2,000 CallLeyr in flight (broker threads and VmRSS from /proc/PID/status), and
# connection reuse (new broker→sandbox connections counted with `ss`, Leyr requests with the
# sandbox's /sandbox/requests count). With at least two CPUs, processes are pinned with taskset
# (BENCH_LAYOUT below; --no-pin turns it off).
#
# Writes build dir/bench/results.json and regenerates docs/benchmarks.md and
# docs/benchmarks.png. Environment: BENCH_BUILD_DIR (default build-bench), BENCH_JOBS (build
# parallelism, default nproc), BENCH_DURATION (seconds per run, default 10),
# BENCH_CONCURRENCY (sweep, default "1 4 16 64 128"), BENCH_ROUNDS and BENCH_ROUND_DURATION
# (interleaved rounds for the latency targets, default 5 of 3 s), BENCH_LAYOUT (split or together),
# BENCH_ROUND_CONCURRENCY (the rounds' concurrencies, default "1 64"), WRK=1 to add wrk's view
# of nginx, BENCH_BROKER_A and BENCH_BROKER_B (an A/B comparison, below). --rounds-only runs only
# the interleaved latency rounds and prints their targets, without touching docs/ (for trying a
# change quickly).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0 PIN=1 INSTALL=1 BUILD=1 ROUNDS_ONLY=0
for arg; do
  case $arg in
    --quick) QUICK=1 ;;
    --no-pin) PIN=0 ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    --rounds-only) ROUNDS_ONLY=1 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $arg" >&2; exit 2 ;;
  esac
done
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build-bench}
DURATION=${BENCH_DURATION:-10}
SWEEP=${BENCH_CONCURRENCY:-1 4 16 64 128}
WARMUP=2
SLOW_CONCURRENCY=2000
ROUNDS=${BENCH_ROUNDS:-5}
ROUND_DURATION=${BENCH_ROUND_DURATION:-3}
if ((QUICK)); then
  DURATION=${BENCH_DURATION:-2}; SWEEP=${BENCH_CONCURRENCY:-1 64}; WARMUP=1
  ROUNDS=${BENCH_ROUNDS:-1}; ROUND_DURATION=${BENCH_ROUND_DURATION:-1}
fi
COMMAND="scripts/bench.sh $*"
PY=/usr/bin/python3

# ---- packages and build -------------------------------------------------------------------
if ((INSTALL)); then
  missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v ss >/dev/null || missing+=(iproute2)
  command -v taskset >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ((BUILD)); then
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j"${BENCH_JOBS:-$(nproc)}" --target leyr-broker leyr-sandbox \
    leyr-callback-shim leyr-bench leyr-bench-echo
fi
BIN_BROKER=${BENCH_BROKER_A:-$BUILD_DIR/server/broker/leyr-broker}
BIN_SANDBOX=$BUILD_DIR/server/sandbox/leyr-sandbox
BIN_SHIM=$BUILD_DIR/server/shim/leyr-callback-shim
BIN_BENCH=$BUILD_DIR/tests/bench/leyr-bench
BIN_ECHO=$BUILD_DIR/tests/bench/leyr-bench-echo

# ---- processes ------------------------------------------------------------------------------
NCPU=$(nproc)
# Layout (BENCH_LAYOUT): "split" (default) gives the process under test (broker, nginx, echo
# server) the last CPU(s) to itself, and puts the sandbox with the load generator on the first;
# "together" puts every server on the last CPU(s) and only the load generator on the first.
LAYOUT=${BENCH_LAYOUT:-split}
if ((PIN && NCPU >= 2)); then
  HIGH=$((NCPU - 1)) LOW=0
  if ((NCPU >= 4)); then HIGH="$((NCPU / 2))-$((NCPU - 1))" LOW="0-$((NCPU / 2 - 1))"; fi
  ON_PROXY=(taskset -c "$HIGH") ON_CLIENT=(taskset -c "$LOW")
  if [ "$LAYOUT" = together ]; then ON_UPSTREAM=(taskset -c "$HIGH"); UPSTREAM_CPUS=$HIGH
  else ON_UPSTREAM=(taskset -c "$LOW"); UPSTREAM_CPUS=$LOW; fi
  PINNING="broker, nginx and echo server on CPU $HIGH; sandbox and shim on CPU $UPSTREAM_CPUS; load generator on CPU $LOW (layout $LAYOUT)"
  PROXY_CPUS=$HIGH
else
  ON_PROXY=() ON_UPSTREAM=() ON_CLIENT=()
  PINNING="none"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

W=$(mktemp -d)
OUT=$BUILD_DIR/bench
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.cpu
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((rc != 0)); then
    for log in "$W"/*.log "$W"/*/*.log; do
      [ -f "$log" ] && { echo "== $log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Waits for PID's "listening" log line matching PATTERN and prints the address.
listening() {
  local pid=$1 log=$2 pattern=$3 line
  line=$(timeout 30 tail -n +1 -f --pid="$pid" "$log" | grep -m1 -E "\"msg\":\"listening\".*$pattern" || true)
  [ -n "$line" ] || { echo "bench: $log: did not start" >&2; return 1; }
  sed -E 's/.*"address":"([^"]*)".*/\1/' <<<"$line"
}

# start_stack NAME LATENCY: shim, sandbox (Leyr answers after LATENCY) and broker in $W/NAME;
# sets STACK_BROKER, STACK_BROKER_PID, STACK_SANDBOX, STACK_SHIM.
start_stack() {
  local name=$1 latency=$2 d="$W/$1"
  mkdir -p "$d"
  : >"$d/shim.log"; : >"$d/sandbox.log"; : >"$d/broker.log"
  head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$d/leyr-secret"
  cat >"$d/shim.json" <<JSON
{"listen": "127.0.0.1:0", "broker_target": "unix:$d/broker.sock"}
JSON
  "${ON_UPSTREAM[@]}" "$BIN_SHIM" --config="$d/shim.json" 2>"$d/shim.log" &
  PIDS+=($!)
  STACK_SHIM="http://$(listening $! "$d/shim.log" '127\.0\.0\.1:')"
  cat >"$d/sandbox.json" <<JSON
{"listen": "127.0.0.1:0", "leyr_latency": "$latency",
 "clients": [{"client_id": "athena-client", "redirect_uri": "$STACK_SHIM/oauth/callback"}],
 "leyr_client_id": "leyr-client", "leyr_client_secret_file": "$d/leyr-secret",
 "max_connections": 8192}
JSON
  "${ON_UPSTREAM[@]}" "$BIN_SANDBOX" --config="$d/sandbox.json" 2>"$d/sandbox.log" &
  PIDS+=($!)
  STACK_SANDBOX="http://$(listening $! "$d/sandbox.log" '127\.0\.0\.1:')"
  cat >"$d/broker.json" <<JSON
{"listen": ["unix:$d/broker.sock", "127.0.0.1:0"], "plaintext_development": true,
 "leyr": {"base_uri": "$STACK_SANDBOX", "client_id": "leyr-client",
          "client_secret_file": "$d/leyr-secret"},
 "connections": [{"name": "athena-sandbox", "emr": "athenapractice", "base_uri": "$STACK_SANDBOX",
                  "client_id": "athena-client", "redirect_uri": "$STACK_SHIM/oauth/callback"}]}
JSON
  "${ON_PROXY[@]}" "$BIN_BROKER" --config="$d/broker.json" 2>"$d/broker.log" &
  STACK_BROKER_PID=$!
  PIDS+=($!)
  STACK_BROKER=$(listening $! "$d/broker.log" '127\.0\.0\.1:')
}

# A Leyr code for the direct and nginx clients, from the sandbox's authorize page as JSON.
fetch_code() {
  local sandbox=$1 shim=$2 enc
  enc() { $PY -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
  curl -fsS -H 'Accept: application/json' \
    "$sandbox/oauth2/authorize?client_id=athena-client&redirect_uri=$(enc "$shim/oauth/callback")&aud=$(enc "$sandbox")&response_type=code&scope=openid%20profile%20user%2F%2A.%2A%20offline_access&state=bench$RANDOM$RANDOM" |
    $PY -c 'import json, sys; print(json.load(sys.stdin)["approve"]["code"])'
}

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# proxy_cpu_busy NAME BEFORE AFTER: the busy fraction of the proxy's CPUs (summed over them, so
# 1.0 = one whole CPU) between two copies of /proc/stat, into $OUT/NAME.cpu (JSON), so that the
# report can give the proxy's CPU time per request next to the throughput.
proxy_cpu_busy() {
  [ -n "${PROXY_CPUS:-}" ] || return 0
  $PY - "$PROXY_CPUS" "$2" "$3" >"$OUT/$1.cpu" <<'PY'
import json, sys
spec, before, after = sys.argv[1], sys.argv[2], sys.argv[3]
cpus = set()
for part in spec.split(","):
    lo, _, hi = part.partition("-")
    cpus.update(range(int(lo), int(hi or lo) + 1))
def parse(text):
    out = {}
    for line in text.splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0][3:].isdigit():
            v = list(map(int, f[1:9]))
            out[int(f[0][3:])] = (v[3] + v[4], sum(v))  # idle + iowait, total
    return out
b, a = parse(before), parse(after)
busy = sum(1 - (a[c][0] - b[c][0]) / max(1, a[c][1] - b[c][1]) for c in cpus if c in a and c in b)
json.dump({"proxy_cpus": spec, "busy_cpus": busy}, sys.stdout)
PY
}

# bench NAME ARGS...: one leyr-bench run on the client CPUs, JSON kept in $OUT/NAME.json.
bench() {
  local name=$1; shift
  "${ON_CLIENT[@]}" "$BIN_BENCH" --json --label="$name" --warmup="${WARMUP}s" \
    --duration="${DURATION}s" "$@" >"$OUT/$name.json"
  $PY -c 'import json, sys; r = json.load(open(sys.argv[1]));
print("  %-18s c=%-5s %9.0f/s  p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms  errors %d" % (sys.argv[2],
  r["concurrency"], r["throughput_rps"], r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3,
  r["latency_us"]["max"] / 1e3, r["errors"]))' "$OUT/$name.json" "$name"
}

# ---- start everything -----------------------------------------------------------------------
echo "bench: pinning: $PINNING; ${DURATION}s per run" >&2
: >"$W/echo.log"
"${ON_PROXY[@]}" "$BIN_ECHO" --listen=127.0.0.1:0 2>"$W/echo.log" &
PIDS+=($!)
ECHO_ADDR=$(listening $! "$W/echo.log" '127\.0\.0\.1:')

start_stack fast 0s
FAST_BROKER=$STACK_BROKER FAST_BROKER_PID=$STACK_BROKER_PID FAST_SANDBOX=$STACK_SANDBOX FAST_SHIM=$STACK_SHIM
# BENCH_BROKER_B=PATH: a second broker binary (for example the previous commit's) in a stack of
# its own, measured in every round next to the first (BENCH_BROKER_A, default the build's), for
# an A/B comparison in one run.
BROKER_B=${BENCH_BROKER_B:-}
if [ -n "$BROKER_B" ]; then
  BIN_BROKER_A=$BIN_BROKER BIN_BROKER=$BROKER_B
  start_stack fastb 0s
  BIN_BROKER=$BIN_BROKER_A FASTB_BROKER=$STACK_BROKER
fi
start_stack slow 1s
SLOW_BROKER=$STACK_BROKER SLOW_BROKER_PID=$STACK_BROKER_PID

LEYR_PATH=/api/emrs/athenapractice/care-units
CODE=$(fetch_code "$FAST_SANDBOX" "$FAST_SHIM")
SECRET=$(cat "$W/fast/leyr-secret")
# write_headers FILE CODE: the three x-leyr-* header lines a direct client sends.
write_headers() {
  printf 'x-leyr-client-id: leyr-client\nx-leyr-client-secret: %s\nx-leyr-emr-oauth-code: %s\n' \
    "$SECRET" "$2" >"$1"
}

# The direct floor for the latency targets must cross CPUs as CallLeyr's upstream leg does
# (Leyr is a network hop away). In the split layout the fast sandbox shares the load
# generator's CPU, so a second one ("far") runs on the proxy's CPU for the direct-far-c1 run.
FAR_SANDBOX=
if ((PIN && NCPU >= 2)) && [ "$LAYOUT" = split ]; then
  mkdir -p "$W/far"
  : >"$W/far/sandbox.log"
  sed 's/"leyr_latency": "[^"]*"/"leyr_latency": "0s"/' "$W/fast/sandbox.json" >"$W/far/sandbox.json"
  "${ON_PROXY[@]}" "$BIN_SANDBOX" --config="$W/far/sandbox.json" 2>"$W/far/sandbox.log" &
  PIDS+=($!)
  FAR_SANDBOX="http://$(listening $! "$W/far/sandbox.log" '127\.0\.0\.1:')"
  write_headers "$W/far-headers" "$(fetch_code "$FAR_SANDBOX" "$FAST_SHIM")"
fi
write_headers "$W/direct-headers" "$CODE"
: >"$W/no-headers"

# The forwarder: leyr-bench-echo --forward_to, a gRPC service on the broker's set-up whose every
# call is a GET through the broker's Leyr client (same class and threads) to the fast sandbox,
# without the broker's own work. Measured in the rounds as information: what any broker on this
# gRPC and libcurl stack adds at least, so that the broker's own share of its latency shows.
printf 'leyr-client\n%s\n%s\n' "$SECRET" "$CODE" >"$W/forward-credentials"
: >"$W/forward.log"
"${ON_PROXY[@]}" "$BIN_ECHO" --listen=127.0.0.1:0 --forward_to="$FAST_SANDBOX$LEYR_PATH" \
  --forward_credentials_file="$W/forward-credentials" 2>"$W/forward.log" &
PIDS+=($!)
FORWARD_ADDR=$(listening $! "$W/forward.log" '127\.0\.0\.1:')

# nginx: what a team would build instead of the broker.
NGINX_PORT=$(free_port)
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $W/nginx/body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  keepalive_requests 1000000;
  upstream leyr {
    server ${FAST_SANDBOX#http://};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /api/ {
      proxy_pass http://leyr;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-leyr-client-id "leyr-client";
      proxy_set_header x-leyr-client-secret "$SECRET";
      proxy_set_header x-leyr-emr-oauth-code "$CODE";
    }
  }
}
CONF
: >"$W/nginx.log"
"${ON_PROXY[@]}" "$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>>"$W/nginx.log" &
PIDS+=($!)
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 100); do curl -fs -o /dev/null "$NGINX_URL$LEYR_PATH" && break; sleep 0.1; done
curl -fsS -o /dev/null "$NGINX_URL$LEYR_PATH" || { echo "bench: nginx does not answer" >&2; exit 1; }

# ---- runs -----------------------------------------------------------------------------------
((ROUNDS_ONLY)) && SWEEP=
[ -z "$SWEEP" ] || echo "bench: closed-loop sweep over concurrency $SWEEP" >&2
for c in $SWEEP; do
  bench "echo-c$c" --target=echo --address="$ECHO_ADDR" --concurrency="$c"
  bench "direct-c$c" --target=http --url="$FAST_SANDBOX$LEYR_PATH" \
    --header_file="$W/direct-headers" --concurrency="$c"
  bench "nginx-c$c" --target=http --url="$NGINX_URL$LEYR_PATH" --header_file="$W/no-headers" \
    --concurrency="$c"
  bench "broker-c$c" --target=callleyr --address="$FAST_BROKER" --path="$LEYR_PATH" --concurrency="$c"
done
for c in $( ((ROUNDS_ONLY)) || echo 1 64); do
  [ -f "$OUT/echo-c$c.json" ] || bench "echo-c$c" --target=echo --address="$ECHO_ADDR" --concurrency="$c"
  if [ -n "$FAR_SANDBOX" ] && [ "$c" = 1 ]; then
    bench "direct-far-c$c" --target=http --url="$FAR_SANDBOX$LEYR_PATH" \
      --header_file="$W/far-headers" --concurrency="$c"
  fi
done
# The latency targets and the nginx comparison, in interleaved rounds: a run at a time is at the
# mercy of whatever else the VM's host does in those seconds, so each round measures echo,
# direct, CallLeyr (and at c=64 nginx) one after another, and the report takes the median of
# the rounds' ratios.
ROUND_CONCURRENCY=${BENCH_ROUND_CONCURRENCY:-1 64}
echo "bench: $ROUNDS interleaved rounds of echo, direct and CallLeyr at c=${ROUND_CONCURRENCY// /, c=}" >&2
ROUND=(--duration="${ROUND_DURATION}s" --warmup=1s)
# With a B broker, even rounds measure B first: the second of two runs in a row came out a few
# per cent slower whichever binary it was, so the order alternates.
BROKERS="broker=$FAST_BROKER"
[ -z "$BROKER_B" ] || BROKERS="broker=$FAST_BROKER brokerb=$FASTB_BROKER"
BROKERS="$BROKERS forward=$FORWARD_ADDR"
for r in $(seq "$ROUNDS"); do
  for c in $ROUND_CONCURRENCY; do
    bench "r$r-echo-c$c" --target=echo --address="$ECHO_ADDR" --concurrency="$c" "${ROUND[@]}"
    if [ -n "$FAR_SANDBOX" ] && [ "$c" = 1 ]; then
      bench "r$r-direct-far-c$c" --target=http --url="$FAR_SANDBOX$LEYR_PATH" \
        --header_file="$W/far-headers" --concurrency="$c" "${ROUND[@]}"
    else
      bench "r$r-direct-c$c" --target=http --url="$FAST_SANDBOX$LEYR_PATH" \
        --header_file="$W/direct-headers" --concurrency="$c" "${ROUND[@]}"
    fi
    order=$BROKERS
    if [ -n "$BROKER_B" ] && ((r % 2 == 0)); then
      order="brokerb=$FASTB_BROKER broker=$FAST_BROKER forward=$FORWARD_ADDR"
    fi
    # At c=64 nginx is measured in the round too (the throughput target is the median of the
    # rounds' CallLeyr/nginx ratios), before the broker in odd rounds and after it in even ones.
    if [ "$c" = 64 ]; then
      if ((r % 2)); then order="nginx $order"; else order="$order nginx"; fi
    fi
    for entry in $order; do
      stat_before=$(cat /proc/stat)
      if [ "$entry" = nginx ]; then
        bench "r$r-nginx-c$c" --target=http --url="$NGINX_URL$LEYR_PATH" \
          --header_file="$W/no-headers" --concurrency="$c" "${ROUND[@]}"
        proxy_cpu_busy "r$r-nginx-c$c" "$stat_before" "$(cat /proc/stat)"
        continue
      fi
      if [ "${entry%%=*}" = forward ]; then
        bench "r$r-forward-c$c" --target=echo --address="${entry#*=}" --concurrency="$c" "${ROUND[@]}"
        continue
      fi
      bench "r$r-${entry%%=*}-c$c" --target=callleyr --address="${entry#*=}" --path="$LEYR_PATH" \
        --concurrency="$c" "${ROUND[@]}"
      proxy_cpu_busy "r$r-${entry%%=*}-c$c" "$stat_before" "$(cat /proc/stat)"
    done
  done
done
if ((ROUNDS_ONLY)); then
  $PY "$ROOT/tests/bench/report.py" --results="$OUT" --out-json="$OUT/results.json"
  exit 0
fi
bench begin-c64 --target=begin --address="$FAST_BROKER" --concurrency=64
bench echo-begin-c64 --target=echo --address="$ECHO_ADDR" --concurrency=64

# Connection reuse: broker → sandbox connections (both directions' sockets, any state; closed
# ones stay visible in TIME-WAIT for 60 s) before and after a warmed-up CallLeyr run at 64.
# Nothing else talks to that sandbox meanwhile, so every new client port is the broker's.
SANDBOX_PORT=${FAST_SANDBOX##*:}
leyr_requests() { curl -fsS "$FAST_SANDBOX/sandbox/requests" | $PY -c 'import json, sys; print(json.load(sys.stdin)["count"])'; }
conns() {
  ss -Htan "( sport = :$SANDBOX_PORT or dport = :$SANDBOX_PORT )" | awk -v p="$SANDBOX_PORT" '
    $1 != "LISTEN" { split($4, l, ":"); split($5, r, ":");
      port = (l[length(l)] == p) ? r[length(r)] : l[length(l)]; print port }' | sort -u
}
bench reuse-warmup --target=callleyr --address="$FAST_BROKER" --path="$LEYR_PATH" --concurrency=64
conns >"$W/conns-before"
REQ_BEFORE=$(leyr_requests)
bench reuse-c64 --target=callleyr --address="$FAST_BROKER" --path="$LEYR_PATH" --concurrency=64
REQ_AFTER=$(leyr_requests)
conns >"$W/conns-after"
NEW_CONNS=$(comm -13 "$W/conns-before" "$W/conns-after" | wc -l)
echo "{\"leyr_requests\": $((REQ_AFTER - REQ_BEFORE)), \"new_connections\": $NEW_CONNS, \"method\": \"ss: distinct client ports of sockets to or from the sandbox port, any state but LISTEN (TIME-WAIT kept 60 s), after minus before; requests: sandbox /sandbox/requests count\"}" >"$OUT/reuse.json"
echo "  reuse: $NEW_CONNS new connections for $((REQ_AFTER - REQ_BEFORE)) Leyr requests" >&2

# Slow upstream: 2,000 CallLeyr in flight against a sandbox that answers after 1 s.
echo "bench: slow upstream, $SLOW_CONCURRENCY in flight" >&2
# Samples PID's threads and memory every 0.2 s into OUT; the names of its threads when their
# count was highest go to OUT.names (which threads a cap would have to bound).
sample_status() {
  local pid=$1 out=$2 most=0 t line
  while kill -0 "$pid" 2>/dev/null; do
    line=$(awk '/^Threads:/ {t = $2} /^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print t, r, h}' "/proc/$pid/status" 2>/dev/null) || break
    echo "$line" >>"$out"
    t=${line%% *}
    if ((t > most)); then
      most=$t
      cat /proc/"$pid"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{print $2 "=" $1}' >"$out.names" || true
    fi
    sleep 0.2
  done
}
: >"$W/slow-status"
sample_status "$SLOW_BROKER_PID" "$W/slow-status" &
SAMPLER=$!
SLOW_DURATION=$DURATION
((SLOW_DURATION >= 5)) || SLOW_DURATION=5
"${ON_CLIENT[@]}" "$BIN_BENCH" --json --label=slow-c$SLOW_CONCURRENCY --target=callleyr \
  --address="$SLOW_BROKER" --path="$LEYR_PATH" --concurrency=$SLOW_CONCURRENCY --warmup=3s \
  --duration="${SLOW_DURATION}s" --timeout=30s >"$OUT/slow.json"
kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
$PY - "$W/slow-status" "$OUT/slow-process.json" <<'PY'
import json, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 3]
try:
    names = " ".join(open(sys.argv[1] + ".names").read().split())
except OSError:
    names = ""
json.dump({"samples": len(rows), "max_threads": max(r[0] for r in rows),
           "max_vmrss_kb": max(r[1] for r in rows), "vmhwm_kb": max(r[2] for r in rows),
           "threads_at_max": names},
          open(sys.argv[2], "w"))
PY
cat "$OUT/slow.json" "$OUT/slow-process.json" >&2; echo >&2

WRK_JSON=""
if [ "${WRK:-0}" = 1 ] && command -v wrk >/dev/null; then
  "${ON_CLIENT[@]}" wrk -t1 -c64 -d"${DURATION}s" --latency "$NGINX_URL$LEYR_PATH" >"$OUT/wrk-nginx-c64.txt" || true
fi

# ---- report ---------------------------------------------------------------------------------
MACHINE_CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
$PY "$ROOT/tests/bench/report.py" --results="$OUT" --out-json="$OUT/results.json" \
  --doc="$ROOT/docs/benchmarks.md" --png="$ROOT/docs/benchmarks.png" \
  --notes="$ROOT/tests/bench/notes.md" --command="$COMMAND" --cpu="$MACHINE_CPU" --nproc="$NCPU" \
  --pinning="$PINNING" \
  --duration="$DURATION" --load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: wrote $OUT/results.json, docs/benchmarks.md, docs/benchmarks.png" >&2
