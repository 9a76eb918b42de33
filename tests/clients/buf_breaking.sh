#!/usr/bin/env bash
# `buf breaking` on protos/ (rules: protos/buf.yaml, FILE) against the previous committed version:
#   - with uncommitted changes under protos/: against HEAD's protos/;
#   - otherwise: against protos/ as it was before the last commit that changed it, so the most
#     recent change to the contract is always the one checked (also in a fresh clone).
# Exits 77 (CTest: skipped) when there is no previous version: not a git checkout, the protos'
# first commit, or a shallow clone without that history.
# Usage: buf_breaking.sh REPO_ROOT BUF_BIN
set -euo pipefail
ROOT=$1 BUF=$2
cd "$ROOT"
GIT_DIR=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || {
  echo "buf_breaking: not a git checkout; skipped"; exit 77; }
if [ -n "$(git status --porcelain -- protos)" ]; then
  AGAINST=$(git rev-parse HEAD)
  echo "buf_breaking: protos/ has uncommitted changes; against HEAD ($AGAINST)"
else
  LAST=$(git log -1 --format=%H -- protos)
  AGAINST=$(git rev-parse --verify -q "$LAST~1") || {
    echo "buf_breaking: no version of protos/ before $LAST in this clone; skipped"; exit 77; }
  echo "buf_breaking: against $AGAINST, the parent of $LAST ($(git log -1 --format=%s "$LAST"))"
fi
"$BUF" breaking protos --against "$GIT_DIR#ref=$AGAINST,subdir=protos"
echo "buf_breaking: no breaking change"
