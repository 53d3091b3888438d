#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The ResNet-style example (examples/models/resnet.onnx: BatchNorm,
residual adds, global average pooling) learns Fashion-MNIST under trainrun.

    resnet_learns.py --trainrun PATH --model resnet.onnx --proto PROTO_DIR

A short run, not the full accuracy (bench/RESULTS.md has that): 250 steps
of batch 64, SGD with momentum, on two threads, then the evaluation on the
10,000 test images in inference mode (BatchNorm on running statistics).
Passes when the loss of the last 10 steps is below half that of the first
10 and the test accuracy reaches 0.70 (a model that learns nothing scores
0.10; the run reaches about 0.8; at 150 steps it was 0.70 to 0.73, and
float rounding alone, oneDNN's convolutions against im2col's, moved it
across the bar). Exit 77 (skipped) without the dataset or
protoc.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

DATA = "/usr/share/datasets/fashion-mnist"
CONFIG = """softmax_cross_entropy { logits_output: "logits" }
label_input: "labels"
data_input: "x"
sgd { lr: 0.05 momentum: 0.9 weight_decay: 0.0005 }
lr_schedule { constant {} }
batch_size: 64
max_steps: 250
dataset { name: "fashion-mnist" dir: "%s" mean: 0.2860 std: 0.3530 shuffle: TOGGLE_ON }
seed: 1
checkpoint_path: "%s"
log_interval: 1
eval_each_epoch: TOGGLE_OFF
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--proto", required=True)
    a = ap.parse_args()
    protoc = shutil.which("protoc")
    if not protoc or not os.path.isdir(DATA):
        print("resnet_learns.py: skipped: needs protoc and %s (dataset-fashion-mnist)" % DATA, file=sys.stderr)
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="ty_resnet_learns.") as work:
        cfg = os.path.join(work, "resnet.config.pb")
        txt = CONFIG % (DATA, os.path.join(work, "resnet.ckpt.onnx"))
        with open(cfg, "wb") as f:
            f.write(subprocess.run([protoc, "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                    "train_config.proto"], input=txt.encode(), capture_output=True,
                                   check=True).stdout)
        out = subprocess.run([a.trainrun, "--model", a.model, "--config", cfg, "--threads", "2"],
                             capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("resnet_learns.py: trainrun failed (%d):\n%s\n%s" % (out.returncode, out.stdout, out.stderr))
    losses = [float(v) for v in re.findall(r"^step \d+/\d+ loss (\S+)", out.stdout, re.M)]
    acc = re.search(r"^final test_accuracy (\S+)", out.stdout, re.M)
    if len(losses) != 250 or not acc:
        sys.exit("resnet_learns.py: expected 250 losses and a final accuracy:\n" + out.stdout)
    first, last, accuracy = sum(losses[:10]) / 10, sum(losses[-10:]) / 10, float(acc.group(1))
    print("loss over the first 10 steps %.4f, over the last 10 %.4f; test accuracy %.4f"
          % (first, last, accuracy))
    sys.exit(0 if last < 0.5 * first and accuracy >= 0.70 else 1)


if __name__ == "__main__":
    main()
