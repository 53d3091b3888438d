# SPDX-License-Identifier: Apache-2.0
"""Trainyard vs PyTorch on the example models (run with /usr/bin/python3).

For the MLP and the CNN of examples/models, from the same ONNX initializers
(loaded into an equivalent torch model), the same batch size and the same
thread count (trainrun --threads N, torch.set_num_threads(N)):

1. Per-epoch training time: trainrun with fusion on, with --no-fusion, and
   PyTorch. Each runs a fixed number of steps (SGD momentum 0.9, constant
   learning rate); the first logged interval (start-up, JIT, warm caches) is
   dropped and the rest is extrapolated to one epoch of 937 batches of 64.
2. Loss curves over the first steps from the same weights with plain SGD
   and the same batch order (no shuffle: batch k is samples 64k..64k+63 of
   the training set in file order, as our loader yields them unshuffled).
   trainrun logs the loss of every step with four decimals, so the curve
   agrees to print resolution at best; the trained weights after the last
   step (trainrun's checkpoint vs torch's parameters) compare in full float.

Needs Debian's python3-torch, python3-onnx and protoc.
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_vs_pytorch: PyTorch is missing (apt-get install python3-torch)")

BPE = 60000 // 64  # batches per epoch at batch 64, drop_last
MEAN, STD = 0.2860, 0.3530


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_train(data_dir):
    x = load_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y = load_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    # Exactly ops/data's table: (pixel / 255.0f - mean) / std in float32.
    lut = ((np.arange(256, dtype=np.float32) / np.float32(255.0)) - np.float32(MEAN)) / np.float32(STD)
    return torch.from_numpy(lut[x].astype(np.float32)), torch.from_numpy(y.astype(np.int64))


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 256)
        self.fc2 = torch.nn.Linear(256, 128)
        self.fc3 = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 784)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = torch.nn.Linear(64 * 7 * 7, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def onnx_weights(path):
    return {i.name: numpy_helper.to_array(i).copy() for i in onnx.load(path).graph.initializer}


def torch_model(kind, onnx_path):
    m = Mlp() if kind == "mlp" else Cnn()
    w = onnx_weights(onnx_path)
    sd = m.state_dict()
    assert set(sd) == set(w), f"{onnx_path}: initializers {sorted(w)} vs torch {sorted(sd)}"
    m.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
    return m


CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
label_input: "labels"
data_input: "x"
sgd {{ lr: {lr} momentum: {momentum} }}
lr_schedule {{ constant {{}} }}
batch_size: {batch}
epochs: 1
dataset {{ name: "fashion-mnist" dir: "{data}" mean: {mean} std: {std} shuffle: TOGGLE_OFF }}
seed: 1
checkpoint_path: "{ckpt}"
log_interval: {log}
fusion: TOGGLE_ON
eval_each_epoch: TOGGLE_OFF
"""


def encode_config(a, path, lr, momentum, log, ckpt):
    txt = CONFIG.format(lr=lr, momentum=momentum, batch=a.batch, data=a.data_dir, mean=MEAN, std=STD,
                        ckpt=ckpt, log=log)
    with open(path, "wb") as f:
        f.write(subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=txt.encode(), capture_output=True,
                               check=True).stdout)


def trainrun(a, model, config, ckpt, steps, extra):
    for suffix in ("", ".state"):
        if os.path.exists(ckpt + suffix):
            os.unlink(ckpt + suffix)
    cmd = [a.trainrun, "--model", model, "--config", config, "--steps", str(steps), "--threads",
           str(a.threads), "--checkpoint", ckpt] + extra
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def ours_epoch_seconds(a, kind, model, steps, no_fusion):
    cfg, ckpt = os.path.join(a.work, f"{kind}.time.pb"), os.path.join(a.work, f"{kind}.time.onnx")
    encode_config(a, cfg, 0.05, 0.9, a.log_interval, ckpt)
    log = trainrun(a, model, cfg, ckpt, steps, ["--no-fusion"] if no_fusion else [])
    sps = [float(m) for m in re.findall(r"samples/s (\d+)", log)][1:]  # drop the start-up interval
    if not sps:
        sys.exit(f"trainrun: no samples/s after the first interval:\n{log}")
    return BPE * a.batch / (sum(sps) / len(sps))


def torch_epoch_seconds(a, kind, model, x, y, steps):
    m = torch_model(kind, model)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    t0, timed = None, 0
    for k in range(steps):
        if k == a.log_interval:  # same warm-up as ours: drop the first interval
            t0 = time.perf_counter()
        xb, yb = x[k * a.batch:(k + 1) * a.batch], y[k * a.batch:(k + 1) * a.batch]
        opt.zero_grad()
        F.cross_entropy(m(xb), yb).backward()
        opt.step()
        timed += k >= a.log_interval
    return (time.perf_counter() - t0) / timed * BPE


def curves(a, kind, model, x, y):
    cfg, ckpt = os.path.join(a.work, f"{kind}.curve.pb"), os.path.join(a.work, f"{kind}.curve.onnx")
    encode_config(a, cfg, a.curve_lr, 0.0, 1, ckpt)
    log = trainrun(a, model, cfg, ckpt, a.curve_steps, [])
    ours = [float(v) for v in re.findall(r"^step \d+/\d+ loss (\S+)", log, re.M)]
    m = torch_model(kind, model)
    opt = torch.optim.SGD(m.parameters(), lr=a.curve_lr)
    theirs = []
    for k in range(a.curve_steps):
        xb, yb = x[k * a.batch:(k + 1) * a.batch], y[k * a.batch:(k + 1) * a.batch]
        opt.zero_grad()
        loss = F.cross_entropy(m(xb), yb)
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    if len(ours) != len(theirs):
        sys.exit(f"{kind}: trainrun logged {len(ours)} losses, expected {len(theirs)}")
    dloss = max(abs(o - t) for o, t in zip(ours, theirs))
    trained = onnx_weights(ckpt)
    dw = max(float(np.max(np.abs(trained[k] - v.detach().numpy()))) for k, v in m.state_dict().items())
    return ours, theirs, dloss, dw


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="meson build dir with trainrun and examples/models")
    p.add_argument("--proto", required=True, help="the repository's proto/ dir")
    p.add_argument("--work", required=True, help="scratch dir for configs and checkpoints")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mlp-steps", type=int, default=300)
    p.add_argument("--cnn-steps", type=int, default=200)
    p.add_argument("--log-interval", type=int, default=50)
    p.add_argument("--curve-steps", type=int, default=100)
    p.add_argument("--curve-lr", type=float, default=0.05)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    if a.batch != 64:
        sys.exit("--batch: the per-epoch extrapolation assumes 64 (937 batches)")
    a.trainrun = os.path.join(a.build, "ops/trainrun/trainrun")
    torch.set_num_threads(a.threads)
    x, y = load_train(a.data_dir)
    print(f"threads {a.threads}, batch {a.batch}, torch {torch.__version__}; per-epoch time = "
          f"{BPE} batches x measured time per step (first {a.log_interval} steps dropped)")
    rows, curve_rows = [], []
    for kind, steps in (("mlp", a.mlp_steps), ("cnn", a.cnn_steps)):
        model = os.path.join(a.build, "examples/models", f"{kind}.onnx")
        on = ours_epoch_seconds(a, kind, model, steps, False)
        off = ours_epoch_seconds(a, kind, model, steps, True)
        pt = torch_epoch_seconds(a, kind, model, x, y, steps)
        rows.append((kind, steps, on, off, pt))
        curve_rows.append((kind,) + curves(a, kind, model, x, y))
    print(f"\n{'model':6} {'steps':>5} {'fusion on s/ep':>15} {'fusion off s/ep':>16} {'pytorch s/ep':>13} "
          f"{'on/pytorch':>11} {'off/pytorch':>12} {'on/off':>7}")
    for kind, steps, on, off, pt in rows:
        print(f"{kind:6} {steps:5d} {on:15.2f} {off:16.2f} {pt:13.2f} {on / pt:11.2f} {off / pt:12.2f} "
              f"{on / off:7.2f}")
    print(f"\nloss curves, {a.curve_steps} steps of plain SGD lr {a.curve_lr}, same weights, same batch order:")
    for kind, ours, theirs, dloss, dw in curve_rows:
        pick = [0, 1, 9, 49, len(ours) - 1]
        pts = ", ".join(f"step {i + 1}: {ours[i]:.4f} vs {theirs[i]:.4f}" for i in pick if i < len(ours))
        print(f"{kind}: {pts}")
        print(f"{kind}: max |loss diff| {dloss:.2e} (trainrun prints 4 decimals), "
              f"max |weight diff| after {len(ours)} steps {dw:.2e}")


if __name__ == "__main__":
    main()
