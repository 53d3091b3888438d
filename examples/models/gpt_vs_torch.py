#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains gen_gpt.py's model with trainrun and with PyTorch from the same
weights and compares the losses step by step.

    gpt_vs_torch.py --trainrun PATH --model gpt.onnx --train-bin TRAIN.bin
                    --proto PROTO_DIR [--steps 50] [--batch 16] [--threads 1]

Both sides see the same batches: windows of context + 1 tokens in file order
(trainrun's token stream with shuffle off, stride = context), batch k being
windows k*B .. k*B + B - 1; the same optimizer (AdamW, lr 1e-3, betas 0.9 and
0.99, eps 1e-8, weight decay 0.01 on every parameter, constant rate); the
same loss (mean cross-entropy over all N x T tokens). trainrun prints each
step's loss with four decimals, so the curves agree to that resolution at
best; the weights after the last step (trainrun's checkpoint vs torch's
parameters) are compared in full float, the tied embedding included, which
only matches if its gradient is the sum of the embedding's and the output
layer's. One slice is left out: the key bias (the middle third of each
c_attn.bias) adds the same q.b to every score of a row, which softmax
ignores, so its true gradient is zero and both sides compute rounding noise
of about 1e-9 that Adam, dividing by its own root mean square, turns into
full steps of the learning rate: those weights are noise on both sides.

A tensor further than --weight-tol from float32 PyTorch's is then judged
against PyTorch's float64 run from the same weights, as
torchvision_vs_torch.py judges every tensor: Adam turns the rounding of a
gradient near zero into a step of up to the learning rate, so an element
can move by more than the tolerance on either float32 side. Such a tensor
passes when trainrun is at most NOISE_FACTOR times as far from float64 as
float32 PyTorch is.

Exit status: 0 when every loss agrees within --loss-tol and every weight
within --weight-tol, 1 otherwise, 77 (skipped) when torch, onnx, protoc or
the token file is missing.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "gpt_vs_torch.py"
NOISE_FACTOR = 8.0  # trainrun's distance from float64 / float32 PyTorch's, past --weight-tol


CONFIG = """softmax_cross_entropy {{ logits_output: "logits" }}
data_input: "idx"
label_input: "labels"
adam {{ lr: 0.001 beta1: 0.9 beta2: 0.99 eps: 1e-8 weight_decay: 0.01 decoupled_weight_decay: true }}
lr_schedule {{ constant {{}} }}
batch_size: {batch}
max_steps: {steps}
dataset {{
  tokens {{ train_path: "{train}" test_path: "" dtype: UINT16 context: {context} stride: 0 vocab_size: {vocab} }}
  shuffle: TOGGLE_OFF
}}
seed: 1
checkpoint_path: "{ckpt}"
checkpoint_interval: 0
log_interval: {log}
"""


def run_trainrun(a, model, context, vocab, work):
    ckpt = os.path.join(work, "gpt.ckpt.onnx")
    txt = CONFIG.format(batch=a.batch, steps=a.steps, train=os.path.abspath(a.train_bin), context=context,
                        vocab=vocab, ckpt=ckpt, log=1)
    return vs_torch.run_trainrun(PROG, a, model, txt, work, "gpt"), ckpt


def run_torch(torch, gpt, a, model_path, ids, dtype="float32"):
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    m = gpt.from_onnx(model_path).to(getattr(torch, dtype))
    m.train()
    context, vocab = m.wpe.weight.shape[0], m.wte.weight.shape[0]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    losses = []
    for step in range(a.steps):
        rows = [ids[i * context:i * context + context + 1] for i in range(step * a.batch, (step + 1) * a.batch)]
        x = torch.from_numpy(__import__("numpy").stack(rows).astype("int64"))
        loss = F.cross_entropy(m(x[:, :-1]).reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, m


def compared(k, diff):
    """diff with the key bias's slice zeroed (see the module's doc)."""
    if k.endswith("attn.c_attn.bias"):
        width = diff.shape[0] // 3
        diff[width:2 * width] = 0
    return diff


def weight_diffs(np, a, trained, m):
    """Each compared tensor's max |trainrun - float32 PyTorch|."""
    diffs = {}
    for k, v in m.state_dict().items():
        if k == "lm_head.weight" or k not in trained or not v.is_floating_point():
            continue
        diff = np.abs(trained[k] - v.detach().numpy())
        if k.endswith("attn.c_attn.bias"):
            width = diff.shape[0] // 3
            print("  %s key part: max |diff| %.2e (not compared)" % (k, float(np.max(diff[width:2 * width]))))
        diffs[k] = float(np.max(compared(k, diff)))
        if a.verbose:
            print("  %-28s max |diff| %.2e" % (k, diffs[k]))
    return diffs


def within_float_noise(np, a, k, trained, m32, m64):
    """Whether tensor k, past --weight-tol, is within NOISE_FACTOR times
    float32 PyTorch's own distance from the float64 run."""
    truth = m64.state_dict()[k].detach().numpy()
    d_ours = float(np.max(compared(k, np.abs(trained[k] - truth))))
    d32 = float(np.max(compared(k, np.abs(m32.state_dict()[k].detach().numpy() - truth))))
    ok = d_ours <= NOISE_FACTOR * d32
    print("  %s: %.2e from float64 PyTorch, float32 PyTorch %.2e (allowed %.0fx): %s"
          % (k, d_ours, d32, NOISE_FACTOR, "within float noise" if ok else "NOT within float noise"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainrun", required=True)
    ap.add_argument("--model", required=True, help="gpt.onnx from gen_gpt.py")
    ap.add_argument("--train-bin", required=True, help="uint16 token ids (tokenize_corpus.py)")
    ap.add_argument("--proto", required=True, help="the repository's proto/ dir")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loss-tol", type=float, default=2e-4, help="max |loss diff| (trainrun prints 4 decimals)")
    ap.add_argument("--weight-tol", type=float, default=1e-4, help="max |weight diff| after the last step")
    ap.add_argument("--verbose", action="store_true", help="print every tensor's weight difference")
    a = ap.parse_args()
    torch, np, onnx = (vs_torch.need(PROG, m) for m in ("torch", "numpy", "onnx"))
    from onnx import numpy_helper
    a.protoc = vs_torch.need_protoc(PROG)
    for path, what in ((a.model, "the model (python3-torch at build time)"),
                       (a.train_bin, "the token file (the fortunes package at build time)")):
        if not os.path.isfile(path):
            print("gpt_vs_torch.py: skipped: %s: missing, %s" % (path, what), file=sys.stderr)
            sys.exit(vs_torch.SKIP)
    import gen_gpt
    ids = np.fromfile(a.train_bin, dtype="<u2")
    ref = gen_gpt.from_onnx(a.model)
    context, vocab = ref.wpe.weight.shape[0], ref.wte.weight.shape[0]
    if len(ids) < (a.steps * a.batch + 1) * context + 1:
        sys.exit("gpt_vs_torch.py: %s holds %d tokens, too few for %d steps" % (a.train_bin, len(ids), a.steps))
    with tempfile.TemporaryDirectory(prefix="ty_gpt_vs_torch.") as work:
        ours, ckpt = run_trainrun(a, a.model, context, vocab, work)
        theirs, m = run_torch(torch, gen_gpt, a, a.model, ids)
        trained = {i.name: numpy_helper.to_array(i) for i in onnx.load(ckpt).graph.initializer}
    if len(ours) != len(theirs):
        sys.exit("gpt_vs_torch.py: trainrun logged %d losses, expected %d" % (len(ours), len(theirs)))
    dloss = max(abs(o - t) for o, t in zip(ours, theirs))
    diffs = weight_diffs(np, a, trained, m)
    worst = max(diffs, key=diffs.get)
    dw = diffs[worst]
    over = [k for k, d in diffs.items() if d > a.weight_tol]
    if over:
        _, m64 = run_torch(torch, gen_gpt, a, a.model, ids, "float64")
        over = [k for k in over if not within_float_noise(np, a, k, trained, m, m64)]
    for i in sorted({0, 1, 9, 24, len(ours) - 1}):
        print("step %d: trainrun %.4f torch %.6f" % (i + 1, ours[i], theirs[i]))
    print("max |loss diff| %.2e over %d steps (tolerance %.0e); max |weight diff| %.2e (%s; tolerance %.0e)"
          % (dloss, len(ours), a.loss_tol, dw, worst, a.weight_tol))
    sys.exit(0 if dloss <= a.loss_tol and not over else 1)


if __name__ == "__main__":
    main()
