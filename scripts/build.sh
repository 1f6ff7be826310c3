#!/usr/bin/env bash
# Configures and builds ssc into build/ (Release). Extra arguments go to CMake,
# e.g. scripts/build.sh -DSSC_SANITIZE=ON to build with ASan+UBSan
# (-DSSC_SANITIZE=thread: ThreadSanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
# TARGETS="sscd sscctl" builds only those.
cmake --build "$BUILD_DIR" -j "$JOBS" ${TARGETS:+--target $TARGETS}
