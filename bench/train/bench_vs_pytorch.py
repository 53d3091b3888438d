# SPDX-License-Identifier: Apache-2.0
"""Trainyard vs PyTorch on the example models (run with /usr/bin/python3).

For the MLP, the CNN, the ResNet-style CNN and the GPT of examples/models,
from the same ONNX initializers (loaded into an equivalent torch model), the
same batches and the same optimizer:

1. Step time at each core count in --cores (default 1 and 2): trainrun
   --threads C pinned to the first C cores of this process' affinity mask
   (taskset), against PyTorch pinned to the same cores at every thread
   setting that fits them: torch.set_num_threads(t) for t in 1..C crossed
   with OPENBLAS_NUM_THREADS in {1, C} (Debian's torch runs its GEMMs on
   OpenBLAS, whose threads are separate from torch's OpenMP threads). The
   best PyTorch setting is the yardstick. Runs are interleaved (ours, then
   each PyTorch setting, repeated --reps times) and each figure is the
   median over the repetitions; each run times its steps after a warm-up
   and reports milliseconds per step. The load average is read before every
   run and its median printed, because the machine may be shared.
The loss curves from the same weights are checked elsewhere: the GPT's by
examples/models/gpt_vs_torch.py (an integration test), the MLP's and the
CNN's in bench/train/RESULTS.md.

Data: Fashion-MNIST in file order (no shuffle; batch k is samples
k*B .. k*B+B-1) for the image models; for the GPT the fortunes token
stream in file order (windows of context + 1 tokens). Optimizers: SGD with
momentum 0.9 (lr 0.05) for the image models, AdamW for the GPT.

Needs Debian's python3-torch, python3-onnx and protoc.
"""
import argparse
import glob
import gzip
import json
import os
import re
import resource
import statistics
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

MEAN, STD = 0.2860, 0.3530
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "models"))
import gpt_vs_torch  # noqa: E402  (its trainrun config for the GPT)


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


class ConvBn(torch.nn.Module):
    """gen_models.py's conv_bn: Conv without bias, BatchNorm (ONNX momentum 0.9 = torch's 0.1)."""

    def __init__(self, c_in, c_out, k=3, stride=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)
        self.bn = torch.nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(torch.nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.a = ConvBn(c_in, c_out, 3, stride)
        self.b = ConvBn(c_out, c_out, 3, 1)
        self.down = ConvBn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        h = self.b(F.relu(self.a(x)))
        return F.relu(h + (self.down(x) if self.down is not None else x))


class ResNet(torch.nn.Module):
    """gen_models.py's resnet.onnx, module names matching its initializers."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBn(1, 32)
        self.layer1 = Block(32, 32, 1)
        self.layer2 = Block(32, 64, 2)
        self.layer3 = Block(64, 64, 1)
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x.reshape(x.shape[0], 1, 28, 28))), 2)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def onnx_weights(path):
    return {i.name: numpy_helper.to_array(i).copy() for i in onnx.load(path).graph.initializer}


def torch_model(kind, onnx_path):
    if kind == "gpt":
        import gen_gpt
        return gen_gpt.from_onnx(onnx_path)
    m = {"mlp": Mlp, "cnn": Cnn, "resnet": ResNet}[kind]()
    w = onnx_weights(onnx_path)
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(sd) == set(w), f"{onnx_path}: initializers {sorted(w)} vs torch {sorted(sd)}"
    m.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=False)
    return m


# ---- one PyTorch measurement, in its own process (--torch-worker) ----------
def torch_worker(a):
    torch.set_num_threads(a.torch_threads)
    m = torch_model(a.kind, a.model)
    m.train()
    if a.kind == "gpt":
        ids = np.fromfile(a.tokens, dtype="<u2").astype(np.int64)
        ctx, vocab = m.wpe.weight.shape[0], m.wte.weight.shape[0]
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)

        def batch(k):
            rows = [ids[i * ctx:i * ctx + ctx + 1] for i in range(k * a.batch, (k + 1) * a.batch)]
            t = torch.from_numpy(np.stack(rows))
            return t[:, :-1], t[:, 1:].reshape(-1)

        def loss_of(xb, yb):
            return F.cross_entropy(m(xb).reshape(-1, vocab), yb)
    else:
        x, y = load_train(a.data_dir)
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

        def batch(k):
            return x[k * a.batch:(k + 1) * a.batch], y[k * a.batch:(k + 1) * a.batch]

        def loss_of(xb, yb):
            return F.cross_entropy(m(xb), yb)
    t0 = c0 = None
    for k in range(a.steps):
        if k == a.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        xb, yb = batch(k)
        opt.zero_grad()
        loss_of(xb, yb).backward()
        opt.step()
    n = a.steps - a.warmup
    print(json.dumps({"ms_per_step": (time.perf_counter() - t0) / n * 1000,
                      "cpu_ms_per_step": (time.process_time() - c0) / n * 1000}))


# ---- the driver --------------------------------------------------------------
IMAGE_CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
label_input: "labels"
data_input: "x"
sgd {{ lr: 0.05 momentum: 0.9 }}
lr_schedule {{ constant {{}} }}
batch_size: {batch}
epochs: 1
dataset {{ name: "fashion-mnist" dir: "{data}" mean: {mean} std: {std} shuffle: TOGGLE_OFF }}
seed: 1
checkpoint_path: "{ckpt}"
log_interval: {log}
eval_each_epoch: TOGGLE_OFF
"""


def encode(a, txt, path):
    with open(path, "wb") as f:
        f.write(subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=txt.encode(), capture_output=True,
                               check=True).stdout)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def pinned(cores, cmd):
    return ["taskset", "-c", ",".join(str(c) for c in cores)] + cmd


def remove_checkpoints(ckpt):
    """trainrun resumes from the checkpoint or any step checkpoint (NAME.step-N.onnx) left behind."""
    for f in glob.glob(ckpt[:-len(".onnx")] + "*"):
        os.unlink(f)


def ours_ms(a, w, cores):
    """trainrun's time per step: the steps after the first logged interval."""
    ckpt = os.path.join(a.work, w["kind"] + ".ckpt.onnx")
    remove_checkpoints(ckpt)
    cmd = pinned(cores, [a.trainrun, "--model", w["model"], "--config", w["config"], "--steps", str(w["steps"]),
                         "--threads", str(len(cores)), "--checkpoint", ckpt])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    sps = [float(v) for v in re.findall(r"samples/s (\d+)", out.stdout)][1:]
    if not sps:
        sys.exit(f"trainrun: no samples/s after the first interval:\n{out.stdout}")
    return w["batch"] / statistics.median(sps) * 1000


def child_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ours_cpu_ms(a, trainrun, w, cores):
    """trainrun's CPU time per step: a run of --steps minus a run of the warm-up steps, so
    start-up (model load, JIT, data mapping) cancels out."""
    ckpt = os.path.join(a.work, w["kind"] + ".ckpt.onnx")
    cpu = []
    for steps in (w["warmup"], w["steps"]):
        remove_checkpoints(ckpt)
        cmd = pinned(cores, [trainrun, "--model", w["model"], "--config", w["config"], "--steps", str(steps),
                             "--threads", str(len(cores)), "--checkpoint", ckpt])
        c0 = child_cpu_s()
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
        cpu.append(child_cpu_s() - c0)
    return (cpu[1] - cpu[0]) / (w["steps"] - w["warmup"]) * 1000


def measure_cpu(a):
    """--cpu-time: CPU ms per step on the first core of the affinity mask, one thread each;
    trainrun (and --baseline, another trainrun binary) against PyTorch t1/blas1, interleaved."""
    cores = sorted(os.sched_getaffinity(0))[:1]
    bins = [("ours", a.trainrun)] + ([("baseline", a.baseline)] if a.baseline else [])
    print("\nCPU ms per step, one core, medians of interleaved runs; ratio = ours / PyTorch")
    print(f"{'model':7} " + " ".join(f"{n:>9}" for n, _ in bins) + f" {'pytorch':>9} {'ratio':>6} {'load':>5}")
    for w in workloads(a):
        res, loads = {n: [] for n, _ in bins + [("pytorch", None)]}, []
        for _, path in bins:  # fills the JIT's kernel cache: compiling is not a step's cost
            ours_cpu_ms(a, path, dict(w, steps=w["warmup"] + 1), cores)
        for _ in range(a.reps):
            for n, path in bins:
                loads.append(loadavg())
                res[n].append(ours_cpu_ms(a, path, w, cores))
            loads.append(loadavg())
            res["pytorch"].append(torch_ms(a, w, cores, 1, 1, key="cpu_ms_per_step"))
        med = {n: statistics.median(v) for n, v in res.items()}
        print(f"{w['kind']:7} " + " ".join(f"{med[n]:9.1f}" for n, _ in bins)
              + f" {med['pytorch']:9.1f} {med['ours'] / med['pytorch']:6.2f} {statistics.median(loads):5.1f}",
              flush=True)


def torch_ms(a, w, cores, threads, blas, key="ms_per_step"):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(threads))
    cmd = pinned(cores, [sys.executable, os.path.abspath(__file__), "--torch-worker", "--kind", w["kind"],
                         "--model", w["model"], "--batch", str(w["batch"]), "--steps", str(w["steps"]),
                         "--warmup", str(w["warmup"]), "--torch-threads", str(threads),
                         "--data-dir", a.data_dir, "--tokens", a.tokens or ""])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])[key]


def workloads(a):
    models = os.path.join(a.build, "examples", "models")
    out = []
    for kind, steps, batch in (("mlp", a.mlp_steps, 64), ("cnn", a.cnn_steps, 64), ("resnet", a.resnet_steps, 64),
                               ("gpt", a.gpt_steps, a.gpt_batch)):
        if a.models and kind not in a.models:
            continue
        model = os.path.join(models, kind + ".onnx")
        if not os.path.exists(model):
            print(f"{kind}: {model} missing, skipped")
            continue
        log = max(steps // 6, 1)  # six intervals; the first (start-up) is dropped
        cfg, ckpt = os.path.join(a.work, kind + ".pb"), os.path.join(a.work, kind + ".ckpt.onnx")
        if kind == "gpt":
            if not a.tokens or not os.path.exists(a.tokens):
                print("gpt: no token stream (fortunes-train.bin), skipped")
                continue
            ctx = onnx_weights(model)["wpe.weight"].shape[0]
            encode(a, gpt_vs_torch.CONFIG.format(batch=batch, steps=steps, train=a.tokens, context=ctx, vocab=256,
                                                 ckpt=ckpt, log=log), cfg)
        else:
            encode(a, IMAGE_CONFIG.format(batch=batch, data=a.data_dir, mean=MEAN, std=STD, ckpt=ckpt, log=log), cfg)
        out.append({"kind": kind, "model": model, "config": cfg, "steps": steps, "batch": batch, "warmup": log})
    return out


def settings(n):
    """PyTorch thread settings that fit n cores: (torch threads, OpenBLAS threads)."""
    return sorted({(t, b) for t in range(1, n + 1) for b in (1, n)})


def measure(a):
    cpus = sorted(os.sched_getaffinity(0))
    rows = []
    for w in workloads(a):
        for n in a.cores:
            if n > len(cpus):
                print(f"{w['kind']}: {n} cores asked, {len(cpus)} available; skipped")
                continue
            cores = cpus[:n]
            ours, theirs, loads = [], {s: [] for s in settings(n)}, []
            for _ in range(a.reps):  # interleaved: ours, then every PyTorch setting
                loads.append(loadavg())
                ours.append(ours_ms(a, w, cores))
                for s in theirs:
                    loads.append(loadavg())
                    theirs[s].append(torch_ms(a, w, cores, *s))
            med = {s: statistics.median(v) for s, v in theirs.items()}
            best = min(med, key=med.get)
            rows.append((w, n, statistics.median(ours), med, best, statistics.median(loads)))
            print(f"{w['kind']} {n} cores: ours {statistics.median(ours):.1f} ms/step, PyTorch "
                  + ", ".join(f"t{s[0]}/blas{s[1]} {v:.1f}" for s, v in med.items()), flush=True)
    return rows


def report(rows):
    print("\nmedians of interleaved runs; ms per step; ratio = ours / PyTorch's best setting")
    print(f"{'model':7} {'batch':>5} {'cores':>5} {'ours':>8} {'pytorch best':>13} {'setting':>14} {'ratio':>6} "
          f"{'ours samples/s':>15} {'pytorch samples/s':>18} {'load':>5}")
    for w, n, ours, med, best, load in rows:
        b = w["batch"]
        print(f"{w['kind']:7} {b:5d} {n:5d} {ours:8.1f} {med[best]:13.1f} {'t%d/blas%d' % best:>14} "
              f"{ours / med[best]:6.2f} {b / ours * 1000:15.0f} {b / med[best] * 1000:18.0f} {load:5.1f}")
    for w, n, ours, med, best, _ in rows:
        if w["kind"] == "cnn" or w["kind"] == "resnet":
            bpe = 60000 // w["batch"]
            print(f"{w['kind']} epoch ({bpe} batches of {w['batch']}) on {n} cores: ours {ours * bpe / 1000:.1f} s, "
                  f"PyTorch {med[best] * bpe / 1000:.1f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", help="meson build dir with trainrun and examples/models")
    p.add_argument("--proto", help="the repository's proto/ dir")
    p.add_argument("--work", help="scratch dir for configs and checkpoints")
    p.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (medians)")
    p.add_argument("--models", nargs="+", choices=["mlp", "cnn", "resnet", "gpt"])
    p.add_argument("--mlp-steps", type=int, default=300)
    p.add_argument("--cnn-steps", type=int, default=120)
    p.add_argument("--resnet-steps", type=int, default=60)
    p.add_argument("--gpt-steps", type=int, default=60)
    p.add_argument("--gpt-batch", type=int, default=32)
    p.add_argument("--cpu-time", action="store_true",
                   help="CPU time per step on one core instead of wall time (run under taskset -c CORE)")
    p.add_argument("--baseline", help="with --cpu-time: another trainrun binary measured in the same runs")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--tokens", help="uint16 token stream for the GPT (default: the build's fortunes-train.bin)")
    # --torch-worker: one PyTorch measurement (used by the driver)
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    p.add_argument("--torch-threads", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        torch_worker(a)
        return
    if not (a.build and a.proto and a.work):
        p.error("--build, --proto and --work are required")
    a.trainrun = os.path.join(a.build, "ops/trainrun/trainrun")
    if a.tokens is None:
        a.tokens = os.path.join(a.build, "examples", "models", "fortunes-train.bin")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, cores {a.cores}, {a.reps} interleaved repetitions, "
          f"load average now {loadavg():.2f}", flush=True)
    if a.cpu_time:
        measure_cpu(a)
        return
    report(measure(a))


if __name__ == "__main__":
    main()
