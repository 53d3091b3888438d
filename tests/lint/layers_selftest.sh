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
mkdir -p "$tree"/{lib/base,proto,scheduler,daemon/sub,worker,cli,ops/fusion,ops/memplan,tests/unit}
printf '#define TY_M_LAUNCH_TASK "LaunchTask"\n' >"$tree/proto/methods.h"
printf '#include "lib/base/base.h"\n' >"$tree/daemon/daemon_internal.h"
printf '#include "daemon/daemon_internal.h"\nint a;\n' >"$tree/daemon/a.c"
printf '#include "ops/fusion/fusion_internal.h"\n' >"$tree/ops/fusion/region.c"
printf '#include "daemon/daemon_internal.h"\n' >"$tree/daemon/sub/b.c" # a subfolder may
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
bad daemon/bad.c '#include "daemon/sub/sub_internal.h"' 'daemon/bad.c includes daemon/sub/sub_internal.h' \
  "a subfolder's internal header from its parent"
bad ops/memplan/bad.c '#include "ops/fusion/fusion_internal.h"' \
  'ops/memplan/bad.c includes ops/fusion/fusion_internal.h' "a sibling folder's internal header"
mkdir -p "$tree/ops/fusion2"
bad ops/fusion2/bad.c '#include "ops/fusion/fusion_internal.h"' 'ops/fusion2/bad.c includes' \
  'a folder whose name only starts like the header folder'
rmdir "$tree/ops/fusion2"
bad tests/unit/bad.c '#include "daemon/daemon_internal.h"' 'tests/unit/bad.c includes' \
  'an internal header from a test'
bad worker/bad.c 'int rc = ty_rpc_call(c, "LaunchTask", NULL, 0);' 'RPC method name as a string literal' \
  'a method name as a literal'
bad tests/unit/bad.c 'const char *m = "LaunchTask";' 'tests/unit/bad.c:1' \
  'a method name as a literal in a test'
expect 0 'layers: ok' 'the clean tree passes again'
exit "$status"
