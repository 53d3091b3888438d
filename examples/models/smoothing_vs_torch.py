#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Label smoothing (config.softmax_cross_entropy.label_smoothing) against
PyTorch's cross_entropy(..., label_smoothing=e): models exported from
PyTorch train with trainrun and with PyTorch from the same weights on the
same batches, and the per-step losses and trained weights are compared.
Three logits layouts: [N, C] (an MLP), [N, C, L] with the classes second
(a 1-D segmentation) and [N, L, C] with the classes last (a tagger).

    smoothing_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 5] [--threads 1]

Exit status: 0 when every case agrees (weights within --weight-tol, losses
within 1e-4 relative), 1 otherwise, 77 (skipped) when torch, onnx, numpy
or protoc is missing.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CONFIG = """softmax_cross_entropy {{ logits_output: "logits" label_smoothing: {e} {axis} }}
label_input: "y"
sgd {{ lr: 0.5 momentum: 0.9 }}
batch_size: 16
max_steps: {steps}
log_interval: 1
dataset {{ dir: "{dir}" shuffle: TOGGLE_OFF
  train {{ path: "x.npy" input: "feats" }} train {{ path: "y.npy" input: "y" }} }}
"""


def cases(torch):
    nn = torch.nn

    class Seg(nn.Module):  # [N, 3, L] -> logits [N, C, L]
        def __init__(s, last):
            super().__init__()
            s.conv, s.last = nn.Conv1d(3, 5, 3, padding=1), last

        def forward(s, x):
            y = s.conv(x)
            return y.transpose(1, 2) if s.last else y

    return {
        "mlp": (lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)), (6,), (), ""),
        "classes_second": (lambda: Seg(False), (3, 7), (7,), ""),
        "classes_last": (lambda: Seg(True), (3, 7), (7,), "class_axis: CLASS_AXIS_LAST"),
    }


def run_case(a, np, onnx, nh, torch, d, name, make, xdims, ydims, axis):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    n = 16 * a.steps
    x = rng.standard_normal((n,) + xdims).astype(np.float32)
    model = make()
    classes = 4 if name == "mlp" else 5
    y = rng.integers(0, classes, (n,) + ydims).astype(np.int64)
    cd = os.path.join(d, name)
    os.makedirs(cd)
    np.save(os.path.join(cd, "x.npy"), x)
    np.save(os.path.join(cd, "y.npy"), y)
    onnx_path = os.path.join(cd, "m.onnx")
    torch.onnx.export(model, (torch.randn((2,) + xdims),), onnx_path, input_names=["feats"],
                      output_names=["logits"], dynamic_axes={"feats": {0: "b"}},
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    cfg = CONFIG.format(e=a.smoothing, axis=axis, steps=a.steps, dir=cd)
    pb = os.path.join(cd, "c.pb")
    with open(pb, "wb") as f:
        subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                        os.path.join(a.proto, "train_config.proto")],
                       input=cfg.encode(), stdout=f, check=True)
    ck = os.path.join(cd, "out", "m.onnx")
    os.makedirs(os.path.dirname(ck))
    r = subprocess.run([a.trainrun, "--model", onnx_path, "--config", pb, "--threads",
                        str(a.threads), "--checkpoint", ck], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{name}: trainrun failed ({r.returncode}): {r.stderr}")
        return False
    ours = [float(v) for v in re.findall(r" loss (\S+)", r.stdout)]
    ref = make()
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(ref.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for s in range(a.steps):
        xb, yb = torch.tensor(x[s * 16:(s + 1) * 16]), torch.tensor(y[s * 16:(s + 1) * 16])
        logits = ref(xb)
        if axis:  # classes last: cross_entropy takes them second
            logits = logits.transpose(1, 2)
        loss = torch.nn.functional.cross_entropy(logits, yb, label_smoothing=a.smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    w = {i.name: nh.to_array(i) for i in onnx.load(ck).graph.initializer}
    diff = max(float(np.abs(w[k] - v.detach().numpy()).max()) for k, v in ref.state_dict().items())
    loss_ok = len(ours) == len(losses) and all(
        abs(o - t) <= 1e-4 * max(abs(t), 1e-6) for o, t in zip(ours, losses))
    ok = diff <= a.weight_tol and loss_ok
    print(f"{name}: weights differ by {diff:.3g}, losses trainrun {[round(v, 5) for v in ours]} "
          f"torch {[round(v, 5) for v in losses]}: {'ok' if ok else 'FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(prog="smoothing_vs_torch.py")
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--proto", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoothing", type=float, default=0.2)
    ap.add_argument("--weight-tol", type=float, default=1e-5)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        import onnx.numpy_helper as nh
        import torch
    except ImportError as e:
        print(f"smoothing_vs_torch.py: skipped: {e}")
        return 77
    if not shutil.which("protoc"):
        print("smoothing_vs_torch.py: skipped: protoc is missing")
        return 77
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for name, (make, xdims, ydims, axis) in cases(torch).items():
            ok &= run_case(a, np, onnx, nh, torch, d, name, make, xdims, ydims, axis)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
