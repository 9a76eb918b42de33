#!/usr/bin/env bash
# Quick start: installs what is needed, builds, and runs leyr-sandbox (athena + Leyr stand-in),
# leyr-broker (memory store) and leyr-callback-shim on loopback, with a ready development
# configuration in .dev/. Ctrl-C stops all three.
#
# Ports (override with environment variables): broker gRPC 50051, shim HTTP 8080, sandbox 8081.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BROKER_PORT=${LEYR_BROKER_PORT:-50051}
SHIM_PORT=${LEYR_SHIM_PORT:-8080}
SANDBOX_PORT=${LEYR_SANDBOX_PORT:-8081}
BUILD_DIR=${LEYR_BUILD_DIR:-build}

scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target leyr-broker leyr-callback-shim leyr-sandbox leyrctl

DEV="$ROOT/.dev"
mkdir -p "$DEV"
chmod 700 "$DEV"
# A fresh random Leyr client secret shared by the broker and the sandbox (a mounted secret in
# production; never a flag or an environment variable).
if [ ! -s "$DEV/leyr-client-secret" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n=' > "$DEV/leyr-client-secret")
fi

cat > "$DEV/sandbox.json" <<JSON
{
  "listen": "127.0.0.1:${SANDBOX_PORT}",
  "clients": [{"client_id": "dev-athena-client", "redirect_uri": "http://127.0.0.1:${SHIM_PORT}/oauth/callback"}],
  "leyr_client_id": "dev-leyr-client",
  "leyr_client_secret_file": "${DEV}/leyr-client-secret"
}
JSON
cat > "$DEV/broker.json" <<JSON
{
  "listen": ["127.0.0.1:${BROKER_PORT}"],
  "plaintext_development": true,
  "leyr": {
    "base_uri": "http://127.0.0.1:${SANDBOX_PORT}",
    "client_id": "dev-leyr-client",
    "client_secret_file": "${DEV}/leyr-client-secret"
  },
  "connections": [{
    "name": "athena-sandbox",
    "emr": "athenapractice",
    "base_uri": "http://127.0.0.1:${SANDBOX_PORT}",
    "client_id": "dev-athena-client",
    "redirect_uri": "http://127.0.0.1:${SHIM_PORT}/oauth/callback"
  }],
  "return_uri_origins": ["http://127.0.0.1:${SHIM_PORT}", "http://localhost:3000"]
}
JSON
cat > "$DEV/shim.json" <<JSON
{
  "listen": "127.0.0.1:${SHIM_PORT}",
  "broker_target": "127.0.0.1:${BROKER_PORT}",
  "callback_path": "/oauth/callback"
}
JSON

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Starts a server, sends its log to .dev/NAME.log, and waits for its "listening" line.
start() {
  local name=$1; shift
  : > "$DEV/$name.log"
  "$@" >>"$DEV/$name.log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  # Block until the server logs the address it bound, or gives up after 20 s.
  if ! grep -m1 -q '"msg":"listening"' < <(timeout 20 tail -n +1 -f "$DEV/$name.log"); then
    echo "run-dev: $name failed to start; its log:" >&2
    cat "$DEV/$name.log" >&2
    exit 1
  fi
}

start sandbox "$BUILD_DIR/server/sandbox/leyr-sandbox" --config="$DEV/sandbox.json"
start broker "$BUILD_DIR/server/broker/leyr-broker" --config="$DEV/broker.json"
start shim "$BUILD_DIR/server/shim/leyr-callback-shim" --config="$DEV/shim.json"

cat <<TEXT

Leyr broker is running (logs in .dev/*.log):
  broker  grpc://127.0.0.1:${BROKER_PORT}   (plaintext, development only)
  shim    http://127.0.0.1:${SHIM_PORT}/oauth/callback
  sandbox http://127.0.0.1:${SANDBOX_PORT}   (stand-in for athena and Leyr)

Next steps, in another terminal:
  export PATH="$ROOT/$BUILD_DIR/client:\$PATH" LEYR_BROKER=127.0.0.1:${BROKER_PORT}
  leyrctl begin athena-sandbox          # prints the authorize URL
  # open that URL in a browser and press "Approve"
  leyrctl wait
  leyrctl call GET /api/emrs/athenapractice/care-units

Press Ctrl-C to stop.
TEXT
wait -n "${PIDS[@]}"
echo "run-dev: a server exited; stopping the others" >&2
