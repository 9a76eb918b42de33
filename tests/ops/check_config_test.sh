#!/usr/bin/env bash
# --check-config of the broker, the shim and the sandbox: a valid configuration passes (with
# environment overrides), and every bad key or LEYR_* variable is named, without its value, exit
# status 2.
#   check_config_test.sh BROKER_BIN SHIM_BIN SANDBOX_BIN
set -uo pipefail
BROKER=$1
SHIM=$2
SANDBOX=$3
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

printf 'canary-secret-0a1b\n' > "$DIR/secret"
cat > "$DIR/broker.json" <<JSON
{"listen":["127.0.0.1:0"],"plaintext_development":true,
 "leyr":{"base_uri":"http://127.0.0.1:9","client_id":"c","client_secret_file":"$DIR/secret"},
 "connections":[{"name":"athena","emr":"athenapractice","base_uri":"http://127.0.0.1:9",
   "client_id":"a","redirect_uri":"http://127.0.0.1:8080/oauth/callback"}],
 "return_uri_origins":["http://127.0.0.1:3000"]}
JSON
cat > "$DIR/bad.json" <<JSON
{"listen":["127.0.0.1:0"],"plaintext_development":false,
 "leyr":{"base_uri":"ftp://x","client_id":"c","client_secret_file":"$DIR/missing"},
 "connections":[],"admin_listen":"nonsense"}
JSON

# expect STATUS PATTERN... -- COMMAND...: the exit status and every pattern in the output.
expect() {
  local want=$1; shift
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  local out status
  out=$("$@" 2>&1); status=$?
  [ "$status" = "$want" ] || fail "exit $status (want $want): $*"$'\n'"$out"
  for p in "${patterns[@]}"; do
    grep -q -- "$p" <<<"$out" || fail "'$p' missing from the output of: $*"$'\n'"$out"
  done
  if grep -q "canary-secret-0a1b\|sekrit-value-77" <<<"$out"; then fail "a value leaked: $*"; fi
}

expect 0 "is valid" -- "$BROKER" --config="$DIR/broker.json" --check-config
expect 0 "is valid" -- env LEYR_BROKER_ADMIN_LISTEN=127.0.0.1:0 LEYR_BROKER_LOG_LEVEL=debug \
  LEYR_BROKER_SERVICE_HOST=10.0.0.1 "$BROKER" --config="$DIR/broker.json" --check-config
expect 2 "tls" "leyr.base_uri" "leyr.client_secret_file" "connections" "admin_listen" -- \
  "$BROKER" --config="$DIR/bad.json" --check-config
expect 2 "LEYR_BROKER_STATE_TTL" "LEYR_BROKER_NO_SUCH_KEY" -- \
  env LEYR_BROKER_STATE_TTL=sekrit-value-77 LEYR_BROKER_NO_SUCH_KEY=1 \
  "$BROKER" --config="$DIR/broker.json" --check-config
expect 2 "log_level" -- env LEYR_BROKER_LOG_LEVEL=sekrit-value-77 \
  "$BROKER" --config="$DIR/broker.json" --check-config

printf '{"listen":"127.0.0.1:0","broker_target":"127.0.0.1:50051"}' > "$DIR/shim.json"
expect 0 "is valid" -- "$SHIM" --config="$DIR/shim.json" --check-config
expect 0 "is valid" -- env LEYR_SHIM_BROKER_TIMEOUT=3s "$SHIM" --config="$DIR/shim.json" --check-config
expect 2 "listen" -- env LEYR_SHIM_LISTEN=not-an-address "$SHIM" --config="$DIR/shim.json" --check-config
expect 2 "LEYR_SHIM_MAX_CONNECTIONS" -- env LEYR_SHIM_MAX_CONNECTIONS=lots \
  "$SHIM" --config="$DIR/shim.json" --check-config

cat > "$DIR/sandbox.json" <<JSON
{"listen":"127.0.0.1:0","leyr_client_id":"leyr-client","leyr_client_secret_file":"$DIR/secret",
 "clients":[{"client_id":"athena-client","redirect_uri":"http://127.0.0.1:8080/oauth/callback"}]}
JSON
expect 0 "is valid" -- timeout 10 "$SANDBOX" --config="$DIR/sandbox.json" --check-config
expect 0 "is valid" -- env LEYR_SANDBOX_LEYR_LATENCY=1s "$SANDBOX" --config="$DIR/sandbox.json" --check_config
expect 2 "code_lifetime" -- env LEYR_SANDBOX_CODE_LIFETIME=-5s \
  "$SANDBOX" --config="$DIR/sandbox.json" --check-config
expect 2 "listen" -- env LEYR_SANDBOX_LISTEN=not-an-address \
  "$SANDBOX" --config="$DIR/sandbox.json" --check-config
expect 2 "leyr_client_secret_file" -- env LEYR_SANDBOX_LEYR_CLIENT_SECRET_FILE="$DIR/missing" \
  "$SANDBOX" --config="$DIR/sandbox.json" --check-config

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all checks passed"
