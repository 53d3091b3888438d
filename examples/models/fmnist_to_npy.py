#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Converts Fashion-MNIST's IDX files into NumPy .npy arrays.

    fmnist_to_npy.py OUT_DIR [--from /usr/share/datasets/fashion-mnist]

writes OUT_DIR/train_x.npy (uint8 [60000, 28, 28]), train_y.npy (int64
[60000]), test_x.npy and test_y.npy (10000 each): the layout of any image
classification data set saved with numpy.save, for npy_arrays.config.txtpb.
Trained through .npy, mlp.onnx learns exactly what it learns from the IDX
files (the unit tests check the weights bit for bit).

Needs python3-numpy and Debian's dataset-fashion-mnist.
"""
import argparse
import gzip
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("fmnist_to_npy.py: needs numpy (apt install python3-numpy)")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 8:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndims).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--from", dest="src", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(os.path.join(a.src, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(a.src, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
        np.save(os.path.join(a.out_dir, f"{split}_x.npy"), x)
        np.save(os.path.join(a.out_dir, f"{split}_y.npy"), y)
        print(f"{split}: {x.shape[0]} images {x.shape[1]}x{x.shape[2]} -> {a.out_dir}/{split}_x.npy, {split}_y.npy")


if __name__ == "__main__":
    main()
