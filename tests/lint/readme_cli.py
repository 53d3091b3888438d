#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""README.md's "CLI reference" against trainctl itself: its synopsis is the
line `trainctl --help` starts with, every option a command's synopsis names
is in that command's --help, and the fields it lists for `ls --format` are
those of `trainctl ls --help-format`. A reader who types what the README
shows gets what it says.

Usage: readme_cli.py README.md TRAINCTL
"""
import re
import subprocess
import sys


def helptext(ctl, *args):
    return subprocess.run([ctl, *args], capture_output=True, text=True, check=False).stdout


def section(readme):
    text = open(readme, encoding="utf-8").read()
    start = text.index("\n## CLI reference\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def check_synopsis(sec, ctl, fail):
    usage = helptext(ctl, "--help").splitlines()[0]
    want = usage.removeprefix("Usage: ")
    if f"`{want}`" not in sec:
        fail(f"the README's trainctl synopsis is not `{want}`, the first line of trainctl --help")


def check_options(sec, ctl, fail):
    for row in (line for line in sec.splitlines() if line.startswith("| `")):
        for synopsis in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
            cmd = synopsis.split()[0]
            text = helptext(ctl, cmd, "--help")
            if not text:
                fail(f"the README documents `trainctl {cmd}`, which has no --help")
                continue
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[A-Za-z])\b", synopsis):
                if opt not in text:
                    fail(f"the README gives `trainctl {cmd}` {opt}, which trainctl {cmd} --help lacks")


def check_ls_fields(sec, ctl, fail):
    m = re.search(r"`--help-format` lists the fields \(([^)]*)\)", sec)
    if not m:
        fail("the README's ls row lists no fields after `--help-format` lists the fields")
        return
    documented = {f.strip() for f in m.group(1).split(",")}
    listed = set()
    for line in helptext(ctl, "ls", "--help-format").splitlines()[1:]:
        if line.startswith("  ") and line.split():
            listed.add(line.split()[0])
    if documented != listed:
        fail("the README's ls fields differ from trainctl ls --help-format's: missing "
             f"{sorted(listed - documented)}, not there {sorted(documented - listed)}")


def main(argv):
    readme, ctl = argv[1], argv[2]
    errors = []
    sec = section(readme)
    for check in (check_synopsis, check_options, check_ls_fields):
        check(sec, ctl, errors.append)
    for e in errors:
        print("readme_cli.py: " + e, file=sys.stderr)
    if not errors:
        print("readme_cli.py: the README's CLI reference matches trainctl")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
