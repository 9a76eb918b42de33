#!/usr/bin/env bash
# The README's leyrctl walkthrough, run against the real stack (tests/clients/run_stack.sh sets
# LEYR_BROKER, LEYR_CONNECTION, LEYR_SANDBOX_URL). The browser step is done with curl: fetch the
# authorize page as JSON and POST its approve fields to the shim as a form.
# Usage: run_stack.sh ... -- leyrctl_test.sh LEYRCTL
set -euo pipefail
LEYRCTL=$1
export LEYRCTL_STATE_DIR
LEYRCTL_STATE_DIR=$(mktemp -d)
trap 'rm -rf "$LEYRCTL_STATE_DIR"' EXIT
fail() { echo "leyrctl_test: $*" >&2; exit 1; }

# begin prints the name and the authorize URL, and remembers the name.
out=$("$LEYRCTL" begin "$LEYR_CONNECTION")
echo "$out" | grep -q '^authorization: authorizations/' || fail "begin printed: $out"
url=$(echo "$out" | grep -o 'http://[^ ]*/oauth2/authorize?[^ ]*')
[ -n "$url" ] || fail "no authorize URL in: $out"

# Before the clinician approves: a short wait ends PENDING with exit code 8, and CallLeyr is
# refused as not active (exit code 5).
set +e
"$LEYRCTL" wait --timeout=1s >/dev/null 2>&1; rc=$?
"$LEYRCTL" call GET /api/emrs/athenapractice/care-units >/dev/null 2>&1; rc2=$?
set -e
[ "$rc" = 8 ] || fail "wait on a pending authorization exited $rc, want 8"
[ "$rc2" = 5 ] || fail "call on a pending authorization exited $rc2, want 5"

# The clinician approves (as the sandbox page's form would POST it).
page=$(curl -sf -H 'Accept: application/json' "$url")
form=$(/usr/bin/python3 -c '
import json, sys, urllib.parse
p = json.load(sys.stdin)
print(p["action"]); print(urllib.parse.urlencode(p["approve"]))' <<<"$page")
action=$(echo "$form" | sed -n 1p)
fields=$(echo "$form" | sed -n 2p)
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-www-form-urlencoded' \
  --data "$fields" "$action")
[ "$status" = 200 ] || [ "$status" = 303 ] || fail "the shim answered $status"

# wait (piped: no progress indicator on standard error) returns active.
"$LEYRCTL" wait --timeout=30s >"$LEYRCTL_STATE_DIR/wait.out" 2>"$LEYRCTL_STATE_DIR/wait.err"
grep -q ' active ' "$LEYRCTL_STATE_DIR/wait.out" || fail "wait printed: $(cat "$LEYRCTL_STATE_DIR/wait.out")"
[ ! -s "$LEYRCTL_STATE_DIR/wait.err" ] || fail "wait wrote to stderr when piped: $(cat "$LEYRCTL_STATE_DIR/wait.err")"

# call: pretty-printed JSON body, headers with --include, --json for scripts.
"$LEYRCTL" call GET /api/emrs/athenapractice/care-units | grep -q '"name"' || fail "call printed no care units"
"$LEYRCTL" call --include GET /api/emrs/athenapractice/care-units | head -1 | grep -qx 'HTTP 200' \
  || fail "--include did not print the status line"
"$LEYRCTL" --json call GET /api/emrs/athenapractice/care-units | grep -q '"status_code": 200' \
  || fail "--json did not print status_code"
echo '{"note":"from stdin"}' | "$LEYRCTL" call POST /api/emrs/athenapractice/echo \
  --headers=Content-Type:application/json --data=- | grep -q 'from stdin' || fail "body from stdin not sent"

# Leyr errors and broker refusals have their exit codes.
set +e
"$LEYRCTL" call GET /api/emrs/athenapractice/patients/nope >/dev/null 2>&1; rc=$?
"$LEYRCTL" call GET /api/emrs/otheremr/patients >/dev/null 2>&1; rc2=$?
"$LEYRCTL" get authorizations/AAAAAAAAAAAAAAAAAAAAAA >/dev/null 2>&1; rc3=$?
"$LEYRCTL" frobnicate >/dev/null 2>&1; rc4=$?
set -e
[ "$rc" = 7 ] || fail "a Leyr 404 exited $rc, want 7"
[ "$rc2" = 4 ] || fail "a path outside the EMR exited $rc2, want 4"
[ "$rc3" = 3 ] || fail "an unknown authorization exited $rc3, want 3"
[ "$rc4" = 2 ] || fail "an unknown command exited $rc4, want 2"

# list shows it; revoke ends it; call is then refused.
"$LEYRCTL" list | grep -q ' active ' || fail "list does not show the active authorization"
"$LEYRCTL" revoke | grep -q ' revoked ' || fail "revoke did not print revoked"
set +e
"$LEYRCTL" call GET /api/emrs/athenapractice/care-units >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 5 ] || fail "call after revoke exited $rc, want 5"
"$LEYRCTL" --help >"$LEYRCTL_STATE_DIR/help" || fail "--help exited non-zero"
grep -q "Commands:" "$LEYRCTL_STATE_DIR/help" || fail "--help does not list the commands"
"$LEYRCTL" call --help >"$LEYRCTL_STATE_DIR/help" || fail "call --help exited non-zero"
grep -q "leyrctl call METHOD PATH" "$LEYRCTL_STATE_DIR/help" || fail "call --help is not the call usage"
echo "leyrctl test passed"
