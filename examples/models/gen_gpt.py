#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Exports a small GPT-style language model from PyTorch to ONNX.

    gen_gpt.py OUT.onnx [--seed N] [--vocab 256] [--context 64] [--layers 2]
               [--heads 4] [--width 128]

The model is nanoGPT's shape at toy size: token embedding wte [vocab, width]
plus a learned position embedding wpe [context, width]; per block a
pre-LayerNorm causal self-attention (one Linear for q, k and v, heads split
by reshape, scores scaled by 1/sqrt(head size), the future masked with
Where(-inf) from a lower-triangular buffer, softmax, a projection) and a
pre-LayerNorm GELU MLP (width -> 4 width -> width), each added to the
residual stream; a final LayerNorm; and an output layer tied to the token
embedding: logits = x @ wte^T. No dropout, no biases in the output layer.

Input "idx" int64 [N, context] (token ids), output "logits" float
[N, context, vocab]. Weights: normal(0, 0.02) as GPT-2 initialises them,
biases zero, LayerNorm weight 1, from torch.manual_seed(seed), so the file is
reproducible. Exported at opset 17 (LayerNormalization) in training mode
(in inference mode the exporter merges initializers of equal value, so every
LayerNorm would share one weight) and without constant folding (which would
fold the output layer's transposed copy of the tied weight into a second
initializer), so the tied weight stays one initializer, "wte.weight", read by the
embedding's Gather and, through a Transpose, by the output MatMul: the
trainer must sum both gradients into it. The script checks that it does
(one initializer, both uses) before writing the file.

Needs Debian's python3-torch and python3-onnx; exits 77 with a message when
torch is missing (the build skips the model).
"""
import argparse
import math
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("gen_gpt.py: PyTorch is not installed (apt-get install python3-torch); "
          "not generating the GPT example", file=sys.stderr)
    sys.exit(77)


class SelfAttention(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.register_buffer("mask", torch.tril(torch.ones(context, context)).view(1, 1, context, context))

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(c, dim=2)
        hs = c // self.heads
        q = q.view(b, t, self.heads, hs).transpose(1, 2)
        k = k.view(b, t, self.heads, hs).transpose(1, 2)
        v = v.view(b, t, self.heads, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, context)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.mlp_fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList([Block(width, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one tensor, two uses
        self.register_buffer("pos", torch.arange(context).view(1, context))
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(self.pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


HYPER = ("vocab", "context", "layers", "heads", "width")


def build(args):
    torch.manual_seed(args.seed)
    return Gpt(args.vocab, args.context, args.layers, args.heads, args.width)


def from_onnx(path):
    """The torch model of a file this script wrote, holding the file's weights
    (a trained checkpoint's too): the shape comes from the metadata written
    below, the numbers from the initializers."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    meta = {p.key: p.value for p in m.metadata_props}
    try:
        dims = [int(meta["gpt." + k]) for k in HYPER]
    except KeyError as e:
        sys.exit("gen_gpt.py: %s lacks metadata %s (not written by gen_gpt.py)" % (path, e))
    torch.manual_seed(0)
    model = Gpt(*dims)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    state = model.state_dict()
    for k in state:
        src = "wte.weight" if k == "lm_head.weight" else k  # the tied weight
        if src not in inits or tuple(inits[src].shape) != tuple(state[k].shape):
            sys.exit("gen_gpt.py: %s: initializer %s missing or of another shape" % (path, src))
        state[k] = torch.from_numpy(inits[src].copy())
    model.load_state_dict(state)
    return model


def check_tied(model_proto):
    """The tied weight must be one initializer feeding a Gather and the output MatMul."""
    inits = [i.name for i in model_proto.graph.initializer]
    if "wte.weight" not in inits or "lm_head.weight" in inits:
        sys.exit("gen_gpt.py: the export did not keep one tied initializer wte.weight: %s" % inits)
    users = [n.op_type for n in model_proto.graph.node if "wte.weight" in n.input]
    if sorted(users) not in (["Gather", "Transpose"], ["Gather", "MatMul"]):
        sys.exit("gen_gpt.py: wte.weight feeds %s, expected a Gather and the output MatMul" % users)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="ONNX file to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    args = ap.parse_args()
    if args.width % args.heads:
        sys.exit("gen_gpt.py: --width must be a multiple of --heads")
    model = build(args)
    tmp = args.out + ".tmp"
    torch.onnx.export(model, torch.zeros(2, args.context, dtype=torch.int64), tmp,
                      input_names=["idx"], output_names=["logits"],
                      dynamic_axes={"idx": {0: "N"}, "logits": {0: "N"}},
                      opset_version=17, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.TRAINING)
    import onnx
    m = onnx.load(tmp)
    check_tied(m)
    for k in HYPER:  # what from_onnx needs to rebuild the torch model
        p = m.metadata_props.add()
        p.key, p.value = "gpt." + k, str(getattr(args, k))
    onnx.save(m, tmp)
    onnx.checker.check_model(m, full_check=True)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
