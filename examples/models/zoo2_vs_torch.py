#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a second zoo of models written the way PyTorch users write them
with trainrun and with PyTorch from the same weights on the same batches,
and compares losses and weights.

    zoo2_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 8] [--batch 4]
                     [--threads 1] [--only NAME]

The models cover what zoo_vs_torch.py does not: a MobileNetV2 inverted
residual block (depthwise Conv, ReLU6, BatchNorm; also with a batch of
one), squeeze-and-excitation (AdaptiveAvgPool2d(1), Sigmoid, broadcast
Mul), a tiny ViT (patch Conv, class token by Expand and Concat, learned
position embedding, nn.TransformerEncoder with norm_first=True, mean
pooling), GroupNorm, InstanceNorm2d, PixelShuffle, a ConvTranspose2d
decoder, cosine classifiers (F.normalize, F.cosine_similarity),
masked_fill with a boolean mask, torch.cumsum with F.layer_norm without
affine, a Conv1d + MaxPool1d text classifier with Dropout,
LeakyReLU/SiLU/Mish/Hardtanh after chunk, nn.Bilinear's weights through a
three-operand einsum, unbind with torch.where on a comparison, torch.roll,
flip and repeat_interleave, AdaptiveAvgPool2d to 2x2, and buffers and a
requires_grad=False stem (listed in the config's frozen). The mixed
models each combine several smaller constructs: PReLU and tanh GELU;
argmax and torch.gather; nn.MultiheadAttention with a key padding mask
and a causal mask; strided Conv1d, BatchNorm1d, ConvTranspose1d and 1-D
pooling; nine more activations, GLU, torch.maximum, clamp and norm;
one_hot, arange positions and integer % and floor division; per-head
einsum attention and bmm; channels-last LayerNorm, F.pad, grouped dilated
Conv2d and ConvTranspose2d, Softmax2d; LayerNorm over two dims, broadcast
matmul, tril, split, repeat, std, var and logsumexp. Export, training and
comparison are vs_torch.py's zoo loop: opset 17 (unless a model says
otherwise), training mode, dynamic batch, plain SGD on the same batches
(NumPy arrays in file order) with the mean cross-entropy.

Exit status: 0 when every loss agrees within --loss-tol and every trained
tensor within --weight-tol, most tensors having moved, 1 otherwise, 77
(skipped) when torch, onnx, numpy or protoc is missing.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "zoo2_vs_torch.py"
VOCAB, SEQ, CLASSES = 30, 10, 5


def vision(torch):
    """Convolutional models: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class InvertedResidual(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            s.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
            s.dw = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False), nn.BatchNorm2d(24),
                                 nn.ReLU6())
            s.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
            s.fc = nn.Linear(8 * 4, CLASSES)

        def forward(s, x):
            h = s.stem(x)
            h = h + s.project(s.dw(s.expand(h)))
            # Pooled to 2x2, not 1x1: with a batch of one, a BatchNorm's
            # output averages to its bias over the whole image, and the
            # layers before it would get no gradient.
            return s.fc(nn.functional.adaptive_avg_pool2d(h, 2).flatten(1))

    class SqueezeExcite(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 16, 3, padding=1)
            s.pool = nn.AdaptiveAvgPool2d(1)
            s.fc1, s.fc2 = nn.Linear(16, 4), nn.Linear(4, 16)
            s.head = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = F.relu(s.conv(x))
            w = torch.sigmoid(s.fc2(F.silu(s.fc1(s.pool(h).flatten(1)))))
            h = h * w.view(w.size(0), -1, 1, 1)
            return s.head(h.mean((2, 3)))

    class ViT(nn.Module):
        def __init__(s):
            super().__init__()
            vs_torch.patch_embed(torch, s, 4, pos_std=0.1, cls_std=0.1)
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
            s.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            s.norm = nn.LayerNorm(16)
            s.head = nn.Linear(16, CLASSES)

        def forward(s, x):
            return s.head(s.norm(s.enc(vs_torch.patch_tokens(torch, s, x))).mean(1))

    class GroupNormNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 8, 3, padding=1)
            s.gn = nn.GroupNorm(2, 8)
            s.fc = nn.Linear(8 * 4, CLASSES)

        def forward(s, x):
            h = F.silu(s.gn(s.conv(x)))
            return s.fc(F.adaptive_avg_pool2d(h, 2).flatten(1))

    class InstanceNormNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 8, 3, padding=1)
            s.inorm = nn.InstanceNorm2d(8, affine=True)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            return s.fc(F.leaky_relu(s.inorm(s.conv(x)), 0.2).mean((2, 3)))

    class PixelShuffleNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            s.up = nn.Conv2d(8, 4 * CLASSES, 3, padding=1)
            s.shuffle = nn.PixelShuffle(2)

        def forward(s, x):
            return s.shuffle(s.up(F.mish(s.down(x))))

    class Decoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.enc = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            s.dec = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
            s.out = nn.Conv2d(8, CLASSES, 1)

        def forward(s, x):
            return s.out(F.hardtanh(s.dec(F.relu(s.enc(x))), -0.5, 0.5))

    class Frozen(nn.Module):
        def __init__(s):
            super().__init__()
            s.register_buffer("mean", torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1))
            s.register_buffer("std", torch.tensor([1.1, 0.9, 1.2]).view(1, 3, 1, 1))
            s.stem = nn.Conv2d(3, 8, 3, padding=1)
            s.stem.requires_grad_(False)
            s.head = nn.Conv2d(8, 8, 3, padding=1)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = F.relu(s.head(F.relu(s.stem((x - s.mean) / s.std))))
            return s.fc(h.mean((2, 3)))

    return {
        "mbv2_block": (InvertedResidual, "image", 0.5),
        "mbv2_batch1": (InvertedResidual, "image", 0.5, {"batch": 1}),
        "squeeze_excite": (SqueezeExcite, "image", 0.5),
        "vit_tiny": (ViT, "image", 0.5),
        "groupnorm": (GroupNormNet, "image", 0.5),
        "instancenorm": (InstanceNormNet, "image", 0.5),
        "pixelshuffle": (PixelShuffleNet, "pixels", 0.5),
        "convtranspose": (Decoder, "pixels", 0.5),
        # The exported graph holds buffers and frozen parameters as float
        # initializers like any other: the config must say not to train them.
        "frozen": (Frozen, "image", 0.5, {"frozen": ["mean", "std", "stem.*"]}),
    }


def sequence(torch):
    """Token and vector models: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class Cosine(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.proto = nn.Parameter(torch.randn(CLASSES, 16))
            s.key = nn.Linear(16, 16)

        def forward(s, x):
            h = s.emb(x).mean(1)
            logits = F.normalize(h, dim=1) @ F.normalize(s.proto, dim=1).t()
            sim = F.cosine_similarity(s.key(h).unsqueeze(1), s.proto.unsqueeze(0), dim=-1)
            return 5.0 * logits + 2.0 * sim

    class Masked(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.score = nn.Linear(16, 1)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            w = s.score(h).squeeze(-1).masked_fill(x < 3, float("-inf"))
            w = torch.where(x == 0, torch.zeros_like(w), w.softmax(-1))
            return s.fc((h * w.unsqueeze(-1)).sum(1))

    class CumSum(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = torch.cumsum(s.emb(x), dim=1) / torch.arange(1, SEQ + 1, dtype=torch.float32).view(1, -1, 1)
            return s.fc(F.layer_norm(h, (8,)).max(1).values)

    class TextCNN(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 12)
            s.conv = nn.Conv1d(12, 16, 3, padding=1)
            s.pool = nn.MaxPool1d(2)
            s.drop = nn.Dropout(0.0)
            s.fc = nn.Linear(16 * (SEQ // 2), CLASSES)

        def forward(s, x):
            h = s.pool(F.relu(s.conv(s.emb(x).transpose(1, 2))))
            return s.fc(s.drop(h.flatten(1)))

    class Activations(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(16, 32), nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x):
            p, q = s.a(x).chunk(2, dim=1)
            h = F.leaky_relu(p, 0.05) + F.silu(q)
            h = F.mish(s.b(h)) + F.hardtanh(h, -1.0, 1.0)
            return s.c(h)

    class BilinearNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.a = nn.Linear(16, 8)
            s.bil = nn.Bilinear(8, 16, CLASSES)

        def forward(s, x):
            # PyTorch 1.13 cannot export aten::bilinear; what nn.Bilinear
            # computes, written as the einsum a user falls back to.
            h = torch.tanh(s.a(x))
            return torch.einsum("bi,oij,bj->bo", h, s.bil.weight, x) + s.bil.bias

    class Unbind(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            steps = s.emb(x).unbind(1)
            h = steps[0]
            for t in steps[1:]:
                h = torch.where(t > h, t, 0.5 * h)
            return s.fc(h)

    class RollFlip(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            r = torch.roll(h, 1, 1) + h.flip(1)
            # repeat_interleave exports as Split of an Expand whose rank
            # is only known once it is folded.
            return s.fc(torch.cat([r.mean(1), h.repeat_interleave(2, dim=2)[:, 0, :8]], 1))

    return {
        "cosine": (Cosine, "tokens", 0.5),
        "masked_fill": (Masked, "tokens", 0.5),
        # PyTorch 1.13 exports F.layer_norm without affine at opset 17 as a
        # LayerNormalization with an empty scale, which ONNX's checker
        # refuses: at opset 16 it is ReduceMean, Sub, Pow, Sqrt, Div.
        "cumsum": (CumSum, "tokens", 0.5, {"opset": 16}),
        "textcnn_pool": (TextCNN, "tokens", 0.5),
        "activations": (Activations, "vec", 0.5),
        "bilinear": (BilinearNet, "vec", 0.05),
        "unbind_where": (Unbind, "tokens", 0.5),
        "roll_flip": (RollFlip, "tokens", 0.5),
    }


def mixed(torch):
    """Models that each combine several smaller constructs: name:
    (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class PreluGelu(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.prelu = nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8)
            s.fc, s.out = nn.Linear(8, 16), nn.Linear(16, CLASSES)

        def forward(s, x):
            return s.out(F.gelu(s.fc(s.prelu(s.conv(x)).mean((2, 3))), approximate="tanh"))

    class GatherArgmax(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.score, s.fc = nn.Embedding(VOCAB, 8), nn.Linear(8, 1), nn.Linear(8, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            i = s.score(h).squeeze(-1).argmax(1, keepdim=True)
            return s.fc(torch.gather(h, 1, i.unsqueeze(-1).expand(-1, -1, 8)).squeeze(1) + h[:, -1])

    class MaskedAttention(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.att = nn.MultiheadAttention(16, 2, batch_first=True)
            s.fc = nn.Linear(16, CLASSES)
            s.register_buffer("causal", torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1))

        def forward(s, x):
            h = s.emb(x)
            # Token 0 pads, except in the first place (a query seeing no
            # key at all is NaN in PyTorch too).
            pad = (x == 0) & (torch.arange(SEQ) > 0)
            a, _ = s.att(h, h, h, key_padding_mask=pad, attn_mask=s.causal, need_weights=False)
            return s.fc(a[:, -1])

    class Conv1dMix(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.conv, s.bn = nn.Conv1d(8, 8, 4, stride=2, padding=1), nn.BatchNorm1d(8)
            s.up = nn.ConvTranspose1d(8, 8, 4, stride=2, padding=1)
            s.fc = nn.Linear(8 * 5 + 8, CLASSES)

        def forward(s, x):
            h = s.up(F.relu(s.bn(s.conv(s.emb(x).transpose(1, 2)))))
            p = F.adaptive_avg_pool1d(F.avg_pool1d(h, 3, 1, 1), 5).flatten(1)
            return s.fc(torch.cat([p, h.amax(2)], 1))

    class MoreActivations(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.bn, s.b, s.c = nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Linear(16, 32), nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.bn(s.a(x))
            h = (F.hardsigmoid(h) + F.softsign(h) + F.celu(h) + F.selu(h) + F.logsigmoid(h) + F.tanhshrink(h)
                 + F.softshrink(h))
            h = F.glu(s.b(h), -1)
            return s.c(torch.maximum(h, -h.abs()) + h.clamp(min=-0.3) + 0.1 * h.norm(dim=-1, keepdim=True))

    class TokenArithmetic(nn.Module):
        def __init__(s):
            super().__init__()
            s.pos, s.mod, s.halves = nn.Embedding(SEQ, VOCAB), nn.Embedding(7, 8), nn.Embedding(VOCAB // 2, 8)
            s.fc = nn.Linear(VOCAB + 8, CLASSES)

        def forward(s, x):
            onehot = F.one_hot(x, VOCAB).float() + s.pos(torch.arange(x.size(1)))
            ids = s.mod(x % 7) + s.halves(torch.div(x, 2, rounding_mode="floor"))
            return s.fc(torch.cat([onehot, ids], 2).mean(1))

    class EinsumHeads(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.qkv = nn.Embedding(VOCAB, 16), nn.Linear(16, 48)
            s.w = nn.Parameter(torch.randn(2, 16, 8) * 0.2)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            n = x.shape[0]
            q, k, v = s.qkv(s.emb(x)).view(n, SEQ, 3, 2, 8).unbind(2)
            w = torch.einsum("bqhd,bkhd->bhqk", q, k).softmax(-1)
            o = torch.einsum("bhqk,bkhd->bqhd", w, v).reshape(n, SEQ, 16)
            t = torch.bmm(torch.stack([o[:, 0], o[:, -1]], 0), s.w).sum(0)
            return s.fc(torch.cat([t, t], 1))

    class ChannelsLast(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.ln, s.lin = nn.Conv2d(3, 8, 3, padding=1), nn.LayerNorm(8), nn.Linear(8, 8)
            s.down = nn.Conv2d(8, 8, 3, stride=2, dilation=2, groups=2, padding=2)
            s.up = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2, output_padding=1)
            s.fc = nn.Linear(8 * 9 + 8, CLASSES)

        def forward(s, x):
            h = s.conv(x).permute(0, 2, 3, 1)
            h = s.lin(F.gelu(s.ln(h))).permute(0, 3, 1, 2)
            h = s.down(F.pad(h, (0, 1, 0, 1)))
            u = s.up(nn.Softmax2d()(h))
            pooled = F.max_pool2d(h, 2, ceil_mode=True).flatten(1)
            return s.fc(torch.cat([pooled, u.amax((2, 3)) - u.amin((2, 3))], 1))

    class NormSplit(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.ln = nn.Embedding(VOCAB, 8), nn.LayerNorm((SEQ, 8))
            s.w = nn.Parameter(torch.randn(8, 8) * 0.3)
            s.fc = nn.Linear(40, CLASSES)

        def forward(s, x):
            h = s.ln(s.emb(x))
            h = torch.matmul(h.unsqueeze(1).expand(-1, 2, -1, -1), s.w).sum(1)
            causal = torch.tril(torch.ones(SEQ, SEQ)) / torch.arange(1, SEQ + 1).unsqueeze(1)
            a, b = torch.split(causal @ h, [3, 7], dim=1)
            c = a.repeat(1, 2, 1).mean(1) * b.max(1).values
            stats = [b.std(1), b.var(1, unbiased=False), torch.logsumexp(b, 1), F.softmax(b, 1).sum(1)]
            return s.fc(torch.cat([c] + stats, 1))

    return {
        "prelu_gelu": (PreluGelu, "image", 0.5),
        "gather_argmax": (GatherArgmax, "tokens", 0.5),
        "masked_mha": (MaskedAttention, "tokens", 0.5),
        "conv1d_mix": (Conv1dMix, "tokens", 0.5),
        "more_activations": (MoreActivations, "vec", 0.05),
        "token_arith": (TokenArithmetic, "tokens", 0.5),
        "einsum_heads": (EinsumHeads, "tokens", 0.5),
        "channels_last": (ChannelsLast, "image", 0.5),
        "norm_split": (NormSplit, "tokens", 0.1),
    }


def zoo(torch):
    """Every model of this comparison by name."""
    return {**vision(torch), **sequence(torch), **mixed(torch)}


def batches(np, kind, n, rng):
    """Inputs and int64 labels of n samples."""
    if kind == "tokens":
        return rng.integers(0, VOCAB, size=(n, SEQ)), rng.integers(0, CLASSES, size=(n,))
    shape = (n, 16) if kind == "vec" else (n, 3, 8, 8)
    x = rng.standard_normal(shape).astype("float32")
    labels = (n, 8, 8) if kind == "pixels" else (n,)
    return x, rng.integers(0, CLASSES, size=labels)


def main():
    vs_torch.zoo_main(PROG, __doc__, zoo, batches)


if __name__ == "__main__":
    main()
