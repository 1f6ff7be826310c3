#!/usr/bin/env bash
# Everything needed to test ssc on a fresh Debian 12 machine: installs the
# packages, builds, lints the protos and runs every test (unit, store,
# service over real gRPC+TLS, end to end with the real binaries, crash).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
bash scripts/lint-proto.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${TEST_JOBS:-2}" --timeout 1200
