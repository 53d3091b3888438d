#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Keeps the layering of docs/architecture.md one-way by grepping includes:
#   lib/ -> proto/ -> ops/, scheduler/ -> daemon/, worker/, cli/
# scheduler/, ops/plan/ and ops/shard/ stay pure (no sockets, SQLite, libuv,
# protobuf or threads), ops/ headers name no CUDA types, and nothing below the binaries
# includes them. Two rules keep one definition per concept:
#   - an internal header (*_internal.h) is included only from its own folder
#     and that folder's subfolders, as libuv's src/unix/ includes
#     src/uv-common.h: ops/kernels/gemm.c may include ops/ops_internal.h, but
#     ops/exec.c may not include ops/fusion/fusion_internal.h, nor
#     ops/fusion/ include ops/memplan/memplan_internal.h, nor tests/ any;
#   - an RPC method name appears as a string literal only in
#     proto/methods.h; everything else uses its TY_M_* constant.
# Usage: layers.sh [ROOT]; tests/lint/layers_selftest.sh checks that each
# rule fails on a bad example.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
fail=0
sources='lib proto ops scheduler daemon worker cli tests bench examples'

report() { # report WHAT HITS
  if [ -n "$2" ]; then
    printf '%s:\n%s\n' "$1" "$2"
    fail=1
  fi
}

forbid() { # forbid DIR REGEX WHY
  [ -d "$1" ] || return 0
  report "layer violation in $1 ($3)" \
    "$(grep -rnE --include='*.c' --include='*.h' "^#include [<\"]($2)" "$1" 2>/dev/null)"
}
forbid lib 'proto/|ops/|scheduler/|daemon/|worker/|cli/' 'lib/ is the base layer'
forbid proto 'ops/|scheduler/|daemon/|worker/|cli/' 'proto/ sits below ops and scheduler'
forbid scheduler 'uv\.h|sqlite3\.h|protobuf-c/|proto/|lib/rpc/|lib/wire/|ops/|daemon/|worker/|cli/' 'scheduler/ is pure'
forbid ops 'daemon/|worker/|cli/|scheduler/|sqlite3\.h' 'ops/ does not know the daemons'
forbid ops/plan 'uv\.h|sqlite3\.h|protobuf-c/|proto/|lib/rpc/|lib/wire/|pthread\.h|sys/socket\.h|ops/collective/|ops/trainrun/' 'ops/plan/ is pure'
forbid ops/shard 'uv\.h|sqlite3\.h|protobuf-c/|proto/|lib/rpc/|lib/wire/|pthread\.h|sys/socket\.h|mpi\.h|ops/collective/|ops/train/|ops/trainrun/' 'ops/shard/ is pure: its collectives come through ty_shard_comm'
forbid ops/train 'mpi\.h|ops/collective/|ops/trainrun/' 'ops/train gets its collectives through hooks'
forbid daemon 'worker/|cli/' 'binaries do not include each other'
forbid worker 'daemon/|cli/' 'binaries do not include each other'
forbid cli 'daemon/|worker/' 'binaries do not include each other'

if [ -d ops ]; then
  report 'CUDA headers included from ops/ headers (keep them in .c files)' \
    "$(find ops -name '*.h' -exec grep -lE '^#include [<"](cuda|cublas|cudnn|nccl|nvrtc)' {} + 2>/dev/null)"
fi

# Internal headers: included only from their own folder and its subfolders.
# ops/ is being regrouped into one module per folder in parallel; the
# includes it has today are listed here until that lands, and each entry
# must still exist.
known_internal='ops/memplan/memplan_internal.h ops/fusion/fusion_internal.h
ops/exec.c ops/fusion/fusion_internal.h
ops/exec.c ops/memplan/memplan_internal.h
ops/fusion/program.c ops/autodiff/grad_internal.h'
[ "${TY_LINT_NO_KNOWN:-0}" = 1 ] && known_internal=''
internal=''
for dir in $sources; do
  [ -d "$dir" ] || continue
  while IFS=: read -r file _ line; do
    header=$(sed -E 's/^#include "([^"]*)".*/\1/' <<<"$line")
    case "$(dirname "$file")/" in "$(dirname "$header")"/*) continue ;; esac
    grep -qxF "$file $header" <<<"$known_internal" && continue
    internal+="$file includes $header"$'\n'
  done < <(grep -rnE --include='*.c' --include='*.h' '^#include "[^"]*_internal\.h"' "$dir" 2>/dev/null)
done
report "internal header included from outside its folder (use the module's public header)" \
  "${internal%$'\n'}"
while read -r file header; do
  [ -n "$file" ] || continue
  grep -qsF "#include \"$header\"" "$file" ||
    report 'stale entry in known_internal (remove it from tests/lint/layers.sh)' "$file $header"
done <<<"$known_internal"

# RPC method names: only proto/methods.h spells them.
if [ -f proto/methods.h ]; then
  names=$(sed -nE 's/^#define TY_M_[A-Z0-9_]+ +"([A-Za-z0-9]+)".*/\1/p' proto/methods.h | paste -sd'|')
  if [ -n "$names" ]; then
    hits=''
    for dir in $sources; do
      [ -d "$dir" ] || continue
      hits+=$(grep -rnE --include='*.c' --include='*.h' "\"($names)\"" "$dir" 2>/dev/null |
        grep -v '^proto/methods\.h:')$'\n'
    done
    report 'RPC method name as a string literal (use its TY_M_* constant from proto/methods.h)' \
      "$(sed '/^$/d' <<<"$hits")"
  fi
fi

[ "$fail" = 0 ] && echo "layers: ok"
exit "$fail"
