#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The inference export (trainrun --export-inference) against PyTorch's
eval(): a model with BatchNormalization, Dropout and its loss in the graph,
exported from PyTorch in training mode, trains a few steps with trainrun;
its checkpoint is exported for inference, and the file is checked
(onnx.checker's full check; only the features in and the logits out; every
BatchNormalization in inference mode with one output; no Dropout
training_mode input; no loss node) and run: trainrun's evaluation of the
exported model on a test split gives the loss and accuracy of the PyTorch
module in eval() mode with the checkpoint's weights. Then what is refused:
an --output the model does not have, and a model whose only output is its
loss without --output.

    inference_vs_torch.py --trainrun PATH --proto PROTO_DIR

Exit status: 0 when all holds, 1 otherwise, 77 (skipped) when torch, onnx,
numpy or protoc is missing.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

TRAIN = """loss_output: "loss"
label_input: "y"
sgd {{ lr: 0.1 momentum: 0.9 }}
batch_size: 16
max_steps: 4
checkpoint_path: "{dir}/ckpt.onnx"
dataset {{ dir: "{dir}"
  train {{ path: "x.npy" input: "x" }} train {{ path: "y.npy" input: "y" }} }}
"""
# The exported model run through trainrun's evaluation: the builtin loss
# over its logits, one step too small to move a float32 weight (and the
# BatchNormalization statistics held by a momentum of 1 in the copy run,
# since training normalises by the batch and folds it into them), then the
# final evaluation.
EVAL = """softmax_cross_entropy {{ logits_output: "logits" }}
label_input: "y"
sgd {{ lr: 1e-30 }}
batch_size: 16
max_steps: 1
dataset {{ dir: "{dir}" shuffle: TOGGLE_OFF
  train {{ path: "x.npy" input: "x" }} train {{ path: "y.npy" input: "y" }}
  test {{ path: "xt.npy" input: "x" }} test {{ path: "yt.npy" input: "y" }} }}
"""


def build(torch):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(8, 32)
            self.bn = torch.nn.BatchNorm1d(32)
            self.drop = torch.nn.Dropout(0.5)
            self.fc2 = torch.nn.Linear(32, 4)

        def forward(self, x):
            return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))

    class WithLoss(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, y):
            logits = self.net(x)
            return torch.nn.functional.cross_entropy(logits, y), logits

    return Net, WithLoss


def encode(proto, text, out):
    subprocess.run(["protoc", "--encode=trainyard.TrainConfig", f"--proto_path={proto}",
                    "train_config.proto"], input=text.encode(), stdout=open(out, "wb"),
                   check=True)


def check_structure(onnx, path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ins = [i.name for i in m.graph.input]
    outs = [o.name for o in m.graph.output]
    problems = []
    if ins != ["x"]:
        problems.append(f"inputs {ins}, expected ['x']")
    if outs != ["logits"]:
        problems.append(f"outputs {outs}, expected ['logits']")
    for n in m.graph.node:
        if n.op_type == "BatchNormalization":
            tm = [a.i for a in n.attribute if a.name == "training_mode"]
            if tm not in ([], [0]) or len([o for o in n.output if o]) != 1:
                problems.append(f"{n.name}: training_mode {tm}, outputs {list(n.output)}")
        if n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]:
            problems.append(f"{n.name}: still reads training_mode {n.input[2]}")
        if "Loss" in n.op_type:
            problems.append(f"{n.name}: a loss node ({n.op_type}) is left")
    return problems


def torch_eval(torch, nh, Net, ckpt, xt, yt):
    net = Net()
    w = {i.name.removeprefix("net."): torch.from_numpy(nh.to_array(i).copy())
         for i in __import__("onnx").load(ckpt).graph.initializer}
    missing = [k for k in net.state_dict() if k not in w and "num_batches" not in k]
    if missing:
        raise SystemExit(f"checkpoint lacks {missing}")
    net.load_state_dict({k: v for k, v in w.items() if k in net.state_dict()}, strict=False)
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(xt))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yt)).item()
        acc = (logits.argmax(1) == torch.from_numpy(yt)).float().mean().item()
    return acc, loss


def refusals(onnx, trainrun, d, cfg):
    """Bad input: each refused with exit 2 and a message naming it."""
    failures = []
    bn = [n for n in onnx.load(f"{d}/m.onnx").graph.node if n.op_type == "BatchNormalization"]
    bn_stat = bn[0].output[1]  # the training-mode running mean
    cases = [
        (["--model", f"{d}/ckpt.onnx", "--config", cfg, "--export-inference", f"{d}/bad.onnx",
          "--output", "nosuch"], "--output \"nosuch\": the model has no value of that name"),
        (["--model", f"{d}/ckpt.onnx", "--config", cfg, "--export-inference", f"{d}/bad.onnx",
          "--output", "x"], "--output \"x\": it is a graph input"),
        (["--model", f"{d}/m.onnx", "--export-inference", f"{d}/bad.onnx", "--output",
          bn_stat], "only training computes it"),
        (["--model", f"{d}/loss_only.onnx", "--config", cfg, "--export-inference",
          f"{d}/bad.onnx"], "the model's only output is its loss \"loss\""),
        (["--model", f"{d}/ckpt.onnx", "--output", "logits"],
         "--output is for --export-inference"),
    ]
    for argv, want in cases:
        r = subprocess.run([trainrun] + argv, capture_output=True, text=True)
        if r.returncode != 2 or want not in r.stderr:
            failures.append(f"{argv}: exit {r.returncode}, stderr {r.stderr.strip()!r}, "
                            f"expected exit 2 and {want!r}")
    print(f"{len(cases)} bad inputs refused" if not failures else "refusals: see FAIL")
    if os.path.exists(f"{d}/bad.onnx"):
        failures.append("a refused export left bad.onnx behind")
    return failures


def main():
    ap = argparse.ArgumentParser(prog="inference_vs_torch.py")
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--proto", required=True)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        import onnx.numpy_helper as nh
        import torch
    except ImportError as e:
        print(f"inference_vs_torch.py: skipped: {e}")
        return 77
    if not shutil.which("protoc"):
        print("inference_vs_torch.py: skipped: protoc is missing")
        return 77
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    Net, WithLoss = build(torch)
    d = tempfile.mkdtemp(prefix="ty-infer-")
    try:
        x = rng.normal(size=(64, 8)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0).astype(np.int64)
        np.save(f"{d}/x.npy", x)
        np.save(f"{d}/y.npy", y)
        np.save(f"{d}/xt.npy", x[:48] * 1.5)
        np.save(f"{d}/yt.npy", y[:48])
        model = WithLoss(Net())
        args = (torch.from_numpy(x[:16]), torch.from_numpy(y[:16]))
        torch.onnx.export(model, args, f"{d}/m.onnx", input_names=["x", "y"],
                          output_names=["loss", "logits"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}, "logits": {0: "N"}},
                          training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, opset_version=15)
        lo = onnx.load(f"{d}/m.onnx")
        keep = [o for o in lo.graph.output if o.name == "loss"]
        del lo.graph.output[:]
        lo.graph.output.extend(keep)
        onnx.save(lo, f"{d}/loss_only.onnx")
        encode(a.proto, TRAIN.format(dir=d), f"{d}/train.pb")
        encode(a.proto, EVAL.format(dir=d), f"{d}/eval.pb")
        subprocess.run([a.trainrun, "--model", f"{d}/m.onnx", "--config", f"{d}/train.pb",
                        "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.trainrun, "--model", f"{d}/ckpt.onnx", "--config", f"{d}/train.pb",
                        "--export-inference", f"{d}/inf.onnx"], check=True)
        failures = check_structure(onnx, f"{d}/inf.onnx")
        held = onnx.load(f"{d}/inf.onnx")
        for n in held.graph.node:
            if n.op_type == "BatchNormalization":
                kept = [t for t in n.attribute if t.name != "momentum"]
                del n.attribute[:]
                n.attribute.extend(kept + [onnx.helper.make_attribute("momentum", 1.0)])
        onnx.save(held, f"{d}/inf_held.onnx")
        r = subprocess.run([a.trainrun, "--model", f"{d}/inf_held.onnx", "--config", f"{d}/eval.pb",
                            "--threads", "1"], capture_output=True, text=True)
        m = re.search(r"final test_accuracy ([0-9.]+) test_loss ([0-9.]+)", r.stdout + r.stderr)
        if not m:
            failures.append(f"no final evaluation in trainrun's output:\n{r.stdout}{r.stderr}")
        else:
            acc, loss = float(m.group(1)), float(m.group(2))
            tacc, tloss = torch_eval(torch, nh, Net, f"{d}/ckpt.onnx", x[:48] * 1.5, y[:48])
            print(f"exported model: accuracy {acc:.4f} loss {loss:.4f}; "
                  f"PyTorch eval(): accuracy {tacc:.4f} loss {tloss:.4f}")
            if abs(acc - tacc) > 1e-4 or abs(loss - tloss) > 1e-4 + 1e-4 * abs(tloss):
                failures.append("the exported model's evaluation differs from PyTorch's eval()")
        failures += refusals(onnx, a.trainrun, d, f"{d}/train.pb")
        for f in failures:
            print(f"FAIL: {f}")
        return 1 if failures else 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
