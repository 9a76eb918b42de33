#!/usr/bin/env bash
# Starts the real leyr-callback-shim, leyr-sandbox and leyr-broker on loopback port 0 and runs a
# command against them, then stops them. Start order as in tests/e2e/flow_test.cc: the shim first
# (it reaches the broker over a Unix socket whose path is known in advance), then the sandbox
# (which needs the shim's URL as the redirect URI), then the broker (which needs both).
#
# The command sees:
#   LEYR_BROKER       broker gRPC address, 127.0.0.1:PORT
#   LEYR_CONNECTION   athena-sandbox
#   LEYR_SANDBOX_URL  http://127.0.0.1:PORT
#   LEYR_SHIM_URL     http://127.0.0.1:PORT
#   LEYR_STACK_DIR    a temporary directory with the configurations and the three logs
#
# Usage: run_stack.sh --broker=BIN --shim=BIN --sandbox=BIN [--return-origin=ORIGIN] -- CMD [ARG...]
#   --return-origin  added to the broker's return_uri_origins (for a return page the test serves)
# With --hold instead of "-- CMD", prints the variables above as NAME=VALUE lines and "READY" on
# standard output, and keeps the servers running until standard input is closed.
set -euo pipefail

BROKER= SHIM= SANDBOX= RETURN_ORIGIN= HOLD=0
while (($#)); do
  case $1 in
    --broker=*) BROKER=${1#*=} ;;
    --shim=*) SHIM=${1#*=} ;;
    --sandbox=*) SANDBOX=${1#*=} ;;
    --return-origin=*) RETURN_ORIGIN=${1#*=} ;;
    --hold) HOLD=1 ;;
    --) shift; break ;;
    *) echo "run_stack: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$BROKER" ] && [ -x "$SHIM" ] && [ -x "$SANDBOX" ] || { echo "run_stack: need --broker, --shim, --sandbox" >&2; exit 2; }
((HOLD || $#)) || { echo "run_stack: no command" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((rc != 0)); then
    for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "== $log" >&2; tail -n 20 "$log" >&2; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Waits for the process PID to log a "listening" line matching PATTERN and prints its address.
# tail exits when the process does (--pid), so a crash does not cost the whole timeout.
listening() {
  local pid=$1 log=$2 pattern=$3 line
  line=$(timeout 30 tail -n +1 -f --pid="$pid" "$log" | grep -m1 -E "\"msg\":\"listening\".*$pattern" || true)
  [ -n "$line" ] || { echo "run_stack: $(basename "$log" .log) did not start" >&2; return 1; }
  sed -E 's/.*"address":"([^"]*)".*/\1/' <<<"$line"
}

# The logs exist before the processes start, so that tail never races their creation.
: >"$WORK/shim.log"; : >"$WORK/sandbox.log"; : >"$WORK/broker.log"
head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/leyr-secret"
SOCKET="$WORK/broker.sock"

cat >"$WORK/shim.json" <<JSON
{"listen": "127.0.0.1:0", "broker_target": "unix:$SOCKET", "callback_path": "/oauth/callback"}
JSON
"$SHIM" --config="$WORK/shim.json" 2>"$WORK/shim.log" &
PIDS+=($!)
SHIM_URL="http://$(listening $! "$WORK/shim.log" '127\.0\.0\.1:')"
REDIRECT_URI="$SHIM_URL/oauth/callback"

cat >"$WORK/sandbox.json" <<JSON
{"listen": "127.0.0.1:0",
 "clients": [{"client_id": "athena-client", "redirect_uri": "$REDIRECT_URI"}],
 "leyr_client_id": "leyr-client", "leyr_client_secret_file": "$WORK/leyr-secret"}
JSON
"$SANDBOX" --config="$WORK/sandbox.json" 2>"$WORK/sandbox.log" &
PIDS+=($!)
SANDBOX_URL="http://$(listening $! "$WORK/sandbox.log" '127\.0\.0\.1:')"

ORIGINS=""
[ -z "$RETURN_ORIGIN" ] || ORIGINS=", \"return_uri_origins\": [\"$RETURN_ORIGIN\"]"
cat >"$WORK/broker.json" <<JSON
{"listen": ["unix:$SOCKET", "127.0.0.1:0"], "plaintext_development": true,
 "leyr": {"base_uri": "$SANDBOX_URL", "client_id": "leyr-client",
          "client_secret_file": "$WORK/leyr-secret"},
 "connections": [{"name": "athena-sandbox", "emr": "athenapractice", "base_uri": "$SANDBOX_URL",
                  "client_id": "athena-client", "redirect_uri": "$REDIRECT_URI"}]$ORIGINS}
JSON
"$BROKER" --config="$WORK/broker.json" 2>"$WORK/broker.log" &
PIDS+=($!)
# The broker logs one listening line per address; the TCP one is what clients use.
BROKER_ADDR=$(listening $! "$WORK/broker.log" '127\.0\.0\.1:')

export LEYR_BROKER=$BROKER_ADDR LEYR_CONNECTION=athena-sandbox LEYR_SANDBOX_URL=$SANDBOX_URL \
  LEYR_SHIM_URL=$SHIM_URL LEYR_STACK_DIR=$WORK
echo "run_stack: broker $LEYR_BROKER, shim $LEYR_SHIM_URL, sandbox $LEYR_SANDBOX_URL" >&2

if ((HOLD)); then
  printf '%s\n' "LEYR_BROKER=$LEYR_BROKER" "LEYR_CONNECTION=$LEYR_CONNECTION" \
    "LEYR_SANDBOX_URL=$LEYR_SANDBOX_URL" "LEYR_SHIM_URL=$LEYR_SHIM_URL" \
    "LEYR_STACK_DIR=$LEYR_STACK_DIR" READY
  cat >/dev/null
  exit 0
fi
"$@"
