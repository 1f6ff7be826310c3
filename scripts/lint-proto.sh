#!/usr/bin/env bash
# Lints the public API protos (proto/ssc/...) with buf, using buf.yaml at the
# repository root. Installs buf from npm into .tools/ on first use (the npm
# package ships the prebuilt binary for this platform); later runs reuse it.
#
# Usage: scripts/lint-proto.sh [extra buf lint flags, e.g. --error-format=json]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${root}/.tools"
buf="${tools}/node_modules/.bin/buf"

if [[ ! -x "${buf}" ]] || ! "${buf}" --version >/dev/null 2>&1; then
  command -v npm >/dev/null 2>&1 || {
    echo "lint-proto: npm is needed to install buf (scripts/install-deps.sh installs it)" >&2
    exit 2
  }
  echo "lint-proto: installing @bufbuild/buf into ${tools}" >&2
  npm install --prefix "${tools}" --no-audit --no-fund @bufbuild/buf >&2
fi

cd "${root}"
# proto/ is the module root: import paths match protoc's -I proto.
"${buf}" lint proto --config buf.yaml "$@"
echo "lint-proto: OK ($("${buf}" --version))"
