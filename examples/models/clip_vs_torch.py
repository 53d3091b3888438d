#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Gradient clipping (config.max_grad_norm) against PyTorch: an MLP
exported from PyTorch trains with trainrun and with PyTorch's
torch.nn.utils.clip_grad_norm_ before each optimizer step, from the same
weights on the same batches, with SGD (momentum, weight decay) and Adam,
and the trained weights are compared. trainrun's progress lines carry the
norm before clipping (grad_norm), compared with clip_grad_norm_'s return.

    clip_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 5] [--threads 1]

Exit status: 0 when the weights agree within --weight-tol and the norms
within 1e-3 (relative: the log prints 4 digits), 1 otherwise, 77 (skipped) when torch, onnx,
numpy or protoc is missing.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
label_input: "y"
{opt}
batch_size: 32
max_steps: {steps}
log_interval: 1
max_grad_norm: {clip}
dataset {{ dir: "{dir}" shuffle: TOGGLE_OFF
  train {{ path: "x.npy" input: "feats" }} train {{ path: "y.npy" input: "y" }} }}
"""
OPTIMIZERS = {
    "sgd": ("sgd { lr: 0.5 momentum: 0.9 weight_decay: 0.01 }",
            lambda torch, p: torch.optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=0.01)),
    "adam": ("adam { lr: 0.05 }", lambda torch, p: torch.optim.Adam(p, lr=0.05)),
}


def main():
    ap = argparse.ArgumentParser(prog="clip_vs_torch.py")
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--proto", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--weight-tol", type=float, default=1e-5)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        import onnx.numpy_helper as nh
        import torch
    except ImportError as e:
        print(f"clip_vs_torch.py: skipped: {e}")
        return 77
    if not shutil.which("protoc"):
        print("clip_vs_torch.py: skipped: protoc is missing")
        return 77
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32 * a.steps, 20)).astype(np.float32)
    y = x[:, :4].argmax(1).astype(np.int64)
    failed = False
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 4))
        onnx_path = os.path.join(d, "m.onnx")
        torch.onnx.export(model, (torch.randn(8, 20),), onnx_path, input_names=["feats"],
                          output_names=["logits"], dynamic_axes={"feats": {0: "b"}},
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
        for name, (text, make) in OPTIMIZERS.items():
            cfg = CONFIG.format(opt=text, steps=a.steps, clip=a.clip, dir=d)
            pb = os.path.join(d, name + ".pb")
            with open(pb, "wb") as f:
                subprocess.run(["protoc", "--encode=trainyard.TrainConfig",
                                "--proto_path=" + a.proto,
                                os.path.join(a.proto, "train_config.proto")],
                               input=cfg.encode(), stdout=f, check=True)
            ck = os.path.join(d, name, "m.onnx")
            os.makedirs(os.path.dirname(ck))
            r = subprocess.run([a.trainrun, "--model", onnx_path, "--config", pb, "--threads",
                                str(a.threads), "--checkpoint", ck], capture_output=True,
                               text=True)
            if r.returncode != 0:
                print(f"{name}: trainrun failed ({r.returncode}): {r.stderr}")
                return 1
            ours = [float(v) for v in re.findall(r" grad_norm (\S+)", r.stdout)]
            ref = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(),
                                      torch.nn.Linear(32, 4))
            ref.load_state_dict(model.state_dict())
            opt = make(torch, ref.parameters())
            norms = []
            for s in range(a.steps):
                xb = torch.tensor(x[s * 32:(s + 1) * 32])
                yb = torch.tensor(y[s * 32:(s + 1) * 32])
                opt.zero_grad()
                torch.nn.functional.cross_entropy(ref(xb), yb).backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(ref.parameters(), a.clip)))
                opt.step()
            w = {i.name: nh.to_array(i) for i in onnx.load(ck).graph.initializer}
            diff = max(float(np.abs(w[k] - v.detach().numpy()).max())
                       for k, v in ref.state_dict().items())
            clipped = sum(n > a.clip for n in norms)
            norm_ok = len(ours) == len(norms) and all(
                abs(o - t) <= 1e-3 * max(t, 1e-6) for o, t in zip(ours, norms))
            ok = diff <= a.weight_tol and norm_ok and clipped > 0
            failed |= not ok
            print(f"{name}: {clipped}/{a.steps} steps clipped, weights differ by {diff:.3g}, "
                  f"norms trainrun {[round(n, 5) for n in ours]} torch "
                  f"{[round(n, 5) for n in norms]}: {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
