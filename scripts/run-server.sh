#!/usr/bin/env bash
# Quick start: installs the packages, builds, creates development certificates
# (a CA, a server certificate and one client certificate per role) and runs
# sscd on 127.0.0.1 with its embedded RocksDB store in var/data, over mTLS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ADDR=${SSC_ADDR:-127.0.0.1:7443}
VAR=${SSC_VAR:-$PWD/var}
mkdir -p "$VAR/data"
bash deploy/make-certs.sh "$VAR/certs" >/dev/null
C="$VAR/certs"
cat <<MSG

sscd is starting on $ADDR (data: $VAR/data, certificates: $C).
Call it from another terminal, for example as a counter terminal:

  build/sscctl --addr $ADDR --ca $C/ca.crt --cert $C/counter.crt --key $C/counter.key \\
      apply --id-number 34052419800101001X --name 张三 --region 510524100 \\
            --bank-code ICBC --instant --bank-account 6222020000000001
  build/sscctl --addr $ADDR --ca $C/ca.crt --cert $C/counter.crt --key $C/counter.key \\
      get-person --id-number 34052419800101001X

Certificates for the other roles are in $C (<role>.crt/.key). Stop with Ctrl-C.
MSG
exec build/sscd --config deploy/sscd.toml --listen "$ADDR" --data-dir "$VAR/data" \
  --tls-cert "$C/server.crt" --tls-key "$C/server.key" --tls-client-ca "$C/ca.crt" \
  --services card,ecard,payout,report,audit
