#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package, installed and run (issue 19): deb_inside.py installs
# the .deb with dpkg into a throwaway root, starts the units' ExecStart
# commands as systemd would (inside the part of their sandboxing that works
# without systemd), runs a command job and a graph job, takes a backup,
# stops them, and installs the package again over itself as an upgrade
# would, keeping conffile edits and state. The root is an overlay of this
# machine's / (writes go to a tmpfs) in private mount, network and PID
# namespaces: dpkg's maintainer scripts run for real, the daemons listen on
# their default ports on a loopback of their own, and everything started
# there dies with the namespace, also when the test fails.
#
# The package: $TY_DEB when set, else BUILD_DIR/deb/trainyard_*.deb when it
# is newer than every file of the checkout, else one built now with
# deploy/build-deb.sh (dpkg-buildpackage of the programs only, through
# ccache, its members gzip -1 compressed, then lintian, which must be
# clean: about a minute on 2 cores) into BUILD_DIR/deb.
# Root only; skips (77) without root, namespaces or the packaging tools.
# Usage: deb_install.sh SOURCE_ROOT BUILD_DIR
set -euo pipefail
src=${1:?usage: deb_install.sh SOURCE_ROOT BUILD_DIR}
build=${2:?usage: deb_install.sh SOURCE_ROOT BUILD_DIR}
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i, namespaces)"
for tool in unshare chroot dpkg python3 mungekey /usr/sbin/munged; do
  command -v "$tool" > /dev/null || skip "$tool is not installed"
done
unshare -m -n -p -f true 2> /dev/null || skip "cannot create mount, network and PID namespaces here"
# The overlay covers / alone: a system whose /usr, /etc or /var is another
# mount would show dpkg an empty one.
for d in /usr /etc /var /var/lib; do
  ! mountpoint -q "$d" || skip "$d is a mount of its own; the overlay of / would not hold it"
done

# The newest mtime of the checkout's files (tracked and new), 0 without git.
newest_source() {
  (cd "$src" && git ls-files -z --cached --others --exclude-standard 2> /dev/null |
    xargs -0 -r stat -c %Y 2> /dev/null || true) | sort -n | tail -1
}

deb=${TY_DEB:-}
if [ -z "$deb" ]; then
  deb=$(ls -t "$build"/deb/trainyard_*.deb 2> /dev/null | head -1 || true)
  newest=$(newest_source)
  if [ -n "$deb" ] && [ "$(stat -c %Y "$deb")" -lt "${newest:-0}" ]; then
    echo "deb_install: $deb is older than the checkout; rebuilding"
    deb=
  fi
  if [ -z "$deb" ]; then
    for tool in dpkg-buildpackage dh help2man; do
      command -v "$tool" > /dev/null || skip "no prebuilt .deb and $tool is missing"
    done
    echo "deb_install: building the package (deploy/build-deb.sh $build/deb)"
    # Through this machine's ccache: debhelper points HOME into the scratch
    # tree (a cache there starts empty every time) and dpkg-buildflags puts
    # the scratch path, new every build, into each command line
    # (-ffile-prefix-map, -fdebug-prefix-map). The package under test needs
    # neither.
    if command -v ccache > /dev/null; then
      export CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir)} CCACHE_NOHASHDIR=1
      conf=${XDG_CONFIG_HOME:-$HOME/.config}/ccache/ccache.conf
      [ -n "${CCACHE_CONFIGPATH:-}" ] || [ ! -f "$conf" ] || export CCACHE_CONFIGPATH=$conf
      export DEB_BUILD_MAINT_OPTIONS="${DEB_BUILD_MAINT_OPTIONS:+$DEB_BUILD_MAINT_OPTIONS }reproducible=-fixfilepath,-fixdebugpath"
    fi
    # Members compressed with gzip -1, not dpkg-deb's default xz -6: the
    # same files, modes and maintainer scripts for dpkg to install (and for
    # lintian), in a second where xz takes 10 to 20 s of the two packages
    # (the -dbgsym one's 8 MB of debug sections barely compress). The
    # package's own build (deploy/build-deb.sh alone) keeps xz.
    export DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1
    "$src/deploy/build-deb.sh" "$build/deb"
    deb=$(ls -t "$build"/deb/trainyard_*.deb | head -1)
  fi
fi
[ -f "$deb" ] || { echo "FAIL: no package at $deb"; exit 1; }
echo "deb_install: $deb"

# A graph job too, when meson passes the example MLP (TY_MLP_ONNX,
# TY_MLP_CONFIG) and protoc is here: its config cut to a few steps.
graph=
if [ -f "${TY_MLP_ONNX:-}" ] && [ -f "${TY_MLP_CONFIG:-}" ] && command -v protoc > /dev/null; then
  graph=$(mktemp -d)
  mkdir "$graph/deploy" "$graph/proto"
  cp "$src/deploy/graph-job.sh" "$graph/deploy/"
  cp "$src"/proto/*.proto "$graph/proto/"
  cp "$TY_MLP_ONNX" "$graph/mlp.onnx"
  { protoc --decode=trainyard.TrainConfig --proto_path="$src/proto" "$src/proto/train_config.proto" \
      < "$TY_MLP_CONFIG"; echo "max_steps: 30"; } |
    protoc --encode=trainyard.TrainConfig --proto_path="$src/proto" "$src/proto/train_config.proto" \
      > "$graph/mlp.config.pb"
  chmod -R a+rX "$graph" # the job's user copies them
else
  echo "deb_install: no graph job (the example MLP or protoc is missing)"
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch" ${graph:+"$graph"}' EXIT
# PID 1 of the new PID namespace is this inner shell: when it exits, the
# kernel kills everything started inside, and the mounts go with the
# mount namespace.
unshare -m -n -p -f --propagation private bash -euo pipefail -c '
  s=$1 deb=$2 inside=$3 graph=$4
  mount -t tmpfs -o size=2g tmpfs "$s"
  mkdir "$s/upper" "$s/work" "$s/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root"
  r=$s/root
  mount -t proc proc "$r/proc"
  mount --rbind /dev "$r/dev"
  mount --rbind /sys "$r/sys"
  mount -t tmpfs tmpfs "$r/tmp"
  mount -t tmpfs tmpfs "$r/run"
  cp "$deb" "$r/tmp/trainyard.deb"
  cp "$inside" "$r/tmp/deb_inside.py"
  [ -z "$graph" ] || cp -r "$graph" "$r/tmp/graph"
  chroot "$r" ip link set lo up
  chroot "$r" timeout 300 python3 /tmp/deb_inside.py /tmp/trainyard.deb ${graph:+/tmp/graph}
' deb_install "$scratch" "$deb" "$src/tests/deploy/deb_inside.py" "$graph"
