#!/usr/bin/env bash
# CTest BenchHarness.Smoke: proves that the benchmark harness works, at a tiny size and without
# any timing assertion. Runs leyr-bench against the real binaries on port 0 (shim, sandbox and
# broker via tests/clients/run_stack.sh, plus leyr-bench-echo): echo, BeginAuthorization,
# CallLeyr on an authorization obtained through the real flow, the direct libcurl client (both
# modes), the forwarder, and checks that every run answered all its requests without error.
set -euo pipefail

BENCH= ECHO= BROKER= SHIM= SANDBOX=
for arg; do
  case $arg in
    --bench=*) BENCH=${arg#*=} ;;
    --echo=*) ECHO=${arg#*=} ;;
    --broker=*) BROKER=${arg#*=} ;;
    --shim=*) SHIM=${arg#*=} ;;
    --sandbox=*) SANDBOX=${arg#*=} ;;
    --inner) ;;
    *) echo "smoke: unknown argument $arg" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -z "${LEYR_STACK_DIR:-}" ]; then
  exec "$HERE/../clients/run_stack.sh" --broker="$BROKER" --shim="$SHIM" --sandbox="$SANDBOX" \
    -- "$0" --bench="$BENCH" --echo="$ECHO" --inner
fi

# Inside the stack: LEYR_BROKER, LEYR_SANDBOX_URL, LEYR_SHIM_URL, LEYR_STACK_DIR are set.
W=$LEYR_STACK_DIR
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
# start_echo NAME ARGS...: leyr-bench-echo with ARGS on port 0, its log in $W/NAME.log; waits for
# its "listening" line and sets ADDR.
start_echo() {
  local name=$1 line
  shift
  : >"$W/$name.log"
  "$ECHO" --listen=127.0.0.1:0 "$@" 2>"$W/$name.log" &
  PIDS+=($!)
  line=$(timeout 30 tail -n +1 -f --pid=$! "$W/$name.log" | grep -m1 '"msg":"listening"' || true)
  [ -n "$line" ] || { echo "smoke: $name did not start" >&2; exit 1; }
  ADDR=$(sed -E 's/.*"address":"([^"]*)".*/\1/' <<<"$line")
}
start_echo echo
ECHO_ADDR=$ADDR

# A code for the direct client, from the sandbox's authorize page as JSON (as the broker's
# authorize URI would ask for it; run_stack.sh registers client "athena-client").
REDIRECT="$LEYR_SHIM_URL/oauth/callback"
enc() { /usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
AUTH_URL="$LEYR_SANDBOX_URL/oauth2/authorize?client_id=athena-client&redirect_uri=$(enc "$REDIRECT")&aud=$(enc "$LEYR_SANDBOX_URL")&response_type=code&scope=openid%20profile%20user%2F%2A.%2A%20offline_access&state=smoke$RANDOM"
CODE=$(curl -fsS -H 'Accept: application/json' "$AUTH_URL" |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["approve"]["code"])')
{
  echo "x-leyr-client-id: leyr-client"
  echo "x-leyr-client-secret: $(cat "$W/leyr-secret")"
  echo "x-leyr-emr-oauth-code: $CODE"
} >"$W/headers"

run() {
  local name=$1; shift
  echo "== $name: leyr-bench $*"
  "$BENCH" --json --label="$name" "$@" | tee "$W/$name.json"
  /usr/bin/python3 - "$W/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["requests"] > 0 and r["errors"] == 0, r
assert r["latency_us"]["p50"] > 0 and r["throughput_rps"] > 0, r
PY
}
run echo --target=echo --address="$ECHO_ADDR" --concurrency=4 --requests=300
run begin --target=begin --address="$LEYR_BROKER" --concurrency=4 --requests=300
run callleyr --target=callleyr --address="$LEYR_BROKER" --concurrency=4 --requests=300
run callleyr-rate --target=callleyr --address="$LEYR_BROKER" --mode=rate --rate=200 \
  --warmup=0s --duration=1s
run direct --target=http --url="$LEYR_SANDBOX_URL/api/emrs/athenapractice/care-units" \
  --header_file="$W/headers" --concurrency=4 --requests=300
run direct-rate --target=http --url="$LEYR_SANDBOX_URL/api/emrs/athenapractice/care-units" \
  --header_file="$W/headers" --mode=rate --rate=200 --warmup=0s --duration=1s
# The forwarder (leyr-bench-echo --forward_to): every call a GET through the broker's Leyr
# client; a call whose Leyr answer is not 200 counts as an error, so wrong credentials fail here.
printf 'leyr-client\n%s\n%s\n' "$(cat "$W/leyr-secret")" "$CODE" >"$W/forward-credentials"
start_echo forward --forward_to="$LEYR_SANDBOX_URL/api/emrs/athenapractice/care-units" \
  --forward_credentials_file="$W/forward-credentials"
run forward --target=echo --address="$ADDR" --concurrency=4 --requests=300
# Human-readable output works too.
"$BENCH" --target=echo --address="$ECHO_ADDR" --requests=50 | grep -q 'latency ms  p50'
# The direct client reuses its connections: at most one per slot.
/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert 0 <= r["new_connections"] <= 4, r' "$W/direct.json"
echo "smoke: ok"
