#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the zoo models test_pipeline_zoo.c trains under plans: the
kinds that failed under micro-batches until "pipe: a stage differentiates
what it receives, not its data feeds" (a reconstruction loss, GridSample,
Unfold, the padding modes), exported from their initial weights exactly as
bench/plan/zoo_sweep.py exports them (its export(), imported). They are
committed because CI has no torch; rerun this after changing one of
those models in examples/models/zoo*_vs_torch.py:

    tests/unit/ops/train/zoo/export.py    (needs torch, onnx, numpy)
"""
import argparse
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "plan"))
import zoo_sweep  # noqa: E402  (puts examples/models on the path)

MODELS = {"autoencoder": "zoo3", "vae": "zoo3", "grid_warp": "zoo3", "unfold_patches": "zoo4",
          "pad_modes": "zoo4"}


def main():
    torch, np = (zoo_sweep.vs_torch.need("export.py", m) for m in ("torch", "numpy"))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    a = argparse.Namespace(batch=4, steps=3, dropout=None)
    for name, zoo in MODELS.items():
        spec = __import__(zoo + "_vs_torch").zoo(torch)[name]
        with tempfile.TemporaryDirectory() as work:
            path, _ = zoo_sweep.export(torch, np, a, __import__(zoo + "_vs_torch"), name, spec, work)
            os.replace(path, os.path.join(HERE, name + ".onnx"))
        print("%s.onnx: %d bytes" % (name, os.path.getsize(os.path.join(HERE, name + ".onnx"))))


if __name__ == "__main__":
    main()
