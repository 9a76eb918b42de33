#!/usr/bin/env bash
# BeginAuthorization per second on the memory store and on PostgreSQL (a throw-away local
# cluster, scripts/pg-test-cluster.sh), against the real leyr-broker over gRPC on loopback.
#
#   scripts/pg-benchmark.sh [SECONDS=10] [THREADS=8]      (after building; LEYR_BUILD_DIR=build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${LEYR_BUILD_DIR:-build}
SECONDS_PER_RUN=${1:-10}
THREADS=${2:-8}
cmake --build "$BUILD_DIR" --target begin_benchmark >/dev/null
info=$(mktemp -d /tmp/leyr-pg-bench.XXXXXX)
trap 'scripts/pg-test-cluster.sh stop "$info" >/dev/null 2>&1 || true; rm -rf "$info"' EXIT
scripts/pg-test-cluster.sh start "$info" >/dev/null
echo "# $(nproc) CPUs; PostgreSQL 15 local throw-away cluster (fsync=off); build type: $(grep -m1 CMAKE_BUILD_TYPE:STRING "$BUILD_DIR/CMakeCache.txt" | cut -d= -f2)"
"$BUILD_DIR/tests/store/begin_benchmark" memory "$SECONDS_PER_RUN" "$THREADS"
LEYR_PG_INFO_DIR="$info" "$BUILD_DIR/tests/store/begin_benchmark" postgres "$SECONDS_PER_RUN" "$THREADS"
