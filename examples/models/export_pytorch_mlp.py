#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Exports gen_models.py's MLP from PyTorch, for side-by-side comparisons.

    export_pytorch_mlp.py OUT.onnx [--seed N] [--from mlp.onnx]

Builds the same 784-256-128-10 network as gen_models.py (nn.Linear layers
named fc1..fc3 with ReLU between, input "x" [N,784], output "logits" [N,10])
and writes it with torch.onnx.export at opset 13, batch dimension dynamic.

Weights: with --from, they are copied from an existing mlp.onnx (so both files
hold identical numbers and differ only in how the exporter spelled the graph);
otherwise PyTorch's own default initialisation runs under torch.manual_seed.

Needs PyTorch (pip install torch, or Debian's python3-torch), which Trainyard
itself never does: the script exits with a message if torch is missing.
"""
import argparse
import sys


def need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("export_pytorch_mlp.py: PyTorch is not installed (python3 -c 'import torch' "
                 "fails); install python3-torch or `pip install torch` to export the "
                 "PyTorch MLP. gen_models.py builds the same model without it.")
    return torch


def build(torch, seed):
    nn = torch.nn

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 256)
            self.fc2 = nn.Linear(256, 128)
            self.fc3 = nn.Linear(128, 10)

        def forward(self, x):
            x = torch.relu(self.fc1(x))
            x = torch.relu(self.fc2(x))
            return self.fc3(x)

    torch.manual_seed(seed)
    return Mlp()


def load_weights(torch, model, path):
    """Copies fc*.weight / fc*.bias initialisers of an ONNX file into model."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in inits]
    if missing:
        sys.exit("export_pytorch_mlp.py: %s lacks %s" % (path, ", ".join(missing)))
    for k in state:
        if tuple(inits[k].shape) != tuple(state[k].shape):
            sys.exit("export_pytorch_mlp.py: %s: %s has shape %s, expected %s"
                     % (path, k, inits[k].shape, tuple(state[k].shape)))
        state[k] = torch.from_numpy(inits[k].copy())
    model.load_state_dict(state)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="ONNX file to write")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed (default 0)")
    ap.add_argument("--from", dest="src", help="copy weights from this mlp.onnx")
    args = ap.parse_args()
    torch = need_torch()
    model = build(torch, args.seed)
    if args.src:
        load_weights(torch, model, args.src)
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 784), args.out,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
                      opset_version=13, do_constant_folding=False)
    try:
        import onnx
        onnx.checker.check_model(onnx.load(args.out), full_check=True)
    except ImportError:
        print("export_pytorch_mlp.py: onnx not importable; skipped the checker", file=sys.stderr)


if __name__ == "__main__":
    main()
