#!/usr/bin/env bash
# Installs every Debian package and npm tool the build, the quick start and the tests need.
# Safe to run again: apt-get and npm skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config ca-certificates curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libssl-dev libcurl4-openssl-dev libmicrohttpd-dev
  googletest libgtest-dev libgmock-dev
  # PostgreSQL store: libpq to build, and the server for the throw-away test cluster
  # (scripts/pg-test-cluster.sh; perl, which it uses, comes with postgresql-common).
  libpq-dev postgresql-15
  # Client examples (client/python, client/go) and the browser test (tests/browser). Never
  # golang-goprotobuf-dev: it replaces the new Go protobuf stack with the old one.
  python3-grpcio python3-protobuf
  golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev
  golang-github-golang-protobuf-1-5-dev golang-google-protobuf-dev golang-google-genproto-dev
  chromium
  # Fuzzers (scripts/fuzz.sh) and the sanitizer build: clang 14 with its libFuzzer/ASan runtimes.
  clang libclang-rt-14-dev
)
# Node.js and npm (for buf): use the machine's own when present (it may not come from Debian's
# packages, and Debian's npm conflicts with other builds of nodejs).
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# buf (lint and curl) from npm, pinned in tools/package.json, installed into tools/node_modules.
if [ ! -x tools/node_modules/.bin/buf ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi

# The Node client example (@grpc/grpc-js) and the browser test (playwright-core, which uses
# Debian's chromium and downloads no browser), pinned by their package-lock.json files.
for dir in client/node tests/browser; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# The deploy test (tests/deploy: kubernetes-models and js-yaml validate the Kustomize overlays
# offline), pinned by its package-lock.json.
if [ ! -d tests/deploy/node_modules ] || [ tests/deploy/package-lock.json -nt tests/deploy/node_modules ]; then
  (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)
fi
