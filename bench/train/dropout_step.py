#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""CPU time per training step of models with Dropout (branch drop21).

    dropout_step.py --trainrun PATH[,PATH...] --proto PROTO_DIR [--reps 5]
                    [--short 10] [--long 60] [--no-fusion] [--work DIR]

Exports, the way examples/models/*.py export models (torch.onnx.export in
TrainingMode.TRAINING, opset 13, the loss as output "loss"):
  - tfm: a 2-block transformer encoder (d_model 32, 4 heads, 8 tokens,
    feed-forward 64) with nn.Dropout(0.1) on the attention weights, after
    the attention and in and after the feed-forward, trained to
    reconstruct its input (batch 32);
  - mlp: 256-128-128-256 with nn.Dropout(0.2) after each hidden ReLU,
    the same task (batch 64).
Each trainrun binary trains each model `--short` and `--long` steps on
one thread (`--threads 1`, OPENBLAS_NUM_THREADS=1); the CPU time per step
is (CPU(long) - CPU(short)) / (long - short) from the child's rusage
(user + system), so start-up, export loading and the first step's JIT
compiles cancel. The binaries run interleaved within each repetition; the
table gives medians over --reps repetitions (milliseconds of CPU per step).
Exit 77 when torch, onnx, numpy or protoc is missing.
"""
import argparse
import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

PROG = "dropout_step.py"
CONFIG = """loss_output: "loss"
sgd {{ lr: 0.01 momentum: 0.9 }}
batch_size: {batch}
max_steps: 100000
log_interval: 1000
seed: 7
dataset {{ dir: "{dir}" shuffle: TOGGLE_ON
  train {{ path: "x.npy" input: "x" }} }}
checkpoint_path: "{ckpt}"
checkpoint_interval: 0
"""


def models(torch):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(s, d=32, h=4, ff=64, p=0.1):
            super().__init__()
            s.h = h
            s.qkv, s.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            s.ln1, s.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            s.ff1, s.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
            s.attn_drop, s.drop1 = nn.Dropout(p), nn.Dropout(p)
            s.ff_drop, s.drop2 = nn.Dropout(p), nn.Dropout(p)

        def forward(s, x):
            n, t, d = x.shape
            qkv = s.qkv(x).reshape(n, t, 3, s.h, d // s.h).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = torch.softmax(q @ k.transpose(-2, -1) / (d // s.h) ** 0.5, dim=-1)
            y = (s.attn_drop(a) @ v).transpose(1, 2).reshape(n, t, d)
            x = s.ln1(x + s.drop1(s.proj(y)))
            f = s.ff2(s.ff_drop(F.gelu(s.ff1(x))))
            return s.ln2(x + s.drop2(f))

    class Tfm(nn.Module):
        def __init__(s):
            super().__init__()
            s.inp, s.blocks, s.out = nn.Linear(32, 32), nn.Sequential(Block(), Block()), \
                nn.Linear(32, 32)

        def forward(s, x):
            h = s.blocks(s.inp(x.reshape(x.shape[0], 8, 32)))
            return ((s.out(h).reshape(x.shape[0], 256) - x) ** 2).sum(1).mean()

    class Mlp(nn.Module):
        def __init__(s):
            super().__init__()
            s.l1, s.l2, s.l3 = nn.Linear(256, 128), nn.Linear(128, 128), nn.Linear(128, 256)
            s.d1, s.d2 = nn.Dropout(0.2), nn.Dropout(0.2)

        def forward(s, x):
            h = s.d2(F.relu(s.l2(s.d1(F.relu(s.l1(x))))))
            return ((s.l3(h) - x) ** 2).sum(1).mean()

    return {"tfm": (Tfm, 32), "mlp": (Mlp, 64)}


def export(torch, onnx, cls, path):
    torch.manual_seed(0)
    torch.onnx.export(cls(), (torch.zeros(4, 256),), path, input_names=["x"],
                      output_names=["loss"], dynamic_axes={"x": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    drops = sum(n.op_type == "Dropout" for n in onnx.load(path).graph.node)
    if drops == 0:
        sys.exit(f"{PROG}: {path}: the export has no Dropout node")
    return drops


def cpu_of(cmd, env, ckpt):
    """CPU seconds of cmd, from scratch: trainrun resumes from a checkpoint
    that exists, so the last run's goes first."""
    for f in glob.glob(ckpt[:-len(".onnx")] + "*"):
        os.remove(f)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"{PROG}: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("--trainrun", required=True, help="comma-separated binaries, run interleaved")
    ap.add_argument("--proto", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=60)
    ap.add_argument("--no-fusion", action="store_true")
    ap.add_argument("--work", help="keep the exported models here")
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        import torch
    except ImportError as e:
        print(f"{PROG}: skipped: {e}")
        return 77
    if not shutil.which("protoc"):
        print(f"{PROG}: skipped: protoc is missing")
        return 77
    d = a.work or tempfile.mkdtemp(prefix="ty-dropout-step-")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "x.npy"),
            np.random.default_rng(0).standard_normal((4096, 256)).astype(np.float32))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    runs = {}
    for name, (cls, batch) in models(torch).items():
        path = os.path.join(d, name + ".onnx")
        n_drop = export(torch, onnx, cls, path)
        cfg = os.path.join(d, name + ".pb")
        with open(cfg, "wb") as f:
            text = CONFIG.format(batch=batch, dir=d, ckpt=os.path.join(d, name + ".ckpt.onnx"))
            subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                            os.path.join(a.proto, "train_config.proto")], input=text.encode(),
                           stdout=f, check=True)
        runs[name] = (path, cfg, n_drop)
    bins = a.trainrun.split(",")
    per = {(b, m): [] for b in bins for m in runs}
    for rep in range(a.reps):
        for m, (path, cfg, _) in runs.items():
            for b in bins:
                cmd = [b, "--model", path, "--config", cfg, "--threads", "1"]
                if a.no_fusion:
                    cmd.append("--no-fusion")
                ck = os.path.join(d, m + ".ckpt.onnx")
                short = cpu_of(cmd + ["--steps", str(a.short)], env, ck)
                long_ = cpu_of(cmd + ["--steps", str(a.long)], env, ck)
                per[(b, m)].append(1000.0 * (long_ - short) / (a.long - a.short))
        print(f"rep {rep + 1}/{a.reps} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"| model | Dropout nodes | trainrun | fusion | CPU ms/step (median of {a.reps}) "
          "| runs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m, (_, _, n_drop) in runs.items():
        for b in bins:
            v = per[(b, m)]
            print(f"| {m} | {n_drop} | {b} | {'off' if a.no_fusion else 'on'} "
                  f"| {statistics.median(v):.3f} | {', '.join(f'{x:.3f}' for x in v)} |")
    if not a.work:
        shutil.rmtree(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
