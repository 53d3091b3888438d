#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Turns a plain-text corpus into the token streams trainrun reads.

    tokenize_corpus.py TRAIN.bin VAL.bin [--src DIR_OR_FILE ...] [--val-fraction 0.1]

Byte-level tokens: every byte of the UTF-8 text is one token id in [0, 256),
so no vocabulary file is needed and any text round-trips. The sources are
read in sorted path order and joined with a blank line; the last
val-fraction of the bytes (cut at a line start) is the validation split.
Writes TRAIN.bin and VAL.bin as little-endian uint16 ids,
nanoGPT's layout, which a TokenStream with dtype UINT16 and vocab_size 256
reads (examples/models/gpt.config.txtpb).

The default source is Debian's `fortunes` package (/usr/share/games/fortunes,
about 2.5 MB of quotations, literature and jokes). A directory contributes
its regular files except fortune's index files (*.dat) and symlinks (the
*.u8 aliases). Needs only python3 (no numpy).
"""
import argparse
import array
import os
import sys

DEFAULT_SRC = "/usr/share/games/fortunes"


def source_files(paths):
    files = []
    for p in paths:
        if os.path.isfile(p):
            files.append(p)
            continue
        if not os.path.isdir(p):
            sys.exit("tokenize_corpus.py: %s: no such file or directory (install the 'fortunes' "
                     "package for the default corpus)" % p)
        for name in os.listdir(p):
            full = os.path.join(p, name)
            if name.endswith(".dat") or os.path.islink(full) or not os.path.isfile(full):
                continue
            files.append(full)
    if not files:
        sys.exit("tokenize_corpus.py: no text files in %s" % ", ".join(paths))
    return sorted(files)


def write_ids(path, data):
    ids = array.array("H", iter(data))  # one uint16 id per byte (a bytes argument would be read raw)
    if sys.byteorder != "little":
        ids.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        ids.tofile(f)
    os.replace(tmp, path)
    return len(ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_out", help="training ids to write (.bin)")
    ap.add_argument("val_out", help="validation ids to write (.bin)")
    ap.add_argument("--src", nargs="+", default=[DEFAULT_SRC], help="files or directories of text")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    args = ap.parse_args()
    if not 0.0 < args.val_fraction < 1.0:
        sys.exit("tokenize_corpus.py: --val-fraction must be in (0, 1)")
    text = b"\n\n".join(open(f, "rb").read() for f in source_files(args.src))
    cut = int(len(text) * (1.0 - args.val_fraction))
    nl = text.find(b"\n", cut)
    cut = nl + 1 if nl >= 0 else cut
    n_train = write_ids(args.train_out, text[:cut])
    n_val = write_ids(args.val_out, text[cut:])
    print("tokenize_corpus.py: %d train and %d validation tokens (bytes)" % (n_train, n_val))


if __name__ == "__main__":
    main()
