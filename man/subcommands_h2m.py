#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the help2man include of trainctl's page that documents each
subcommand: a [SUBCOMMANDS] section with one subsection per command of
`trainctl help`, made from `trainctl help COMMAND`, so the page carries
every subcommand's options exactly as the program prints them.

Usage: subcommands_h2m.py TRAINCTL OUT.h2m

The usage text is read as trainctl writes it: "Usage:" lines and the lines
under them are the synopsis; a line indented up to 6 columns whose first
word starts with '-' (or that has two spaces between a term and its text)
is an option, the lines indented deeper under it its description; other
indented lines are shown as written; the rest is filled text."""
import re
import subprocess
import sys

OPTION = re.compile(r"^( {1,6})(\S.*?)(?: {2,}(\S.*))?$")


def run(trainctl, *args):
    out = subprocess.run([trainctl, *args], check=True, capture_output=True, text=True)
    return out.stdout


def commands(trainctl):
    """The command names of `trainctl help`'s Commands: list."""
    names, on = [], False
    for line in run(trainctl, "help").splitlines():
        if line == "Commands:":
            on = True
        elif on and not line.strip():
            break
        elif on:
            names.append(line.split()[0])
    if not names:
        sys.exit("subcommands_h2m.py: `%s help` lists no commands" % trainctl)
    return names


def roff(text):
    """text escaped for roff: backslashes, hyphens, a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def convert(help_text):
    """roff lines for one command's usage text."""
    out, mode, indent = [], None, 0
    for line in help_text.splitlines():
        stripped = line.strip()
        if not stripped:
            out += [".fi", ".PP"] if mode == "usage" else [".PP"]
            mode = None
            continue
        lead = len(line) - len(line.lstrip(" "))
        is_option = lead <= 6 and stripped.startswith("-")
        if line.lower().startswith("usage:") or (mode == "usage" and lead > 0 and not is_option):
            if mode != "usage":
                out += [".PP", ".nf"]
            out.append(roff(line))
            mode = "usage"
            continue
        if mode == "usage":
            out.append(".fi")
            mode = None
        m = OPTION.match(line)
        if mode == "option" and lead > indent + 2:
            out.append(roff(stripped))
        elif m and (m.group(2).startswith("-") or m.group(3)):
            out += [".TP", ".B " + roff(m.group(2))]
            if m.group(3):
                out.append(roff(m.group(3)))
            mode, indent = "option", lead
        elif lead > 0:  # an example or a table row, as written
            out += [".PP" if mode == "option" else ".br", roff(line)]
            mode = None
        else:  # filled text, after an option's description ends it
            out += [".PP", roff(line)] if mode == "option" else [roff(line)]
            mode = None
    if mode == "usage":
        out.append(".fi")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: subcommands_h2m.py TRAINCTL OUT.h2m")
    trainctl, path = sys.argv[1], sys.argv[2]
    lines = ["[SUBCOMMANDS]",
             "Each command's usage, as \\fBtrainctl help\\fR \\fICOMMAND\\fR prints it."]
    for name in commands(trainctl):
        lines.append('.SS "trainctl %s"' % name)
        lines += convert(run(trainctl, "help", name))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
