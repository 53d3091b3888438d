#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages Trainyard builds, tests and runs with.
# Idempotent: packages already present are skipped, so a second run costs a
# dpkg query and nothing else. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config gcc protobuf-c-compiler protobuf-compiler
  # libraries
  libuv1-dev libprotobuf-c-dev libsqlite3-dev libhwloc-dev libopenblas-dev
  zlib1g-dev libopenmpi-dev openmpi-bin libonnx-dev
  libzip-dev  # libzip: .npz archives of training arrays (ops/data/npz.c)
  libcsv-dev  # libcsv: RFC 4180 quoting of CSV training data (ops/data/csv.c)
  libpng-dev libjpeg62-turbo-dev # PNG and JPEG decoding of image-folder training data (ops/data/image.c)
  libssl-dev  # libcrypto: HMAC-SHA256 task tokens (lib/token)
  nettle-dev  # Nettle: the request digest and cluster-key MAC (lib/auth), no set-up at start
  libglpk-dev # GLPK: the planner's ILP for graphs elimination cannot reduce (ops/plan)
  libdnnl-dev # oneDNN: Conv forward and backward (ops/kernels/conv_dnnl.c; optional)
  libjs-chart.js # the web console's charts (built into traind)
  munge libmunge-dev # MUNGE: every request's credential, as Slurm's (lib/auth)
  # tests: Criterion, promtool, the ONNX backend node tests, real data
  libcriterion-dev prometheus libonnx-testdata dataset-fashion-mnist
  python3 python3-onnx python3-numpy python3-protobuf sqlite3 procps
  chromium    # the web console tested in a real (headless) browser
  # examples/models: the GPT example is exported from PyTorch and trained on
  # Debian's fortunes (tokenised at build time); the build skips both when
  # absent, and the gpt_vs_torch test then exits 77; torchvision's models
  # are tests/integration's torchvision_vs_torch (exits 77 without it)
  python3-torch python3-torchvision fortunes
  # fuzzing (tests/fuzz): clang's libFuzzer with ASan and UBSan
  clang libclang-rt-14-dev
  # tests/lint/format.sh: the tree as clang-format 14 writes it (.clang-format)
  clang-format
  # systemd units (deploy/systemd): sd_notify readiness and watchdog
  # (lib/notify); systemd-analyze verifies the units in the unit suite
  libsystemd-dev systemd
  # the Debian package (debian/, deploy/build-deb.sh): debhelper builds it,
  # help2man writes the man pages from --help, lintian checks it
  debhelper help2man lintian dpkg-dev fakeroot
)
if [ "${TY_BENCH_DEPS:-0}" = 1 ]; then
  packages+=(slurm-wlm munge hyperfine python3-websockets bc curl)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "install-deps: installing ${missing[*]}" >&2
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
