#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's test command: installs what the build needs, configures a
# warnings-as-errors build in build-test/, and runs every meson test suite
# (unit, integration, conformance; gpu tests skip without a GPU). Then it
# builds build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs the unit, conformance and integration suites again, so memory
# errors and undefined behaviour fail the run too (TY_NO_SANITIZE=1 skips
# that second pass). Leak detection is off there: hwloc's topology loader
# keeps allocations for the life of the process.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
jobs=${TY_TEST_JOBS:-2}
builddir=${TY_BUILDDIR:-build-test}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir"
meson test -C "$builddir" --print-errorlogs --num-processes "$jobs" "$@"

if [ "${TY_NO_SANITIZE:-0}" != 1 ]; then
  asandir=${TY_ASAN_BUILDDIR:-build-asan}
  if [ ! -f "$asandir/build.ninja" ]; then
    meson setup "$asandir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
  fi
  ninja -C "$asandir"
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C "$asandir" --print-errorlogs --num-processes "$jobs" \
      --suite unit --suite conformance --suite integration "$@"
fi
