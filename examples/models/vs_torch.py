# SPDX-License-Identifier: Apache-2.0
"""What the *_vs_torch.py comparisons share: skipping when a tool is
missing, writing a TrainConfig from text with protoc, running trainrun
for its per-step losses, and the zoo comparisons' whole loop (export,
train on both sides, compare losses and weights).

Each caller passes its own program name (`prog`) so that messages say which
comparison spoke.
"""
import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def need(prog, module):
    """Imports module, or exits 77 (skipped) naming it."""
    try:
        return __import__(module)
    except ImportError:
        print("%s: skipped: python3 module %s is missing (python3-torch, python3-onnx)" % (prog, module),
              file=sys.stderr)
        sys.exit(SKIP)


def need_protoc(prog):
    """protoc's path, or exits 77 (skipped)."""
    path = shutil.which("protoc")
    if not path:
        print("%s: skipped: protoc is missing" % prog, file=sys.stderr)
        sys.exit(SKIP)
    return path


def run_trainrun(prog, a, model, config_text, work, name):
    """Encodes config_text to work/NAME.config.pb, trains model with
    a.trainrun on a.threads threads and returns the logged losses."""
    cfg = os.path.join(work, name + ".config.pb")
    with open(cfg, "wb") as f:
        f.write(subprocess.run([a.protoc, "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=config_text.encode(), capture_output=True,
                               check=True).stdout)
    cmd = [a.trainrun, "--model", model, "--config", cfg, "--threads", str(a.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s: %s failed (%d):\n%s\n%s" % (prog, " ".join(cmd), out.returncode, out.stdout, out.stderr))
    return [float(v) for v in re.findall(r"^step \d+/\d+ loss (\S+)", out.stdout, re.M)]


# A ViT's patch embedding as the zoos' ViTs write it (zoo2_vs_torch.py,
# zoo3_vs_torch.py): a strided Conv cuts the 8x8 image into patches of 16
# channels, a class token goes in front by Expand and Concat, and a learned
# position embedding is added. Plain functions on the model, not a module
# of their own, so the parameters keep the names users give them (patch,
# cls, pos) and the exported models their initializer names.
def patch_embed(torch, m, kernel, pos_std, cls_std=0.0, dim=16, image=8):
    """Gives module m its patch embedding: m.patch (Conv2d with stride =
    kernel), m.cls (random with cls_std, zeros when 0) and m.pos (random
    with pos_std, one row per patch and one for the class token), created
    in that order (the seeded initial weights depend on it)."""
    nn = torch.nn
    m.patch = nn.Conv2d(3, dim, kernel, stride=kernel)
    m.cls = nn.Parameter(torch.randn(1, 1, dim) * cls_std if cls_std else torch.zeros(1, 1, dim))
    m.pos = nn.Parameter(torch.randn(1, (image // kernel) ** 2 + 1, dim) * pos_std)


def patch_tokens(torch, m, x):
    """The tokens of images x [N, 3, H, W] by m's patch_embed: the class
    token, then the patches in row order, plus the position embedding."""
    p = m.patch(x).flatten(2).transpose(1, 2)
    return torch.cat([m.cls.expand(x.shape[0], -1, -1), p], dim=1) + m.pos


# The zoo comparisons (zoo_vs_torch.py, zoo2_vs_torch.py, zoo3_vs_torch.py):
# each model is trained on NumPy batches, by default as a classifier with
# the mean cross-entropy over its (first) output "logits"; a model whose
# options say "loss": "output" computes its own loss from its inputs and
# the labels, and the config names that output (loss_output).
ZOO_CONFIG = """{loss}
data_input: "x"
label_input: "labels"
sgd {{ lr: {lr} }}
lr_schedule {{ constant {{}} }}
batch_size: {batch}
max_steps: {steps}
dataset {{
  dir: "{dir}"
{arrays}  shuffle: TOGGLE_OFF
}}
seed: 1
checkpoint_path: "{ckpt}"
checkpoint_interval: 0
log_interval: 1
"""


def zoo_inputs(xs):
    """The model's inputs: xs itself or the arrays of a tuple, named x, x1, x2, ..."""
    xs = xs if isinstance(xs, tuple) else (xs,)
    return [("x" if i == 0 else "x%d" % i, v) for i, v in enumerate(xs)]


def zoo_loss(torch, a, m, xs, ys):
    """The loss of one batch: the model's own ("loss": "output"), or the
    mean cross-entropy over its output or the first of its outputs."""
    ins = [torch.from_numpy(v) for _, v in zoo_inputs(xs)]
    if a.loss == "output":
        return m(*ins) if ys is None else m(*ins, torch.from_numpy(ys))
    out = m(*ins)
    return torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, torch.from_numpy(ys))


def zoo_run_torch(torch, a, m, lr, xs, ys):
    """Trains m for a.steps steps of plain SGD on consecutive batches of
    a.batch samples; returns the losses."""
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    losses = []
    for step in range(a.steps):
        part = slice(step * a.batch, (step + 1) * a.batch)
        loss = zoo_loss(torch, a, m, tuple(v[part] for _, v in zoo_inputs(xs)), None if ys is None else ys[part])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def zoo_train_torch(torch, np, a, name, spec, batches):
    """The model's initial state, its batches (batches(np, kind, n, rng)
    makes them), and PyTorch's losses and trained parameters."""
    cls, kind, lr = spec[:3]
    torch.manual_seed(sum(map(ord, name)))
    m = cls()
    m.train()
    xs, ys = batches(np, kind, a.steps * a.batch, np.random.default_rng(len(name)))
    if ys is not None:
        ys = ys.astype("float32" if a.loss == "output" and ys.dtype.kind == "f" else "int64")
    initial = copy.deepcopy(m)
    losses = zoo_run_torch(torch, a, m, lr, xs, ys)
    trained = {k: v.detach().numpy() for k, v in m.named_parameters()}
    return {"model": initial, "xs": xs, "ys": ys, "losses": losses, "trained": trained}


def zoo_export(torch, m, xs, ys, path, opset=17, loss="ce", outputs=1):
    """What a user writes: opset 17 unless told, training mode, no constant
    folding, inputs x (x1, ...: zoo_inputs), output logits (then out1, ...)
    or loss (the model's own, fed the labels too), dynamic batch."""
    names = [n for n, _ in zoo_inputs(xs)]
    args = [torch.from_numpy(v) for _, v in zoo_inputs(xs)]
    if loss == "output":
        if ys is not None:
            names.append("labels")
            args.append(torch.from_numpy(ys))
        outs = ["loss"]
    else:
        outs = ["logits"] + ["out%d" % i for i in range(1, outputs)]
    dyn = {n: {0: "N"} for n in names + outs[:1] if n != "loss"}
    torch.onnx.export(m, tuple(args), path, opset_version=opset,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=names, output_names=outs, dynamic_axes=dyn)


def zoo_config(np, a, lr, xs, work, ckpt):
    """The TrainConfig text of one zoo model: its loss, every input's array
    (saved here as NAME.npy) and the labels' (y.npy, saved by the caller;
    a model computing its loss from its inputs alone has none)."""
    loss = 'loss_output: "loss"' if a.loss == "output" else 'softmax_cross_entropy { logits_output: "logits" }'
    arrays = ""
    for name, v in zoo_inputs(xs) + ([("labels", None)] if os.path.exists(os.path.join(work, "y.npy")) else []):
        npy = "y.npy" if v is None else name + ".npy"
        if v is not None:
            np.save(os.path.join(work, npy), v)
        arrays += '  train {{ path: "{0}" input: "{1}" }}\n'.format(npy, name)
    txt = ZOO_CONFIG.format(loss=loss, lr=lr, batch=a.batch, steps=a.steps, dir=work, arrays=arrays, ckpt=ckpt)
    txt += "".join('trainable: "%s"\n' % f for f in getattr(a, "trainable", []))
    return txt + "".join('frozen: "%s"\n' % f for f in a.frozen)


def zoo_compare(prog, torch, np, onnx, a, name, spec, ref, work):
    """Exports ref's initial model, trains it with trainrun and compares
    with PyTorch's run (ref, from zoo_train_torch). True when they agree."""
    from onnx import numpy_helper
    m, xs, lr = ref["model"], ref["xs"], spec[2]
    if ref["ys"] is not None:
        np.save(os.path.join(work, "y.npy"), ref["ys"])
    path = os.path.join(work, name + ".onnx")
    before = {k: v.detach().numpy() for k, v in m.named_parameters()}
    ys = None if ref["ys"] is None else ref["ys"][:a.batch]
    zoo_export(torch, m, tuple(v[:a.batch] for _, v in zoo_inputs(xs)), ys, path, a.opset, a.loss, a.outputs)
    ckpt = os.path.join(work, "model.ckpt.onnx")
    txt = zoo_config(np, a, lr, xs, work, ckpt)
    ours, theirs = run_trainrun(prog, a, path, txt, work, "model"), ref["losses"]
    trained = {i.name: numpy_helper.to_array(i) for i in onnx.load(ckpt).graph.initializer}
    if len(ours) != len(theirs):
        sys.exit("%s: %s: trainrun logged %d losses, expected %d" % (prog, name, len(ours), len(theirs)))
    dloss = max(abs(o - t) for o, t in zip(ours, theirs))
    worst, dw, still = "", 0.0, []
    for k, v in ref["trained"].items():
        if k not in trained:
            sys.exit("%s: %s: parameter %s is not in trainrun's checkpoint" % (prog, name, k))
        d = float(np.max(np.abs(trained[k] - v)))
        if not d <= dw:  # NaN counts as worst
            worst, dw = k, d
        if float(np.max(np.abs(v - before[k]))) < 10 * a.weight_tol:
            still.append(k)
    print("%-13s losses %s (torch %s); max |loss diff| %.2e, max |weight diff| %.2e (%s)"
          % (name, " ".join("%.4f" % v for v in ours[:3]), " ".join("%.4f" % v for v in theirs[:3]),
             dloss, dw, worst))
    # A bias before a BatchNorm or on attention's keys has a zero gradient
    # in both; equal weights prove something only if most tensors moved.
    if still:
        print("%-13s did not move (in PyTorch either): %s" % (name, " ".join(still)))
    return dloss <= a.loss_tol and dw <= a.weight_tol and len(still) * 2 < len(before)


def zoo_main(prog, doc, models, batches, checks=None):
    """Parses the zoo scripts' command line and compares every model of
    models (name: (class, data kind, lr[, options])) or --only one;
    options may set "batch" (the batch size), "opset" (the export's),
    "frozen" (TrainConfig.frozen patterns: buffers and parameters PyTorch
    does not train, which the exported graph holds as initializers),
    "trainable" (TrainConfig.trainable patterns: a rank-0 parameter such
    as a learned temperature trains only when named there),
    "outputs" (how many the model returns; the loss reads the first) and
    "loss": "output" (forward(inputs..., labels) returns the loss itself;
    float labels stay float, for a regression; forward(inputs...) when
    batches gives None for labels, for an autoencoder). batches may return
    a tuple of input arrays for a model of several inputs. checks (name:
    check(prog, torch, np, a, work) -> bool) run after the models, or alone
    with --only NAME.
    Exits 0 when all agree, 1 otherwise."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--proto", required=True, help="the repository's proto/ dir")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", help="one model instead of all")
    ap.add_argument("--loss-tol", type=float, default=2e-4, help="max |loss diff| (trainrun prints 4 decimals)")
    ap.add_argument("--weight-tol", type=float, default=1e-4, help="max |weight diff| after the last step")
    a = ap.parse_args()
    torch, np, onnx = (need(prog, m) for m in ("torch", "numpy", "onnx"))
    a.protoc = need_protoc(prog)
    torch.set_num_threads(a.threads)
    zoo, checks = models(torch), checks or {}
    if a.only and a.only not in zoo and a.only not in checks:
        sys.exit("%s: --only %s: no such model (%s)" % (prog, a.only, ", ".join(sorted(zoo) + sorted(checks))))
    # Debian's PyTorch 1.13 computes a float Conv1d followed by GELU wrongly
    # in backward through oneDNN (gradients of the layers below are
    # garbage such as 4.6e-41; with oneDNN off they equal finite
    # differences, and trainrun's): the reference runs without it.
    torch.backends.mkldnn.enabled = False
    ok = True
    for name in [a.only] if a.only in zoo else [] if a.only else zoo:
        spec, b = zoo[name], copy.copy(a)
        b.opset, b.frozen, b.trainable, b.outputs, b.loss = 17, [], [], 1, "ce"
        b.__dict__.update(spec[3] if len(spec) > 3 else {})
        ref = zoo_train_torch(torch, np, b, name, spec, batches)
        with tempfile.TemporaryDirectory(prefix="ty_%s." % prog.replace(".py", "")) as work:
            ok &= zoo_compare(prog, torch, np, onnx, b, name, spec, ref, work)
    for name in [a.only] if a.only in checks else [] if a.only else checks:
        with tempfile.TemporaryDirectory(prefix="ty_%s." % prog.replace(".py", "")) as work:
            ok &= checks[name](prog, torch, np, a, work)
    sys.exit(0 if ok else 1)
