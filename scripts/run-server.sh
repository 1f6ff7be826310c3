#!/usr/bin/env bash
# Quick start: installs the packages, builds, creates development certificates
# (a CA, a server certificate and one client certificate per role), starts the
# simulated agent bank (ssc-banksim) for payouts, and runs sscd on 127.0.0.1
# hosting every service over its embedded RocksDB store in var/data, with
# mutual TLS. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
TARGETS="sscd sscctl ssc-banksim ssc-bench" bash scripts/build.sh
ADDR=${SSC_ADDR:-127.0.0.1:7443}
BANK_ADDR=${SSC_BANK_ADDR:-127.0.0.1:7600}
VAR=${SSC_VAR:-$PWD/var}
C="$VAR/certs"
mkdir -p "$VAR/data" "$VAR/bank"
bash deploy/make-certs.sh "$C" 2>/dev/null

build/services/banksim/ssc-banksim --listen "$BANK_ADDR" --data-dir "$VAR/bank" \
  --tls-cert "$C/server.crt" --tls-key "$C/server.key" --tls-client-ca "$C/ca.crt" \
  >"$VAR/bank.log" 2>&1 &
bank_pid=$!
trap 'kill $bank_pid 2>/dev/null || true' EXIT

CTL="build/services/sscctl/sscctl --addr $ADDR --ca $C/ca.crt"
cat <<MSG

sscd is starting on $ADDR (store: $VAR/data, certificates: $C, bank simulator
on $BANK_ADDR, its log in $VAR/bank.log, metrics on http://127.0.0.1:9464/metrics).
From another terminal, as a counter terminal (certificate OU=counter):

  $CTL --cert $C/counter.crt --key $C/counter.key \\
      card apply --id-number 34052419800101001X --name 张三 --region-code 510524100 \\
                 --bank-code ICBC --instant-issuance --bank-account 6222020000000001
  $CTL --cert $C/counter.crt --key $C/counter.key \\
      card get-person --id-number 34052419800101001X

Each role has a certificate in $C (<role>.crt / <role>.key): counter,
card_bureau, mobile_channel, terminal, finance_maker, finance_checker,
statistician, auditor, admin. \`build/services/sscctl/sscctl --help\` lists every command.
MSG
build/services/sscd/sscd --config deploy/sscd.toml --listen "$ADDR" --data-dir "$VAR/data" \
  --tls-cert "$C/server.crt" --tls-key "$C/server.key" --tls-client-ca "$C/ca.crt" \
  --services card,audit,ecard,report,payout,admin \
  --payout-bank-address "localhost:${BANK_ADDR##*:}" --payout-bank-ca "$C/ca.crt" \
  --payout-bank-cert "$C/sscd-bank-client.crt" --payout-bank-key "$C/sscd-bank-client.key"
