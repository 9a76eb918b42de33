#!/usr/bin/env bash
# Drives a real leyr-broker only through gRPC server reflection with `buf curl` (the same
# protocol grpcurl speaks): lists the services, checks health, and calls BeginAuthorization.
# These are the commands the README's "Debugging with grpcurl" section shows.
# Usage: reflection_test.sh BROKER_BIN BUF_BIN
set -euo pipefail
BROKER=$1
BUF=$2
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

printf 'canary-reflection-secret\n' > "$WORK/secret"
cat > "$WORK/broker.json" <<JSON
{"listen": ["127.0.0.1:0"], "plaintext_development": true,
 "leyr": {"base_uri": "http://127.0.0.1:9", "client_id": "c", "client_secret_file": "$WORK/secret"},
 "connections": [{"name": "athena-sandbox", "emr": "athenapractice", "base_uri": "https://clinic.example",
                  "client_id": "athena-client", "redirect_uri": "https://shim.example/oauth/callback"}]}
JSON
"$BROKER" --config="$WORK/broker.json" >"$WORK/broker.log" 2>&1 &
# Block until the broker logs the address it bound (tail -f follows the log as it grows).
grep -m1 -q '"msg":"listening"' < <(timeout 20 tail -n +1 -f "$WORK/broker.log") || true
ADDR=$(grep -o '"msg":"listening","address":"[^"]*"' "$WORK/broker.log" | head -1 | sed 's/.*"address":"\([^"]*\)"/\1/')
[ -n "$ADDR" ] || { echo "broker did not start:"; cat "$WORK/broker.log"; exit 1; }
CURL=("$BUF" curl --protocol grpc --http2-prior-knowledge)

echo "== list methods"
"${CURL[@]}" --list-methods "http://$ADDR" | tee "$WORK/methods"
for m in leyr.broker.v1.BrokerService/BeginAuthorization leyr.broker.v1.BrokerService/CallLeyr \
         grpc.health.v1.Health/Check; do
  grep -qx "$m" "$WORK/methods" || { echo "missing $m"; exit 1; }
done

echo "== health"
"${CURL[@]}" "http://$ADDR/grpc.health.v1.Health/Check" | tee "$WORK/health"
grep -q '"SERVING"' "$WORK/health"

echo "== begin"
"${CURL[@]}" -d '{"connection": "athena-sandbox"}' \
  "http://$ADDR/leyr.broker.v1.BrokerService/BeginAuthorization" | tee "$WORK/begin"
grep -q '"STATE_PENDING"' "$WORK/begin"
grep -q 'https://clinic.example/oauth2/authorize?state=' "$WORK/begin"

echo "== a refused call carries its reason"
if "${CURL[@]}" -d '{"connection": "nope"}' \
    "http://$ADDR/leyr.broker.v1.BrokerService/BeginAuthorization" >"$WORK/err" 2>&1; then
  echo "expected an error"; exit 1
fi
cat "$WORK/err"
grep -q '"not_found"' "$WORK/err"
echo "reflection test passed"
