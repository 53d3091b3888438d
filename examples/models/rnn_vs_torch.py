#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains recurrent text classifiers with trainrun and with PyTorch from the
same weights on the same batches and compares losses and weights.

    rnn_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 12] [--batch 8]
                    [--threads 1] [--only NAME]

Each model is Embedding -> nn.LSTM or nn.GRU (batch_first=True) -> Linear,
exported by torch.onnx.export (opset 17, training=TrainingMode.TRAINING,
dynamic batch) the way a user would:
  lstm      1 layer, the classifier reads out[:, -1]           (LSTM's Y)
  lstm2     2 layers, the classifier reads h_n[-1]              (Y_h)
  lstm_bi   bidirectional, the classifier reads out.mean(1)     (both directions)
  gru       1 layer, out[:, -1]                                 (linear_before_reset=1)
  gru2_bi   2 layers, bidirectional, h_n of the last layer      (Y_h, both directions)
  rnn_relu  nn.RNN(nonlinearity="relu"), out[:, -1]            (activations ["relu"])
Both sides then train N steps of plain SGD (lr 1, no momentum) on the
same random token batches (NumPy arrays fed in file order, shuffle off) with
the mean cross-entropy; trainrun prints each loss with four decimals and
its checkpoint holds the trained weights, compared with PyTorch's in full
float.

Exit status: 0 when every loss agrees within --loss-tol and every weight
within --weight-tol, 1 otherwise, 77 (skipped) when torch, onnx, numpy or
protoc is missing.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "rnn_vs_torch.py"
VOCAB, EMBED, HIDDEN, CLASSES, SEQ = 40, 8, 12, 5, 7

CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
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

# name: (cell, layers, bidirectional, what the classifier reads)
MODELS = {
    "lstm": ("LSTM", 1, False, "last"),
    "lstm2": ("LSTM", 2, False, "h_n"),
    "lstm_bi": ("LSTM", 1, True, "mean"),
    "gru": ("GRU", 1, False, "last"),
    "gru2_bi": ("GRU", 2, True, "h_n"),
    "rnn_relu": ("RNN", 1, False, "last"),
}


def make_model(torch, cell, layers, bidir, read):
    nd = 2 if bidir else 1

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, EMBED)
            extra = {"nonlinearity": "relu"} if cell == "RNN" else {}
            self.rnn = getattr(torch.nn, cell)(EMBED, HIDDEN, num_layers=layers, batch_first=True,
                                               bidirectional=bidir, **extra)
            self.fc = torch.nn.Linear(HIDDEN * nd, CLASSES)

        def forward(self, x):
            out, state = self.rnn(self.emb(x))
            if read == "last":
                feat = out[:, -1]
            elif read == "mean":
                feat = out.mean(1)
            else:
                h = state[0] if cell == "LSTM" else state
                feat = torch.cat([h[-nd + i] for i in range(nd)], 1)
            return self.fc(feat)

    return Classifier()


def run_trainrun(a, model, work):
    ckpt = os.path.join(work, "model.ckpt.onnx")
    txt = CONFIG.format(lr=a.lr, batch=a.batch, steps=a.steps, dir=work, ckpt=ckpt)
    return vs_torch.run_trainrun(PROG, a, model, txt, work, "model"), ckpt


def run_torch(torch, a, m, xs, ys):
    import torch.nn.functional as F
    opt = torch.optim.SGD(m.parameters(), lr=a.lr)
    losses = []
    for step in range(a.steps):
        x = torch.from_numpy(xs[step * a.batch:(step + 1) * a.batch])
        y = torch.from_numpy(ys[step * a.batch:(step + 1) * a.batch])
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def compare(torch, np, onnx, a, name, work):
    from onnx import numpy_helper
    torch.manual_seed(sum(map(ord, name)))
    m = make_model(torch, *MODELS[name])
    rng = np.random.default_rng(len(name))
    xs = rng.integers(0, VOCAB, size=(a.steps * a.batch, SEQ)).astype("int64")
    ys = rng.integers(0, CLASSES, size=(a.steps * a.batch,)).astype("int64")
    np.save(os.path.join(work, "x.npy"), xs)
    np.save(os.path.join(work, "y.npy"), ys)
    path = os.path.join(work, name + ".onnx")
    m.train()
    torch.onnx.export(m, (torch.from_numpy(xs[:a.batch]),), path, opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    before = {k: v.detach().clone().numpy() for k, v in m.state_dict().items()}
    ours, ckpt = run_trainrun(a, path, work)
    theirs = run_torch(torch, a, m, xs, ys)
    trained = {i.name: numpy_helper.to_array(i) for i in onnx.load(ckpt).graph.initializer}
    if len(ours) != len(theirs):
        sys.exit("rnn_vs_torch.py: %s: trainrun logged %d losses, expected %d" % (name, len(ours), len(theirs)))
    dloss = max(abs(o - t) for o, t in zip(ours, theirs))
    worst, dw, n, still = "", 0.0, 0, []
    for k, v in m.state_dict().items():
        if k not in trained:
            sys.exit("rnn_vs_torch.py: %s: parameter %s is not in trainrun's checkpoint" % (name, k))
        d = float(np.max(np.abs(trained[k] - v.detach().numpy())))
        n += 1
        if d >= dw:
            worst, dw = k, d
        # Every tensor must have trained, or equal weights would prove nothing.
        if float(np.max(np.abs(v.detach().numpy() - before[k]))) < 10 * a.weight_tol:
            still.append(k)
    print("%-8s losses %s (torch %s); max |loss diff| %.2e, max |weight diff| %.2e over %d tensors (%s)"
          % (name, " ".join("%.4f" % v for v in ours[:3]), " ".join("%.4f" % v for v in theirs[:3]),
             dloss, dw, n, worst))
    if still:
        print("%-8s did not move in training: %s" % (name, " ".join(still)))
    return dloss <= a.loss_tol and dw <= a.weight_tol and not still


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--proto", required=True, help="the repository's proto/ dir")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=sorted(MODELS), help="one model instead of all")
    ap.add_argument("--loss-tol", type=float, default=2e-4, help="max |loss diff| (trainrun prints 4 decimals)")
    ap.add_argument("--weight-tol", type=float, default=1e-4, help="max |weight diff| after the last step")
    a = ap.parse_args()
    torch, np, onnx = (vs_torch.need(PROG, m) for m in ("torch", "numpy", "onnx"))
    a.protoc = vs_torch.need_protoc(PROG)
    torch.set_num_threads(a.threads)
    ok = True
    for name in [a.only] if a.only else MODELS:
        with tempfile.TemporaryDirectory(prefix="ty_rnn_vs_torch.") as work:
            ok &= compare(torch, np, onnx, a, name, work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
