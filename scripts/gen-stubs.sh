#!/usr/bin/env bash
# Regenerates the client stubs of every language from protos/ (the contract) with protoc.
#   Python: protoc --python_out + Debian's grpc_python_plugin   -> OUT/python/
#   Go:     protoc-gen-go + protoc-gen-go-grpc (GOPATH layout)   -> OUT/go/src/leyr/broker/v1/
#   Node:   nothing to generate: @grpc/proto-loader reads protos/ at run time
#           (client/node/broker.js); this script checks those files load.
# Generated code is not committed: the tests run this script into the build directory, so the
# stubs can never drift from the .proto files.
# Usage: scripts/gen-stubs.sh [OUT]   (default OUT: build/stubs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build/stubs}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PROTOS=(leyr/broker/v1/authorization.proto leyr/broker/v1/broker_service.proto)
RPC_PROTOS=(google/rpc/status.proto google/rpc/error_details.proto)

# Python: the API and the two google.rpc messages that carry error reasons (python3-grpcio has
# no grpcio-status). No __init__.py files: implicit namespace packages, so that "google.rpc"
# merges with the system's "google.protobuf".
rm -rf "$OUT/python" && mkdir -p "$OUT/python"
protoc -I "$ROOT/protos" --python_out="$OUT/python" --grpc_out="$OUT/python" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "${PROTOS[@]}" "${RPC_PROTOS[@]}"

# Python, for tests/clients/describe.py only: gRPC server reflection (v1alpha, what gRPC 1.51
# serves), from Debian's grpc-proto, as top-level modules so they do not shadow grpcio's "grpc".
rm -rf "$OUT/python-reflection" && mkdir -p "$OUT/python-reflection"
protoc -I /usr/share/grpc-proto/grpc/reflection/v1alpha --python_out="$OUT/python-reflection" \
  --grpc_out="$OUT/python-reflection" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  reflection.proto

# Go: only the API. google.rpc comes from Debian's genproto (the go_package of protos/google/rpc
# points there), imported as google.golang.org/genproto/googleapis/rpc/errdetails.
rm -rf "$OUT/go/src/leyr" && mkdir -p "$OUT/go/src"
protoc -I "$ROOT/protos" --go_out="$OUT/go/src" --go-grpc_out="$OUT/go/src" "${PROTOS[@]}"

# Node: load the files the way the example does, to fail here rather than at run time.
if [ -d "$ROOT/client/node/node_modules/@grpc/proto-loader" ]; then
  (cd "$ROOT/client/node" && node -e 'require("./broker.js").loadPackage()')
fi
echo "gen-stubs: python -> $OUT/python, go -> $OUT/go (GOPATH), node loads protos/ at run time"
