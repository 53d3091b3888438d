#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/test_targets.py (the sanitizer pass builds only what its tests
# use) on a small meson project: a selected test's program, its `depends`
# and a build-tree file its environment names are listed, what no selected
# test uses is not, and a test that names a build-tree file no target makes
# is refused with its name. Owns a scratch folder, removed on exit.
set -u
script="$(cd "$(dirname "$0")/../.." && pwd)/deploy/test_targets.py"
tree=$(mktemp -d "${TMPDIR:-/tmp}/ty-targets.XXXXXX")
trap 'rm -rf "$tree"' EXIT
status=0
mkdir -p "$tree/src"
printf 'int main(void) { return 0; }\n' >"$tree/src/t.c"
write_project() { # write_project EXTRA_MESON_LINES
  cat >"$tree/src/meson.build" <<EOF
project('tt', 'c')
used = executable('used', 't.c')
unused = executable('unused', 't.c')
data = custom_target('data', output : 'data.txt', command : ['touch', '@OUTPUT@'])
test('a', executable('test_a', 't.c'), suite : 'unit', depends : [used],
  env : ['TY_DATA=' + data.full_path(), 'TY_DIR=' + meson.current_build_dir()])
test('b', executable('test_b', 't.c'), suite : 'other', depends : [unused])
$1
EOF
}
expect() { # expect WANT_RC WHAT MESON_TEST_ARGS... (then: want/refuse lines on stdin)
  local want=$1 what=$2 out rc line ok=1
  shift 2
  out=$(python3 "$script" "$tree/build" "$@" 2>&1)
  rc=$?
  [ "$rc" = "$want" ] || ok=0
  while read -r kind line; do
    case $kind in
      has) grep -qxF -- "$line" <<<"$out" || ok=0 ;;
      lacks) ! grep -qxF -- "$line" <<<"$out" || ok=0 ;;
      says) grep -qF -- "$line" <<<"$out" || ok=0 ;;
    esac
  done
  if [ "$ok" = 1 ]; then
    printf 'ok: %s\n' "$what"
  else
    printf 'FAIL: %s: rc %s (want %s), output:\n%s\n' "$what" "$rc" "$want" "$out"
    status=1
  fi
}
setup() {
  rm -rf "$tree/build"
  meson setup "$tree/build" "$tree/src" >/dev/null 2>&1 || {
    echo "FAIL: meson setup of the example project"
    exit 1
  }
}

write_project ''
setup
expect 0 'suite unit: its program, depends and named file, nothing of suite other' --suite unit <<EOF
has test_a
has used
has data.txt
lacks unused
lacks test_b
EOF
expect 0 'no-suite unit: the other test alone' --no-suite unit <<EOF
has test_b
has unused
lacks used
EOF
expect 1 'no test selected is refused' --suite none <<EOF
says no test selected
EOF

write_project "test('c', executable('test_c', 't.c'), suite : 'unit',
  env : ['TY_BIN=' + meson.current_build_dir() / 'never-built'])"
setup
expect 1 'a build-tree file no target makes is refused, naming the test' --suite unit <<EOF
says test tt:unit / c names
says never-built, which no target builds
EOF
exit $status
