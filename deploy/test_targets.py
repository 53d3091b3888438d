#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# deploy/test_targets.py BUILDDIR [MESON TEST ARGS...]: the ninja targets
# that the tests `meson test ARGS` selects in BUILDDIR need, one a line,
# so that deploy/test.sh's sanitizer pass builds those and nothing else
# (no bench/ programs, man pages or example exports that no test of its
# suites runs). A test needs: its own program, its `depends`, and every
# file under BUILDDIR that its command line or environment names
# (TY_TRAIND=..., a model path); a program a daemon finds beside itself
# is built with the daemon (link_depends in daemon/ and worker/).
# Fails, naming the test, when a test names a build-tree file that no
# target makes: that test would run without it (and fail or skip) instead
# of the build failing. Owns nothing on disk; reads meson's introspection
# and `meson test --list`.
import json
import os
import subprocess
import sys


def fail(msg):
    sys.exit("test_targets.py: " + msg)


def introspect(builddir, what):
    out = subprocess.run(["meson", "introspect", "--" + what, builddir], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def selected(builddir, args):
    """The selected tests as --list prints them: 'project:suite+suite / name'
    (the bare name in a project of one suite)."""
    r = subprocess.run(["meson", "test", "-C", builddir, "--list", "--no-rebuild"] + args,
                       capture_output=True, text=True)
    if r.returncode != 0:  # also when nothing is selected ("No suitable tests defined.")
        fail("no test selected in %s by '%s': meson test --list: %s" % (
            builddir, " ".join(args), (r.stdout + r.stderr).strip()))
    return set(line.strip() for line in r.stdout.splitlines() if line.strip())


def key(test):
    if not test["suite"]:
        return test["name"]
    project = test["suite"][0].split(":", 1)[0]
    return project + ":" + "+".join(s.split(":", 1)[1] for s in test["suite"]) + " / " + test["name"]


def build_paths(builddir, test):
    """Paths under builddir named by the test's command line or environment."""
    root = os.path.realpath(builddir) + os.sep
    words = list(test["cmd"]) + list(test["env"].values())
    for w in words:
        for part in w.replace(":", "=").split("="):
            if os.path.isabs(part) and os.path.normpath(part).startswith(root):
                yield os.path.normpath(part)


def needs(builddir, args):
    """The ninja targets (build-tree paths) of the selected tests."""
    builddir = os.path.realpath(builddir)
    targets = introspect(builddir, "targets")
    by_id = {t["id"]: t for t in targets}
    made = {os.path.normpath(f) for t in targets for f in t["filename"]}
    keys = selected(builddir, args)
    tests = [t for t in introspect(builddir, "tests") if key(t) in keys or t["name"] in keys]
    if len(tests) != len(keys):
        fail("meson test --list named %d tests, introspection matched %d" % (len(keys), len(tests)))
    outputs = set()
    for t in tests:
        for d in t["depends"]:
            outputs.update(os.path.normpath(f) for f in by_id[d]["filename"])
        for p in build_paths(builddir, t):
            if p in made:
                outputs.add(p)
            elif not os.path.isdir(p):  # a folder of the build tree (TY_ARTIFACTS) is fine
                fail("test %s names %s, which no target builds" % (key(t), p))
    return sorted(os.path.relpath(o, builddir) for o in outputs)


def main():
    if len(sys.argv) < 2:
        fail("usage: test_targets.py BUILDDIR [MESON TEST ARGS...]")
    print("\n".join(needs(sys.argv[1], sys.argv[2:])))


if __name__ == "__main__":
    main()
