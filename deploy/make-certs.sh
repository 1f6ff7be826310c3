#!/bin/sh
# Creates the TLS material for sscd in <outdir>: a CA, a server certificate for
# localhost / 127.0.0.1 / ::1 (SAN), and one client certificate per role
# (subject CN=<role>-01, OU=<role>; sscd reads the role from the OU).
# Idempotent: files that already exist are kept. Private keys are mode 0600.
# Keys are EC P-256. Extra server names: SSC_SERVER_SANS="DNS:ssc.example,IP:10.0.0.5".
#
#   deploy/make-certs.sh /etc/ssc/tls
#
# Result: ca.crt ca.key server.crt server.key <role>.crt <role>.key
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 <outdir>" >&2
  exit 2
fi
out=$1
roles="counter card_bureau mobile_channel terminal finance_maker finance_checker statistician auditor admin"
days=${SSC_CERT_DAYS:-825}
org=${SSC_CERT_ORG:-Xuyong HRSS}

mkdir -p "$out"
umask 077

new_key() {
  [ -f "$1" ] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp" 2>/dev/null
  chmod 600 "$1.tmp"
  mv "$1.tmp" "$1"
}

# sign <name> <subject> <extfile>
sign() {
  name=$1 subj=$2 ext=$3
  [ -f "$out/$name.crt" ] && return 0
  new_key "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "$subj" -out "$out/$name.csr"
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -CAserial "$out/ca.srl" -days "$days" -sha256 \
    -extfile "$ext" -out "$out/$name.crt.tmp" 2>/dev/null
  rm -f "$out/$name.csr"
  chmod 644 "$out/$name.crt.tmp"
  mv "$out/$name.crt.tmp" "$out/$name.crt"
}

if [ ! -f "$out/ca.crt" ]; then
  new_key "$out/ca.key"
  openssl req -new -x509 -key "$out/ca.key" -days 3650 -sha256 \
    -subj "/O=$org/CN=ssc CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.crt.tmp"
  chmod 644 "$out/ca.crt.tmp"
  mv "$out/ca.crt.tmp" "$out/ca.crt"
fi

ext=$(mktemp)
trap 'rm -f "$ext"' EXIT

sans="DNS:localhost,IP:127.0.0.1,IP:::1"
if [ -n "${SSC_SERVER_SANS:-}" ]; then sans="$sans,$SSC_SERVER_SANS"; fi
cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans
EXT
sign server "/O=$org/OU=server/CN=localhost" "$ext"

cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
for role in $roles; do
  sign "$role" "/O=$org/OU=$role/CN=$role-01" "$ext"
done
# sscd's own client certificate for the agent bank's gateway (payouts).
sign sscd-bank-client "/O=$org/OU=sscd/CN=sscd-01" "$ext"

echo "TLS material in $out" >&2
