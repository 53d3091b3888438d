# SPDX-License-Identifier: Apache-2.0
"""Recurrent classifiers, Trainyard vs PyTorch: time per training step
(run with /usr/bin/python3).

    bench_rnn.py --trainrun PATH --proto PROTO_DIR [--threads 2] [--steps 30]
                 [--reps 3] [--batch 32] [--seq 32] [--hidden 128]

For examples/models/rnn_vs_torch.py's models (Embedding -> nn.LSTM / nn.GRU
-> Linear) at a working size, exported the same way: trainrun --threads T
against PyTorch with torch.set_num_threads(T) (OPENBLAS_NUM_THREADS=T),
both pinned to the same T cores, the same batches (random tokens) and SGD.
Runs are interleaved (ours, then PyTorch, --reps times); each figure is the
median over the repetitions of the time per step after the first logged
interval (trainrun: its samples/s; PyTorch: wall time after a warm-up of
--warmup steps).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "models"))
import rnn_vs_torch as rvt  # noqa: E402


def pinned(threads, cmd):
    cores = sorted(os.sched_getaffinity(0))[:threads]
    return ["taskset", "-c", ",".join(map(str, cores))] + cmd


def ours_ms(a, model, work):
    for f in os.listdir(work):  # a checkpoint left by the previous run would be resumed
        if f.startswith("ckpt."):
            os.unlink(os.path.join(work, f))
    out = subprocess.run(pinned(a.threads, [a.trainrun, "--model", model, "--config",
                                            os.path.join(work, "config.pb"), "--threads", str(a.threads)]),
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("trainrun failed:\n%s\n%s" % (out.stdout, out.stderr))
    sps = [float(v) for v in re.findall(r"samples/s (\d+)", out.stdout)][1:]
    if not sps:
        sys.exit("trainrun: no samples/s after the first interval:\n" + out.stdout)
    return a.batch / statistics.median(sps) * 1000


def torch_ms(a, name, work):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    cmd = pinned(a.threads, [sys.executable, os.path.abspath(__file__), "--torch-worker", "--name", name,
                             "--work", work] + a.passthrough)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit("torch worker failed:\n%s\n%s" % (out.stdout, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])["ms_per_step"]


def torch_worker(a):
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    rvt.VOCAB, rvt.EMBED, rvt.HIDDEN, rvt.SEQ = 1000, a.embed, a.hidden, a.seq
    m = rvt.make_model(torch, *rvt.MODELS[a.name])
    m.load_state_dict(torch.load(os.path.join(a.work, "model.pt")))
    m.train()
    xs, ys = np.load(os.path.join(a.work, "x.npy")), np.load(os.path.join(a.work, "y.npy"))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    t0 = None
    for step in range(a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        x = torch.from_numpy(xs[step * a.batch:(step + 1) * a.batch])
        y = torch.from_numpy(ys[step * a.batch:(step + 1) * a.batch])
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(json.dumps({"ms_per_step": (time.perf_counter() - t0) / (a.steps - a.warmup) * 1000}))


def prepare(a, torch, np, name, work):
    rvt.VOCAB, rvt.EMBED, rvt.HIDDEN, rvt.SEQ = 1000, a.embed, a.hidden, a.seq
    torch.manual_seed(1)
    m = rvt.make_model(torch, *rvt.MODELS[name])
    rng = np.random.default_rng(1)
    xs = rng.integers(0, rvt.VOCAB, size=(a.steps * a.batch, a.seq)).astype("int64")
    ys = rng.integers(0, rvt.CLASSES, size=(a.steps * a.batch,)).astype("int64")
    np.save(os.path.join(work, "x.npy"), xs)
    np.save(os.path.join(work, "y.npy"), ys)
    torch.save(m.state_dict(), os.path.join(work, "model.pt"))
    path = os.path.join(work, name + ".onnx")
    torch.onnx.export(m, (torch.from_numpy(xs[:a.batch]),), path, opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    txt = rvt.CONFIG.format(lr=0.1, batch=a.batch, steps=a.steps, dir=work,
                            ckpt=os.path.join(work, "ckpt.onnx")).replace("log_interval: 1",
                                                                          "log_interval: %d" % a.warmup)
    with open(os.path.join(work, "config.pb"), "wb") as f:
        f.write(subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=txt.encode(), capture_output=True,
                               check=True).stdout)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainrun")
    ap.add_argument("--proto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--models", default="lstm,gru,lstm_bi")
    ap.add_argument("--torch-worker", action="store_true")
    ap.add_argument("--name")
    ap.add_argument("--work")
    a = ap.parse_args()
    a.passthrough = ["--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
                     "--batch", str(a.batch), "--seq", str(a.seq), "--embed", str(a.embed),
                     "--hidden", str(a.hidden)]
    if a.torch_worker:
        return torch_worker(a)
    import numpy as np
    import torch
    print("threads %d, batch %d, seq %d, embed %d, hidden %d, %d steps (%d warm-up), medians of %d"
          % (a.threads, a.batch, a.seq, a.embed, a.hidden, a.steps, a.warmup, a.reps))
    for name in a.models.split(","):
        with tempfile.TemporaryDirectory(prefix="ty_bench_rnn.") as work:
            model = prepare(a, torch, np, name, work)
            ours, theirs = [], []
            for _ in range(a.reps):
                ours.append(ours_ms(a, model, work))
                theirs.append(torch_ms(a, name, work))
            print("%-8s ours %.1f ms/step, PyTorch %.1f ms/step (load %.1f)"
                  % (name, statistics.median(ours), statistics.median(theirs), os.getloadavg()[0]))


if __name__ == "__main__":
    main()
