#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The layering lint must fail where it should: on a small tree it passes,
# then each deliberately bad example (one per rule) must make it fail with
# that rule's message, and the example is removed again before the next.
set -u
lint="$(cd "$(dirname "$0")" && pwd)/layers.sh"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
status=0
mkdir -p "$tree"/{lib/base,proto,scheduler,daemon/sub,worker,cli,ops/fusion,tests/unit}
printf '#define TY_M_LAUNCH_TASK "LaunchTask"\n' >"$tree/proto/methods.h"
printf '#include "lib/base/base.h"\n' >"$tree/daemon/daemon_internal.h"
printf '#include "daemon/daemon_internal.h"\nint a;\n' >"$tree/daemon/a.c"
printf '#include "ops/fusion/fusion_internal.h"\n' >"$tree/ops/fusion/region.c"
printf 'static const char *m = TY_M_LAUNCH_TASK; /* "LaunchTask Request" is prose */\n' \
  >"$tree/worker/session.c"

expect() { # expect WANT_RC MESSAGE_PART WHAT
  local out rc
  out=$(TY_LINT_NO_KNOWN=1 bash "$lint" "$tree" 2>&1)
  rc=$?
  if [ "$rc" != "$1" ] || ! grep -qF -- "$2" <<<"$out"; then
    printf 'FAIL: %s: rc %s (want %s), output:\n%s\n' "$3" "$rc" "$1" "$out"
    status=1
  else
    printf 'ok: %s\n' "$3"
  fi
}

expect 0 'layers: ok' 'a clean tree passes'

bad() { # bad FILE CONTENT MESSAGE_PART WHAT
  printf '%s\n' "$2" >"$tree/$1"
  expect 1 "$3" "$4"
  rm -f "$tree/$1"
}
bad cli/bad.c '#include "daemon/daemon.h"' 'binaries do not include each other' \
  'cli includes a daemon header'
bad scheduler/bad.c '#include <uv.h>' 'scheduler/ is pure' 'scheduler includes libuv'
bad daemon/sub/bad.c '#include "daemon/daemon_internal.h"' 'daemon/sub/bad.c includes daemon/daemon_internal.h' \
  'an internal header from a subfolder'
bad ops/bad.c '#include "ops/fusion/fusion_internal.h"' 'ops/bad.c includes ops/fusion/fusion_internal.h' \
  "a subfolder's internal header from its parent"
bad tests/unit/bad.c '#include "daemon/daemon_internal.h"' 'tests/unit/bad.c includes' \
  'an internal header from a test'
bad worker/bad.c 'int rc = ty_rpc_call(c, "LaunchTask", NULL, 0);' 'RPC method name as a string literal' \
  'a method name as a literal'
bad tests/unit/bad.c 'const char *m = "LaunchTask";' 'tests/unit/bad.c:1' \
  'a method name as a literal in a test'
expect 0 'layers: ok' 'the clean tree passes again'
exit "$status"
