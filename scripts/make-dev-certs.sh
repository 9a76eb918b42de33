#!/usr/bin/env bash
# Development and test certificates for leyr-broker's TLS and mTLS, made with the openssl command.
#
#   scripts/make-dev-certs.sh DIR [CLIENT...]
#
# Writes into DIR (created if needed):
#   ca.pem, ca.key            a CA (made only when DIR has none: reruns keep it)
#   server.pem, server.key    a server certificate for localhost and 127.0.0.1 (new each run,
#                             random serial), signed by the CA
#   CLIENT.pem, CLIENT.key    per CLIENT (default: shim app-a app-b) a client certificate whose
#                             SAN is URI:spiffe://leyr/CLIENT (and DNS:CLIENT.leyr.internal)
# Keys are P-256 and only readable by their owner. Never commit them: these are throwaway keys
# for a laptop or a test, not for production (use your PKI or cert-manager there).
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 DIR [CLIENT...]" >&2
  exit 2
fi
dir=$1
shift
clients=("$@")
[[ $# -eq 0 ]] && clients=(shim app-a app-b)
mkdir -p "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 8)"; }

if [[ ! -f "$dir/ca.pem" || ! -f "$dir/ca.key" ]]; then
  newkey "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 30 -subj "/CN=leyr dev CA $(openssl rand -hex 4)" \
    -set_serial "$(serial)" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"
fi

# issue NAME SUBJECT_CN SAN EXTENDED_KEY_USAGE
issue() {
  local name=$1 cn=$2 san=$3 eku=$4
  local tmp
  tmp=$(mktemp -d)
  newkey "$tmp/$name.key"
  openssl req -new -key "$tmp/$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
    "$san" "$eku" >"$tmp/ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
    -days 30 -sha256 -extfile "$tmp/ext" -out "$tmp/$name.pem" 2>/dev/null
  # Replace by rename, key first, so that a watcher never sees a half-written file.
  mv "$tmp/$name.key" "$dir/$name.key"
  mv "$tmp/$name.pem" "$dir/$name.pem"
  rm -rf "$tmp"
}

issue server localhost "DNS:localhost,IP:127.0.0.1" serverAuth
for c in "${clients[@]}"; do
  [[ "$c" == "none" ]] && continue
  issue "$c" "$c" "URI:spiffe://leyr/$c,DNS:$c.leyr.internal" clientAuth
done
echo "certificates in $dir: ca.pem server.pem $(printf '%s.pem ' "${clients[@]}")" >&2
