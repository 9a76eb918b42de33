#!/usr/bin/env bash
# Installs what is needed, builds everything, and runs every test (unit, end to end, buf lint,
# reflection), then the fuzzers for a bounded time and the whole suite under ASan and UBSan.
# Exits non-zero when anything fails. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${LEYR_BUILD_DIR:-build}

scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j2
ctest --test-dir "$BUILD_DIR" -j2 --output-on-failure --timeout 300
# libFuzzer targets (tests/fuzz), 60 s each, in their own clang build directory.
scripts/fuzz.sh 60
# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer (clang, build-asan).
scripts/test-sanitizers.sh
