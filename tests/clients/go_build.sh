#!/usr/bin/env bash
# Builds client/go/main.go offline from Debian's Go packages, in GOPATH mode, against the stubs
# scripts/gen-stubs.sh wrote to STUBS/go. Usage: go_build.sh SOURCE_DIR STUBS OUTPUT_BINARY
set -euo pipefail
SRC=$1 STUBS=$(cd "$2" && pwd) OUT=$3
export GO111MODULE=off GOPATH="$STUBS/go:/usr/share/gocode" GOCACHE="$STUBS/gocache" \
  GOPROXY=off GOFLAGS= GOENV=off CGO_ENABLED=0
go build -o "$OUT" "$SRC/client/go/main.go"
