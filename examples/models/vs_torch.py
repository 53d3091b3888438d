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


# The zoo comparisons (zoo_vs_torch.py, zoo2_vs_torch.py): each model is a
# classifier trained with the mean cross-entropy on NumPy batches.
ZOO_CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
data_input: "x"
label_input: "labels"
sgd {{ lr: {lr} }}
lr_schedule {{ constant {{}} }}
batch_size: {batch}
max_steps: {steps}
dataset {{
  dir: "{dir}"
  train {{ path: "x.npy" input: "x" }}
  train {{ path: "y.npy" input: "labels" }}
  shuffle: TOGGLE_OFF
}}
seed: 1
checkpoint_path: "{ckpt}"
checkpoint_interval: 0
log_interval: 1
"""


def zoo_run_torch(torch, a, m, lr, xs, ys):
    """Trains m for a.steps steps of plain SGD on consecutive batches of
    a.batch samples; returns the losses."""
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    losses = []
    for step in range(a.steps):
        part = slice(step * a.batch, (step + 1) * a.batch)
        loss = torch.nn.functional.cross_entropy(m(torch.from_numpy(xs[part])), torch.from_numpy(ys[part]))
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
    ys = ys.astype("int64")
    initial = copy.deepcopy(m)
    losses = zoo_run_torch(torch, a, m, lr, xs, ys)
    trained = {k: v.detach().numpy() for k, v in m.named_parameters()}
    return {"model": initial, "xs": xs, "ys": ys, "losses": losses, "trained": trained}


def zoo_export(torch, m, x, path, opset=17):
    """What a user writes: opset 17 unless told, training mode, no constant
    folding, input x, output logits, dynamic batch."""
    torch.onnx.export(m, (torch.from_numpy(x),), path, opset_version=opset,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})


def zoo_compare(prog, torch, np, onnx, a, name, spec, ref, work):
    """Exports ref's initial model, trains it with trainrun and compares
    with PyTorch's run (ref, from zoo_train_torch). True when they agree."""
    from onnx import numpy_helper
    m, xs, lr = ref["model"], ref["xs"], spec[2]
    np.save(os.path.join(work, "x.npy"), xs)
    np.save(os.path.join(work, "y.npy"), ref["ys"])
    path = os.path.join(work, name + ".onnx")
    before = {k: v.detach().numpy() for k, v in m.named_parameters()}
    zoo_export(torch, m, xs[:a.batch], path, a.opset)
    ckpt = os.path.join(work, "model.ckpt.onnx")
    txt = ZOO_CONFIG.format(lr=lr, batch=a.batch, steps=a.steps, dir=work, ckpt=ckpt)
    txt += "".join('frozen: "%s"\n' % f for f in a.frozen)
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


def zoo_main(prog, doc, models, batches):
    """Parses the zoo scripts' command line and compares every model of
    models (name: (class, data kind, lr[, options])) or --only one;
    options may set "batch" (the batch size), "opset" (the export's) and
    "frozen" (TrainConfig.frozen patterns: buffers and parameters PyTorch
    does not train, which the exported graph holds as initializers).
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
    zoo = models(torch)
    if a.only and a.only not in zoo:
        sys.exit("%s: --only %s: no such model (%s)" % (prog, a.only, ", ".join(sorted(zoo))))
    # Debian's PyTorch 1.13 computes a float Conv1d followed by GELU wrongly
    # in backward through oneDNN (gradients of the layers below are
    # garbage such as 4.6e-41; with oneDNN off they equal finite
    # differences, and trainrun's): the reference runs without it.
    torch.backends.mkldnn.enabled = False
    ok = True
    for name in [a.only] if a.only else zoo:
        spec, b = zoo[name], copy.copy(a)
        b.opset, b.frozen = 17, []
        b.__dict__.update(spec[3] if len(spec) > 3 else {})
        ref = zoo_train_torch(torch, np, b, name, spec, batches)
        with tempfile.TemporaryDirectory(prefix="ty_%s." % prog.replace(".py", "")) as work:
            ok &= zoo_compare(prog, torch, np, onnx, b, name, spec, ref, work)
    sys.exit(0 if ok else 1)
