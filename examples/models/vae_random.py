#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A variational autoencoder whose reparameterisation draws its own noise
(`mu + torch.randn_like(std) * std`, exported as RandomNormalLike), with
its loss (reconstruction + KL) as a model output, trained by trainrun on
synthetic data.

    vae_random.py --trainrun PATH --proto PROTO_DIR [--steps 300] [--threads 1]
    vae_random.py --export DIR --proto PROTO_DIR [--steps 300]

The first form checks four things:
  1. the VAE as PyTorch exports it trains: the mean of the last logged
     losses is below 0.7 of the first one and of what predicting the
     data's mean costs (PyTorch itself ends near 0.55 of both);
  2. its gradients are PyTorch's: the same model with a seed attribute on
     its RandomNormalLike (a fixed draw, ops/kernels/random.c) trains a few
     SGD steps from the same weights as PyTorch fed the very noise the op
     draws (computed here from the generator's definition: word j of
     element i is SplitMix64's mix2(key, 2i + j), key = mix2("seed", seed),
     Box-Muller on the two words), and the trained weights agree.
  3. a run resumed from its checkpoint draws the noise the uninterrupted
     run drew: 4 + 4 steps end with the weights of 8;
  4. a denoising autoencoder with noise injection and stochastic depth
     (`torch.rand(N, 1) < p`, exported as RandomUniformLike) trains.
The second form writes DIR/vae.onnx, DIR/denoiser.onnx (check 4's model),
DIR/dropnet.onnx (an autoencoder with nn.Dropout), DIR/x.npy and
DIR/vae.config.pb (the integration test random_ranks trains them on two
ranks).

Exit status: 0 when all hold, 1 otherwise, 77 (skipped) when torch,
onnx, numpy or protoc is missing.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROG = "vae_random.py"
CONFIG = """loss_output: "loss"
{opt}
batch_size: {batch}
max_steps: {steps}
log_interval: {log}
seed: 3
dataset {{ dir: "{dir}" shuffle: {shuffle}
  train {{ path: "x.npy" input: "x" }} }}
checkpoint_path: "{ckpt}"
checkpoint_interval: 0
"""
SEED = 5.0
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def vae_class(torch):
    nn, F = torch.nn, torch.nn.functional

    class VAE(nn.Module):
        def __init__(s):
            super().__init__()
            s.enc, s.mu, s.logvar = nn.Linear(16, 32), nn.Linear(32, 4), nn.Linear(32, 4)
            s.dec1, s.dec2 = nn.Linear(4, 32), nn.Linear(32, 16)

        def forward(s, x, eps=None):
            h = F.relu(s.enc(x))
            mu, logvar = s.mu(h), s.logvar(h)
            std = torch.exp(0.5 * logvar)
            z = mu + (torch.randn_like(std) if eps is None else eps) * std
            recon = s.dec2(torch.tanh(s.dec1(z)))
            kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
            return ((recon - x) ** 2).sum(1).mean() + kl

    return VAE


def data(np, n):
    """Points near a 4-dimensional manifold in 16 dimensions."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, 4))
    w = rng.standard_normal((4, 16))
    return (np.tanh(z @ w) + 0.05 * rng.standard_normal((n, 16))).astype(np.float32)


def export(torch, onnx, m, path, seed=None):
    """Exports m with its loss as output "loss"; seed: set on the draw."""
    torch.onnx.export(m, (torch.zeros(8, 16),), path, input_names=["x"], output_names=["loss"],
                      dynamic_axes={"x": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    g = onnx.load(path)
    draws = [n for n in g.graph.node if n.op_type == "RandomNormalLike"]
    if len(draws) != 1:
        sys.exit(f"{PROG}: the export has {len(draws)} RandomNormalLike nodes, expected 1")
    if seed is not None:
        draws[0].attribute.append(onnx.helper.make_attribute("seed", float(seed)))
        onnx.save(g, path)


def encode(a, text, path):
    with open(path, "wb") as f:
        subprocess.run(["protoc", "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                        os.path.join(a.proto, "train_config.proto")], input=text.encode(),
                       stdout=f, check=True)


def train(a, model, cfg_text, d, name):
    cfg = os.path.join(d, name + ".pb")
    encode(a, cfg_text, cfg)
    r = subprocess.run([a.trainrun, "--model", model, "--config", cfg, "--threads",
                        str(a.threads)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{PROG}: {name}: trainrun failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return [float(v) for v in re.findall(r"^step \d+/\d+ loss (\S+)", r.stdout, re.M)]


def mix64(np, z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def seeded_normal(np, seed, shape):
    """What RandomNormal(Like) with attribute seed draws (mean 0, scale 1)."""
    with np.errstate(over="ignore"):
        key = mix64(np, np.array([0x73656564 ^ int(mix64(np, np.array([int(seed) + GOLDEN & M64],
                                                                     dtype=np.uint64))[0])],
                                 dtype=np.uint64))[0]
        i = np.arange(int(np.prod(shape)), dtype=np.uint64)

        def word(j):
            return mix64(np, key ^ mix64(np, np.uint64(2) * i + np.uint64(j) + np.uint64(GOLDEN)))

        u1 = ((word(0) >> np.uint64(11)).astype(np.float64) + 1.0) / 9007199254740992.0
        u2 = (word(1) >> np.uint64(11)).astype(np.float64) / 9007199254740992.0
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(np.float32).reshape(shape)


def check_learns(a, torch, onnx, np, d):
    torch.manual_seed(0)
    path = os.path.join(d, "vae.onnx")
    export(torch, onnx, vae_class(torch)(), path)
    cfg = CONFIG.format(opt="adam { lr: 0.02 }", batch=64, steps=a.steps, log=5, dir=d,
                        shuffle="TOGGLE_ON", ckpt=os.path.join(d, "vae.ckpt.onnx"))
    losses = train(a, path, cfg, d, "learns")
    if len(losses) < 6:
        print(f"learns: only {len(losses)} losses logged")
        return False
    # Predicting the data's mean (no latent at all) costs the sum of the
    # variances; a VAE that learned the manifold does clearly better.
    first, last = losses[0], sum(losses[-5:]) / 5
    mean_only = float(np.load(os.path.join(d, "x.npy")).var(0).sum())
    ok = last < 0.7 * first and last < 0.7 * mean_only
    print(f"learns: loss {first:.4f} -> {last:.4f} over {a.steps} steps (the data mean's "
          f"{mean_only:.4f}): {'ok' if ok else 'FAILED'}")
    return ok


def check_gradients(a, torch, onnx, np, d):
    """A seeded draw is the same tensor every step: PyTorch fed it trains
    the same weights."""
    from onnx import numpy_helper
    torch.manual_seed(1)
    m = vae_class(torch)()
    path = os.path.join(d, "seeded.onnx")
    export(torch, onnx, m, path, seed=SEED)
    steps, batch, lr = 4, 64, 0.05
    ckpt = os.path.join(d, "seeded.ckpt.onnx")
    cfg = CONFIG.format(opt=f"sgd {{ lr: {lr} }}\nlr_schedule {{ constant {{}} }}", batch=batch,
                        steps=steps, log=1, dir=d, shuffle="TOGGLE_OFF", ckpt=ckpt)
    ours = train(a, path, cfg, d, "seeded")
    x = torch.tensor(np.load(os.path.join(d, "x.npy")))
    eps = torch.tensor(seeded_normal(np, SEED, (batch, 4)))
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    theirs = []
    for s in range(steps):
        opt.zero_grad()
        loss = m(x[s * batch:(s + 1) * batch], eps)
        loss.backward()
        theirs.append(float(loss))
        opt.step()
    w = {i.name: numpy_helper.to_array(i) for i in onnx.load(ckpt).graph.initializer}
    diff = max(float(np.abs(w[k] - v.detach().numpy()).max()) for k, v in m.state_dict().items())
    loss_diff = max(abs(o - t) / max(abs(t), 1e-6) for o, t in zip(ours, theirs)) \
        if len(ours) == len(theirs) else float("inf")
    ok = diff <= a.weight_tol and loss_diff <= 1e-3
    print(f"seeded draw vs PyTorch fed the same noise: weights differ by {diff:.3g}, losses "
          f"{[round(v, 4) for v in ours]} vs {[round(v, 4) for v in theirs]}: "
          f"{'ok' if ok else 'FAILED'}")
    return ok


def export_denoiser(torch, path):
    nn, F = torch.nn, torch.nn.functional

    class Denoiser(nn.Module):
        def __init__(s):
            super().__init__()
            s.inp, s.block, s.out = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 16)

        def forward(s, x):
            h = F.relu(s.inp(x + 0.1 * torch.randn_like(x)))
            keep = (torch.rand(x.shape[0], 1) < 0.8).float()
            h = h + keep * F.relu(s.block(h)) / 0.8
            return ((s.out(h) - x) ** 2).sum(1).mean()

    torch.manual_seed(2)
    torch.onnx.export(Denoiser(), (torch.zeros(8, 16),), path, input_names=["x"],
                      output_names=["loss"], dynamic_axes={"x": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)


def export_dropnet(torch, onnx, path):
    """An autoencoder with nn.Dropout(0.3) after each hidden layer, exported
    in training mode (Dropout nodes with training_mode True)."""
    nn, F = torch.nn, torch.nn.functional

    class DropNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.l1, s.l2, s.l3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 16)
            s.d1, s.d2 = nn.Dropout(0.3), nn.Dropout(0.3)

        def forward(s, x):
            h = s.d2(F.relu(s.l2(s.d1(F.relu(s.l1(x))))))
            return ((s.l3(h) - x) ** 2).sum(1).mean()

    torch.manual_seed(3)
    torch.onnx.export(DropNet(), (torch.zeros(8, 16),), path, input_names=["x"],
                      output_names=["loss"], dynamic_axes={"x": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    drops = sum(n.op_type == "Dropout" for n in onnx.load(path).graph.node)
    if drops != 2:
        sys.exit(f"{PROG}: the dropnet export has {drops} Dropout nodes, expected 2")


def check_stochastic_depth(a, torch, onnx, np, d):
    """A denoising autoencoder with noise injection (randn_like) and a
    residual block dropped per sample (stochastic depth written as
    torch.rand(N, 1) < p: ConstantOfShape of the batch, RandomUniformLike,
    Less, Cast) trains."""
    path = os.path.join(d, "denoiser.onnx")
    export_denoiser(torch, path)
    kinds = {n.op_type for n in onnx.load(path).graph.node}
    if not {"RandomNormalLike", "RandomUniformLike"} <= kinds:
        sys.exit(f"{PROG}: the denoiser's export has no random ops: {sorted(kinds)}")
    cfg = CONFIG.format(opt="adam { lr: 0.01 }", batch=64, steps=200, log=5, dir=d,
                        shuffle="TOGGLE_ON", ckpt=os.path.join(d, "denoiser.ckpt.onnx"))
    losses = train(a, path, cfg, d, "denoiser")
    ok = len(losses) >= 6 and sum(losses[-5:]) / 5 < 0.5 * losses[0]
    print(f"stochastic depth + noise injection: loss {losses[0]:.4f} -> "
          f"{sum(losses[-5:]) / 5:.4f}: {'ok' if ok else 'FAILED'}")
    return ok


def check_resume(a, onnx, np, d):
    """Drawn from (seed, step, rank), the noise of a resumed run is the
    uninterrupted run's: both end with the same weights."""
    from onnx import numpy_helper
    path = os.path.join(d, "vae.onnx")  # check_learns exported it
    cfg = os.path.join(d, "resume.pb")
    encode(a, CONFIG.format(opt="adam { lr: 0.02 }", batch=64, steps=8, log=1, dir=d,
                            shuffle="TOGGLE_ON", ckpt=os.path.join(d, "unused.onnx")), cfg)

    def run(ckpt, *extra):
        r = subprocess.run([a.trainrun, "--model", path, "--config", cfg, "--threads",
                            str(a.threads), "--checkpoint", ckpt, *extra], capture_output=True,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"{PROG}: resume: trainrun {' '.join(extra)} failed:\n{r.stdout}\n{r.stderr}")

    whole, part = os.path.join(d, "whole.onnx"), os.path.join(d, "part.onnx")
    run(whole, "--steps", "8")
    run(part, "--steps", "4")
    run(part, "--resume", "--steps", "8")
    wa = {i.name: numpy_helper.to_array(i) for i in onnx.load(whole).graph.initializer}
    wb = {i.name: numpy_helper.to_array(i) for i in onnx.load(part).graph.initializer}
    diff = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    ok = diff == 0.0
    print(f"resume: 4 + 4 steps vs 8 steps: weights differ by {diff:.3g}: "
          f"{'ok' if ok else 'FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("--trainrun")
    ap.add_argument("--proto", required=True)
    ap.add_argument("--export", metavar="DIR")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weight-tol", type=float, default=1e-5)
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
    if a.export:
        os.makedirs(a.export, exist_ok=True)
        np.save(os.path.join(a.export, "x.npy"), data(np, 2048))
        torch.manual_seed(0)
        export(torch, onnx, vae_class(torch)(), os.path.join(a.export, "vae.onnx"))
        export_denoiser(torch, os.path.join(a.export, "denoiser.onnx"))
        export_dropnet(torch, onnx, os.path.join(a.export, "dropnet.onnx"))
        encode(a, CONFIG.format(opt="adam { lr: 0.02 }", batch=64, steps=a.steps, log=5,
                                dir=os.path.abspath(a.export), shuffle="TOGGLE_ON",
                                ckpt=os.path.join(os.path.abspath(a.export), "vae.ckpt.onnx")),
               os.path.join(a.export, "vae.config.pb"))
        return 0
    if not a.trainrun:
        ap.error("--trainrun or --export is required")
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), data(np, 2048))
        ok = check_learns(a, torch, onnx, np, d)
        ok = check_gradients(a, torch, onnx, np, d) and ok
        ok = check_resume(a, onnx, np, d) and ok
        ok = check_stochastic_depth(a, torch, onnx, np, d) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
