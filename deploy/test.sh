#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's test command: installs what the build needs, configures a
# warnings-as-errors build in build-test/, and runs every meson test suite
# (unit, integration, conformance; gpu tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
builddir=${TY_BUILDDIR:-build-test}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir"
meson test -C "$builddir" --print-errorlogs --num-processes "${TY_TEST_JOBS:-2}" "$@"
