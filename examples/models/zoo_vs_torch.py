#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a zoo of small models written the way PyTorch users write them
with trainrun and with PyTorch from the same weights on the same batches,
and compares losses and weights.

    zoo_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 8] [--batch 4]
                    [--threads 1] [--only NAME]

Each model is exported by torch.onnx.export (opset 17, training mode,
dynamic batch), so the graphs are what the exporter writes, not what a
test author would: nn.TransformerEncoderLayer, nn.MultiheadAttention,
attention through torch.einsum, a text CNN (Conv1d, AdaptiveMaxPool1d),
a grouped dilated Conv1d -> GELU with softmax-weighted pooling,
a depthwise-separable CNN (groups, BatchNorm, Hardswish, SiLU,
adaptive_avg_pool2d), a dilated CNN (ceil_mode AvgPool, ReLU6, amax), an
MLP of mixed activations after x.view(x.size(0), -1), and small U-Nets
upsampling with F.interpolate in every mode (nearest; bilinear and
bicubic, align_corners on and off; by scale_factor and by size) plus a
bilinear downsampling. Both sides then train N steps of plain SGD on the
same random batches (NumPy arrays in file order, shuffle off) with the
mean cross-entropy (per pixel for the U-Nets: labels [N, H, W]).

Exit status: 0 when every loss agrees within --loss-tol and every trained
tensor within --weight-tol, most tensors having moved, 1 otherwise, 77 (skipped) when
torch, onnx, numpy or protoc is missing.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "zoo_vs_torch.py"
VOCAB, SEQ, CLASSES = 30, 10, 5


def zoo(torch):
    """name: (model class, data kind, learning rate)."""
    nn, F = torch.nn, torch.nn.functional

    class Encoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            return s.fc(s.enc(s.emb(x)).mean(1))

    class Attention(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.att = nn.MultiheadAttention(16, 4, batch_first=True)
            s.ln = nn.LayerNorm(16)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            a, _ = s.att(h, h, h, need_weights=False)
            return s.fc(s.ln(h + a)[:, 0])

    class EinsumAttention(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.q, s.k, s.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            w = torch.einsum("bqd,bkd->bqk", s.q(h), s.k(h)) / 4.0
            return s.fc(torch.einsum("bqk,bkd->bqd", w.softmax(-1), s.v(h)).sum(1))

    class TextCNN(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 12)
            s.conv = nn.Conv1d(12, 16, 3, padding=1)
            s.pool = nn.AdaptiveMaxPool1d(1)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            return s.fc(s.pool(F.relu(s.conv(s.emb(x).transpose(1, 2)))).squeeze(-1))

    class AttentionPool(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.conv = nn.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4)
            s.ln = nn.LayerNorm(16)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = F.gelu(s.conv(s.emb(x).transpose(1, 2))).transpose(1, 2)
            w = torch.softmax(h.mean(-1, keepdim=True), dim=1)
            return s.fc(s.ln((h * w).sum(1)))

    class Separable(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 8, 3, padding=1)
            s.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            s.pw = nn.Conv2d(8, 16, 1)
            s.bn = nn.BatchNorm2d(16)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = F.silu(s.bn(s.pw(s.dw(F.hardswish(s.stem(x))))))
            return s.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    class Dilated(nn.Module):
        def __init__(s):
            super().__init__()
            s.c1 = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
            s.c2 = nn.Conv2d(8, 8, 3, stride=2)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = F.avg_pool2d(F.relu(s.c1(x)), 3, stride=2, ceil_mode=True, count_include_pad=False)
            return s.fc(F.relu6(s.c2(h)).amax((2, 3)))

    class Mixed(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.ln, s.b, s.c = nn.Linear(48, 32), nn.LayerNorm(32), nn.Linear(32, 32), nn.Linear(32, CLASSES)

        def forward(s, x):
            h = F.leaky_relu(s.ln(s.a(x.view(x.size(0), -1))), 0.1)
            h = F.elu(s.b(h)) + torch.tanh(h)
            return s.c(F.softplus(h) * torch.sigmoid(h))

    def unet(**up):
        class UNet(nn.Module):
            def __init__(s):
                super().__init__()
                s.enc = nn.Conv2d(3, 8, 3, padding=1)
                s.mid = nn.Conv2d(8, 8, 3, padding=1)
                s.dec = nn.Conv2d(16, CLASSES, 3, padding=1)

            def forward(s, x):
                e = F.relu(s.enc(x))
                m = F.relu(s.mid(F.max_pool2d(e, 2)))
                return s.dec(torch.cat([e, F.interpolate(m, **up)], 1))
        return UNet

    class Downsample(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 6, 3, padding=1)
            s.fc = nn.Linear(6 * 4 * 4, CLASSES)

        def forward(s, x):
            h = F.interpolate(F.relu(s.conv(x)), scale_factor=0.5, mode="bilinear", align_corners=False)
            return s.fc(h.flatten(1))

    return {
        "encoder": (Encoder, "tokens", 0.5),
        "attention": (Attention, "tokens", 0.5),
        "einsum": (EinsumAttention, "tokens", 0.05),
        "textcnn": (TextCNN, "tokens", 0.5),
        "attnpool": (AttentionPool, "tokens", 0.5),
        "separable": (Separable, "image", 0.5),
        "dilated": (Dilated, "image", 0.5),
        "mixed": (Mixed, "flat", 0.5),
        "unet_nearest": (unet(scale_factor=2, mode="nearest"), "pixels", 0.5),
        "unet_bilinear": (unet(scale_factor=2, mode="bilinear", align_corners=False), "pixels", 0.5),
        "unet_bicubic": (unet(scale_factor=2, mode="bicubic", align_corners=True), "pixels", 0.5),
        "unet_size": (unet(size=(8, 8), mode="bilinear", align_corners=True), "pixels", 0.5),
        "downsample": (Downsample, "image", 0.5),
    }


def batches(np, kind, n, rng):
    """Inputs and int64 labels of n samples."""
    if kind == "tokens":
        return rng.integers(0, VOCAB, size=(n, SEQ)), rng.integers(0, CLASSES, size=(n,))
    shape = (n, 3, 4, 4) if kind == "flat" else (n, 3, 8, 8)
    x = rng.standard_normal(shape).astype("float32")
    labels = (n, 8, 8) if kind == "pixels" else (n,)
    return x, rng.integers(0, CLASSES, size=labels)


def main():
    vs_torch.zoo_main(PROG, __doc__, zoo, batches)


if __name__ == "__main__":
    main()
