#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's test command, three passes:
#   1. build-test/, warnings as errors: every meson test suite (unit,
#      integration, conformance; gpu tests skip without a GPU; fuzz runs
#      each libFuzzer target for a bounded time, about 100 s in all, or says
#      why it is skipped).
#   2. build-asan/, AddressSanitizer + UndefinedBehaviorSanitizer with leak
#      detection, only the programs and files its tests use built
#      (deploy/test_targets.py; bench/, the man pages and the GPT example
#      are pass 1's), the test programs' own code at -O1 (tests/meson.build):
#      the unit, conformance and integration suites again, but
#      not `package` (the .deb's programs are built without sanitizers),
#      `lint` (greps and deploy checks: no program of ours runs) or
#      `long-training` (gpt_vs_torch, resnet_learns, torchvision_vs_torch:
#      minutes of kernels that the unit suites and the zoo tests run under
#      the sanitizers too). Only
#      the third-party leaks named in deploy/lsan.supp are suppressed. CUDA
#      is not built there: without a GPU its code cannot run beyond NVRTC,
#      which pass 1 tests, and LeakSanitizer's tracer crashes walking the
#      thread-local storage NVRTC sets up in a rank of a parallel plan
#      ("Tracer caught signal 11"). TY_TEST_SUBSET=1 there: tests that sweep
#      the same code paths over many cases run a representative part of
#      them, every assertion kept (tests/support/subset.h: ops_plan's solver
#      seeds and its 2e7-node brute-force refusal, the graph tests' steps,
#      the plan tests' second model, and ten graph jobs of the plan,
#      graph_plan and graph suites whose paths their other jobs and the
#      in-process rank tests run: tests/integration/ranks.h's
#      rk_full_pass_only); integration cases whose daemon paths another
#      case runs under the sanitizers skip there, naming it
#      (tests/integration/harness.h: it_full_pass_only in this pass,
#      it_unsanitized_only in passes 2 and 3); pass 1 runs every case.
#   3. build-tsan/, ThreadSanitizer: the programs whose code runs threads
#      (traind's group-commit thread, trainworkerd's libuv thread pool,
#      trainrun's data-loader prefetch thread) under the integration tests
#      `hardening` and `cluster` and the unit test `trainrun`. Criterion's
#      sandbox (boxfort) cannot map its shared arena under TSan's memory
#      layout, so the Criterion drivers are pass 1's and only the programs
#      they start are TSan builds (TY_TRAIND, TY_TRAINWORKERD, TY_TRAINCTL,
#      TRAINRUN point at them). A race aborts the program (halt_on_error),
#      which fails its test, and the pass also fails on any report left in
#      the daemons' logs.
# The trees of passes 2 and 3 build while pass 1's tests run, at nice 19 (below).
# Tests run two at a time (TY_TEST_JOBS); integration tests have their own
# ports, directories, munged, users, cgroups and network namespaces
# (tests/integration/harness.h), and the longest start first (meson's
# `priority`), so that the tail is short.
# TY_NO_SANITIZE=1 skips passes 2 and 3. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
jobs=${TY_TEST_JOBS:-2}
builddir=${TY_BUILDDIR:-build-test}
asandir=${TY_ASAN_BUILDDIR:-build-asan}
tsandir=${TY_TSAN_BUILDDIR:-build-tsan}
asan_tests=(--suite unit --suite conformance --suite integration --no-suite package
            --no-suite lint --no-suite long-training "$@")
sanitize=1
[ "${TY_NO_SANITIZE:-0}" = 1 ] && sanitize=0
# Each phase's start is stamped with the seconds since the run began, so a
# slow CI names the phase that grew.
phase() { echo "test.sh: [${SECONDS} s] $*"; }

# The ASan tree builds only what pass 2's tests run (pass 1 builds
# everything): deploy/test_targets.py lists each one's program, its
# `depends` and the build-tree files its command line and environment
# name, and fails on a file no target makes; --no-rebuild then fails a
# test whose program is missing instead of building it. The TSan tree
# builds only the programs: a whole TSan tree would double the CI's time.
# The helpers the daemons start (tasks through trainyard-exec, models
# checked in trainyard-graphcheck) are found beside them, so they are
# built too. CUDA is built in neither.
build_sanitizer_trees() {
  if [ ! -f "$asandir/build.ninja" ]; then
    meson setup "$asandir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
      -Dfuzz=disabled -Dcuda=disabled
  fi
  ninja -C "$asandir" build.ninja # meson's files newer than the tree: regenerated first
  local targets
  targets=$(python3 deploy/test_targets.py "$asandir" "${asan_tests[@]}")
  # shellcheck disable=SC2086 # one target a line, no spaces in them
  ninja -C "$asandir" $targets
  if [ ! -f "$tsandir/build.ninja" ]; then
    meson setup "$tsandir" -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dfuzz=disabled \
      -Dcuda=disabled -Dtests=disabled
  fi
  ninja -C "$tsandir" daemon/traind daemon/graphcheck/trainyard-graphcheck worker/trainworkerd \
    worker/trainyard-exec cli/trainctl ops/trainrun/trainrun
  phase "the sanitizer trees are built"
}

phase "pass 1: building $builddir"
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir"
# Pass 1's tests wait on daemons, sockets and sleeps much of the time, so
# the sanitizer trees build beside them at the lowest CPU priority: they
# take only the CPU the tests leave idle (nice 19 weighs about 1/70 of a
# test's share when both want a core). Their output is printed once they
# are built; a failed build fails the run before pass 2.
san_log=$builddir/sanitizer-build.log
san_pid=
if [ "$sanitize" = 1 ]; then
  ( renice -n 19 -p "$BASHPID" > /dev/null && build_sanitizer_trees ) > "$san_log" 2>&1 &
  san_pid=$!
  trap '[ -n "$san_pid" ] && { pkill -TERM -P "$san_pid" 2>/dev/null; kill "$san_pid" 2>/dev/null; }' EXIT
fi
phase "pass 1: the test suites"
meson test -C "$builddir" --print-errorlogs --num-processes "$jobs" "$@"
if [ ! -x "$builddir/tests/fuzz/fuzz_frame" ]; then
  echo "test.sh: fuzzing skipped: clang's libFuzzer runtime was not found" \
       "(deploy/install-deps.sh installs clang and libclang-rt-14-dev); the corpora were replayed"
fi

[ "$sanitize" = 1 ] || exit 0

phase "waiting for the sanitizer trees' build (log: $san_log)"
san_rc=0
wait "$san_pid" || san_rc=$?
san_pid=
tail -n 20 "$san_log"
if [ "$san_rc" != 0 ]; then
  echo "test.sh: the sanitizer trees' build failed (exit $san_rc); the whole log:"
  cat "$san_log"
  exit 1
fi

phase "pass 2: AddressSanitizer and UndefinedBehaviorSanitizer"
TY_TEST_SUBSET=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions=$PWD/deploy/lsan.supp:print_suppressions=0 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C "$asandir" --no-rebuild --print-errorlogs --num-processes "$jobs" \
    "${asan_tests[@]}"

# OpenBLAS's own threads are not instrumented under TSan, so they stay
# off (OPENBLAS_NUM_THREADS=1).
tsan_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ty-tsan.XXXXXX")
# Traversable as /tmp is: tests that run trainctl as a user they made
# reach munged's socket and the cluster's files below it.
chmod 755 "$tsan_tmp"
tsan_run() { # tsan_run TEST_BINARY [ARGS...]
  phase "pass 3: ThreadSanitizer: $*"
  TMPDIR=$tsan_tmp TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/deploy/tsan.supp \
  OPENBLAS_NUM_THREADS=1 TY_TRAIND=$PWD/$tsandir/daemon/traind \
  TY_TRAINWORKERD=$PWD/$tsandir/worker/trainworkerd TY_TRAINCTL=$PWD/$tsandir/cli/trainctl \
  TRAINRUN=$PWD/$tsandir/ops/trainrun/trainrun "$@"
}
# One at a time: side by side (with other load on 2 cores) hardening's
# five-controller test ran past its 2-minute wait for the jobs under TSan.
tsan_run "$builddir/tests/unit/ops/train/test_trainrun"
tsan_run "$builddir/tests/integration/test_hardening" --jobs 1
tsan_run "$builddir/tests/integration/test_cluster" --jobs 1
if grep -rl "WARNING: ThreadSanitizer" "$tsan_tmp" > /dev/null 2>&1; then
  echo "test.sh: ThreadSanitizer reports in:" $(grep -rl "WARNING: ThreadSanitizer" "$tsan_tmp")
  exit 1
fi
rm -rf "$tsan_tmp"
phase "done"
