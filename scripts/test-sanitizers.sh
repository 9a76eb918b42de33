#!/usr/bin/env bash
# Builds the whole tree with clang, AddressSanitizer and UndefinedBehaviorSanitizer (any UBSan
# report aborts) in build-asan, and runs ctest there. Excluded, because they cannot be
# meaningful under ASan: label `bench` (BenchHarness.*: measures throughput) and Deploy*
# (compares the binaries' shared libraries with the runtime image's packages).
#   scripts/test-sanitizers.sh      LEYR_ASAN_BUILD_DIR (default build-asan), LEYR_ASAN_JOBS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${LEYR_ASAN_BUILD_DIR:-build-asan}
JOBS=${LEYR_ASAN_JOBS:-2}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cmake --build "$BUILD_DIR" -j"$JOBS"
ctest --test-dir "$BUILD_DIR" -j"$JOBS" --output-on-failure --timeout 600 \
  -LE '^bench$' -E '^Deploy'
