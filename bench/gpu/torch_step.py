#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""PyTorch CUDA's training step time for the example models, the reference
of bench/gpu/step.c's rows (bench/gpu/run.sh prints both):

    torch_step.py MODELS_DIR [STEPS]

The same step as gpu_step measures: forward, mean cross-entropy and
backward (no optimizer), float32 with TF32 off (what the GPU executor
computes), at the configs' batch sizes (MLP and CNN 64, GPT 32), random
inputs, three warm-up steps then the mean over STEPS (default 20). The MLP
and CNN are gen_models.py's architectures; the GPT is gen_gpt.py's, loaded
from gpt.onnx. Prints markdown rows; a row saying why when torch or CUDA is
missing (exit 0 either way: the reference is optional).
"""
import os
import sys
import time


def row(name, value, note="-"):
    print("| %s | %s | - | %s |" % (name, value, note))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    models, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 20
    try:
        import torch
        from torch import nn
    except ImportError:
        row("PyTorch CUDA training steps", "not measured", "torch is not importable")
        return
    if not torch.cuda.is_available():
        row("PyTorch CUDA training steps", "not measured", "torch sees no CUDA device")
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    cases = [("mlp", mlp, torch.rand(64, 784) * 2 - 1, torch.randint(0, 10, (64,))),
             ("cnn", cnn, torch.rand(64, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (64,)))]
    gpt_path = os.path.join(models, "gpt.onnx")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "examples", "models"))
    try:
        import gen_gpt
        gpt = gen_gpt.from_onnx(gpt_path) if os.path.exists(gpt_path) else None
    except (ImportError, SystemExit):
        gpt = None
    if gpt is not None:
        ids = torch.randint(0, 10, (32, 64))
        cases.append(("gpt", gpt, ids, torch.randint(0, 10, (32, 64))))
    for name, model, x, y in cases:
        model = model.to(dev)
        x, y = x.to(dev), y.to(dev)

        def step():
            model.zero_grad(set_to_none=True)
            out = model(x)
            loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            loss.backward()

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1000.0 / steps
        row("%s training step (batch %d), PyTorch %s CUDA, ms" % (name, x.shape[0],
                                                                   torch.__version__),
            "%.2f" % ms)


if __name__ == "__main__":
    main()
