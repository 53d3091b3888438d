#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Keeps the layering of docs/architecture.md one-way by grepping includes:
#   lib/ -> proto/ -> ops/, scheduler/ -> daemon/, worker/, cli/
# scheduler/ and ops/plan/ stay pure (no sockets, SQLite, libuv, protobuf or
# threads), ops/ headers name no CUDA types, and nothing below the binaries
# includes them.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
fail=0
forbid() { # forbid DIR REGEX WHY
  local hits
  hits=$(grep -rnE --include='*.c' --include='*.h' "^#include [<\"]($2)" "$1" 2>/dev/null)
  if [ -n "$hits" ]; then
    printf 'layer violation in %s (%s):\n%s\n' "$1" "$3" "$hits"
    fail=1
  fi
}
forbid lib 'proto/|ops/|scheduler/|daemon/|worker/|cli/' 'lib/ is the base layer'
forbid proto 'ops/|scheduler/|daemon/|worker/|cli/' 'proto/ sits below ops and scheduler'
forbid scheduler 'uv\.h|sqlite3\.h|protobuf-c/|proto/|lib/rpc/|ops/|daemon/|worker/|cli/' 'scheduler/ is pure'
forbid ops 'daemon/|worker/|cli/|scheduler/|sqlite3\.h' 'ops/ does not know the daemons'
forbid ops/plan 'uv\.h|sqlite3\.h|protobuf-c/|proto/|lib/rpc/|pthread\.h|sys/socket\.h|ops/collective/|ops/trainrun/' 'ops/plan/ is pure'
forbid daemon 'worker/|cli/' 'binaries do not include each other'
forbid worker 'daemon/|cli/' 'binaries do not include each other'
forbid cli 'daemon/|worker/' 'binaries do not include each other'
cuda_in_headers=$(grep -lE '^#include [<"](cuda|cublas|cudnn|nccl|nvrtc)' $(find ops -name '*.h') 2>/dev/null)
if [ -n "$cuda_in_headers" ]; then
  printf 'CUDA headers included from ops/ headers (keep them in .c files):\n%s\n' "$cuda_in_headers"
  fail=1
fi
[ "$fail" = 0 ] && echo "layers: ok"
exit "$fail"
