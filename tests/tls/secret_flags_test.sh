#!/usr/bin/env bash
# Secrets come only from files: no binary has a flag whose value is a secret. Every flag whose
# name speaks of a secret, token, password or key must name a file (allow-listed below), and no
# binary reads an environment variable for one (checked in the sources).
#   secret_flags_test.sh SOURCE_DIR BINARY...
set -euo pipefail
src=$1
shift
status=0
for bin in "$@"; do
  # Abseil binaries list every flag with --helpfull; the sandbox has its own --help.
  help=$("$bin" --helpfull 2>&1) || help=$("$bin" --help 2>&1) || true
  flags=$(grep -oE -- '--[a-z_]+' <<<"$help" | sed 's/^--//' | sort -u || true)
  if [[ -z "$flags" ]]; then
    echo "FAIL: $bin --helpfull listed no flags" >&2
    status=1
  fi
  for f in $flags; do
    if [[ "$f" =~ (secret|token|password|passwd|key|code|credential) ]]; then
      case "$f" in
        token_file|tls_key) ;;  # paths of files
        *) echo "FAIL: $(basename "$bin") has flag --$f that may carry a secret" >&2; status=1 ;;
      esac
    fi
  done
  echo "$(basename "$bin"): $(echo $flags | wc -w) flags checked"
done
# No getenv of anything secret in the servers or the client.
if grep -rnE 'getenv\("[A-Z_]*(SECRET|TOKEN|PASSWORD|KEY|CODE)[A-Z_]*"' "$src/server" "$src/client" \
    --include='*.cc' --include='*.h'; then
  echo "FAIL: a secret is read from the environment" >&2
  status=1
fi
exit $status
