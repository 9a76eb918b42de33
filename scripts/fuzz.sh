#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan + libFuzzer) and runs each
# for SECONDS (default 30), starting from the seed corpus in tests/fuzz/corpus/<fuzzer>/.
# New inputs go to $BUILD_DIR/fuzz-corpus/<fuzzer>/ (the committed seeds are not changed),
# crashes to $BUILD_DIR/fuzz-artifacts/. Prints each fuzzer's executions; exits non-zero when a
# fuzzer fails (crash, leak, timeout, UBSan report).
#   scripts/fuzz.sh [SECONDS]        LEYR_FUZZ_BUILD_DIR (default build-fuzz), LEYR_FUZZ_JOBS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-30}
BUILD_DIR=${LEYR_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${LEYR_FUZZ_JOBS:-2}
FUZZERS=(fuzz_form_urlencoded fuzz_call_leyr fuzz_canonical_origin fuzz_broker_config
  fuzz_sealed_record)
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLEYR_FUZZ=ON -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target "${FUZZERS[@]}"

mkdir -p "$BUILD_DIR/fuzz-artifacts"
failed=()
summary=""
for f in "${FUZZERS[@]}"; do
  corpus="$BUILD_DIR/fuzz-corpus/$f"
  log="$BUILD_DIR/fuzz-artifacts/$f.log"
  mkdir -p "$corpus"
  echo "fuzz: $f for ${SECONDS_EACH}s"
  if UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$BUILD_DIR/tests/fuzz/$f" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
       -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$f-" \
       "$corpus" "tests/fuzz/corpus/$f" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$f")
    tail -n 60 "$log"
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  summary+=$(printf '%-24s %-6s executions=%s corpus=%s' "$f" "$status" "${execs:-?}" \
    "$(ls "$corpus" | wc -l)")$'\n'
done
echo "fuzz summary (${SECONDS_EACH}s each):"
printf '%s' "$summary"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (logs and crashing inputs in $BUILD_DIR/fuzz-artifacts/)"
  exit 1
fi
