#!/usr/bin/env bash
# Usage: mkcerts.sh DIR
# Creates (if missing) a throwaway test CA and a server certificate for
# IP:127.0.0.1 / DNS:localhost signed by it (and for
# DNS:issuer.keygate-test.example, which tests/it/setup.rs resolves to
# 127.0.0.1 for keygate alone, to play a remote server):
#   DIR/ca.pem  DIR/ca-key.pem  DIR/server.pem  DIR/server-key.pem
# EC P-256 keys, SHA-256 signatures, 825 days validity. Idempotent.
set -euo pipefail
dir="${1:?usage: mkcerts.sh DIR}"
mkdir -p "$dir"
cd "$dir"
if [[ -s ca.pem && -s ca-key.pem && -s server.pem && -s server-key.pem ]]; then
  exit 0
fi
# Don't let a global OPENSSL_CONF change anything.
export OPENSSL_CONF=/dev/null
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = keygate test CA
O = keygate tests
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
CNF

cat > "$tmp/leaf.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
O = keygate tests
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:issuer.keygate-test.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
CNF

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca-key.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$tmp/ca-key.pem" -out "$tmp/ca-key.p8.pem"
openssl req -new -x509 -sha256 -days 825 -key "$tmp/ca-key.p8.pem" \
  -config "$tmp/ca.cnf" -extensions v3_ca -out "$tmp/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server-key.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$tmp/server-key.pem" -out "$tmp/server-key.p8.pem"
openssl req -new -sha256 -key "$tmp/server-key.p8.pem" -config "$tmp/leaf.cnf" -out "$tmp/server.csr"
openssl x509 -req -sha256 -days 825 -in "$tmp/server.csr" \
  -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.p8.pem" -set_serial "0x$(openssl rand -hex 16)" \
  -extfile "$tmp/leaf.cnf" -extensions v3_leaf -out "$tmp/server.pem" 2>/dev/null

openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" >/dev/null
install -m 0644 "$tmp/ca.pem" ca.pem
install -m 0600 "$tmp/ca-key.p8.pem" ca-key.pem
install -m 0644 "$tmp/server.pem" server.pem
install -m 0600 "$tmp/server-key.p8.pem" server-key.pem
