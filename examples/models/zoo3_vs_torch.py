#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a third zoo of models written the way PyTorch users write them
with trainrun and with PyTorch from the same weights on the same batches,
and compares losses and weights.

    zoo3_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 8] [--batch 4]
                     [--threads 1] [--only NAME]

The models are what a new user brings that zoo_vs_torch.py and
zoo2_vs_torch.py do not cover: a ViT with a post-norm
nn.TransformerEncoderLayer (GELU) read out at its class token, and a
pre-norm one written by hand around nn.MultiheadAttention; a BERT-style
encoder (word, position and segment embeddings, padding_idx, a key
padding mask computed from the int token input, masked mean pooling, a
tanh pooler); nanoGPT's causal self-attention (a tril buffer, masked_fill
with -inf, the 1/sqrt(d) scale: what F.scaled_dot_product_attention with
is_causal computes, which PyTorch 1.13 cannot export); a MobileNetV2
(strided stem, an inverted residual with and without its skip,
AdaptiveAvgPool2d((1, 1)), flatten(start_dim=1)); a ResNet basic block
with a strided 1x1 shortcut after a MaxPool stem; a two-level U-Net
(ConvTranspose2d and nn.Upsample, bilinear and nearest, skip Concat);
a small video net of Conv3d (grouped, strided, dilated), BatchNorm3d and
MaxPool3d; AlexNet-style nn.LocalResponseNorm after convolutions; a
spatial-transformer-style warp by F.grid_sample (bilinear, nearest and
bicubic; zeros, border and reflection padding);
GroupNorm, InstanceNorm2d and LayerNorm over the last two axes;
PixelUnshuffle and PixelShuffle with AdaptiveAvgPool2d to (2, 2) and
AdaptiveMaxPool2d; a ConvNeXt block (7x7 depthwise Conv, channels-last
LayerNorm, layer scale); reflect and replicate padding; k-max pooling by
torch.topk and torch.sort; nn.GLU, nn.SiLU and nn.Mish after torch.chunk,
torch.split, torch.stack and masked_fill; a two-layer bidirectional LSTM;
models of two inputs (image and vector; tokens and float features; a
Transformer decoder over an encoder's memory with a causal target mask)
and of two outputs (the loss reads the logits); and models returning
their own loss, trained through the config's loss_output: regressions on
float labels (MSE and smooth L1 written out: PyTorch 1.13 cannot export
F.mse_loss), multi-label BCE with logits, soft targets (F.cross_entropy
with probabilities, F.kl_div), class-weighted cross-entropy with NLL,
F.nll_loss over an ensemble's log-probabilities (exported as
NegativeLogLikelihoodLoss: a plain mean, nn.NLLLoss with class weights
and ignore_index, reduction sum and none), class weights computed in
forward from buffers, an
autoencoder without labels and a VAE whose noise is a second input. The models whose LayerNormalization
or attention export differs with the opset are exported at opset 13 too.
Export, training and comparison are vs_torch.py's zoo loop.

Exit status: 0 when every loss agrees within --loss-tol and every trained
tensor within --weight-tol, most tensors having moved, 1 otherwise, 77
(skipped) when torch, onnx, numpy or protoc is missing.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "zoo3_vs_torch.py"
VOCAB, SEQ, CLASSES, FEATURES, TARGETS = 30, 8, 5, 6, 3


def vision(torch):
    """Convolutional and vision-transformer models: name: (class, data
    kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    def vit(norm_first):
        class ViT(nn.Module):
            def __init__(s):
                super().__init__()
                vs_torch.patch_embed(torch, s, 4, pos_std=0.1, cls_std=0.1)
                s.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", batch_first=True,
                                                   norm_first=norm_first)
                s.head = nn.Linear(16, CLASSES)

            def forward(s, x):
                return s.head(s.enc(vs_torch.patch_tokens(torch, s, x))[:, 0])
        return ViT

    class ViTBlock(nn.Module):
        def __init__(s):
            super().__init__()
            vs_torch.patch_embed(torch, s, 2, pos_std=0.02)
            s.ln1, s.ln2, s.ln = nn.LayerNorm(16), nn.LayerNorm(16), nn.LayerNorm(16)
            s.att = nn.MultiheadAttention(16, 4, batch_first=True)
            s.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            s.head = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = vs_torch.patch_tokens(torch, s, x)
            n = s.ln1(h)
            h = h + s.att(n, n, n, need_weights=False)[0]
            h = h + s.mlp(s.ln2(h))
            return s.head(s.ln(h)[:, 0])

    def inverted(cin, cout, stride, expand):
        class Inverted(nn.Module):
            def __init__(s):
                super().__init__()
                mid = cin * expand
                s.skip = stride == 1 and cin == cout
                s.body = nn.Sequential(
                    nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
                    nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                    nn.ReLU6(inplace=True), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

            def forward(s, x):
                return x + s.body(x) if s.skip else s.body(x)
        return Inverted()

    class MobileNetV2(nn.Module):
        def __init__(s):
            super().__init__()
            s.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),
                inverted(8, 8, 1, 4), inverted(8, 12, 2, 4), nn.Conv2d(12, 24, 1), nn.ReLU6())
            s.pool = nn.AdaptiveAvgPool2d((1, 1))
            s.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(24, CLASSES))

        def forward(s, x):
            return s.classifier(torch.flatten(s.pool(s.features(x)), 1))

    class ResNetBlock(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, 2, 1))
            s.c1, s.b1 = nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16)
            s.c2, s.b2 = nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
            s.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.stem(x)
            out = F.relu(s.b2(s.c2(F.relu(s.b1(s.c1(h))))) + s.down(h))
            return s.fc(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))

    def unet(mode):
        class UNet(nn.Module):
            def __init__(s):
                super().__init__()

                def block(cin, cout):
                    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
                s.e1, s.e2, s.mid = block(3, 8), block(8, 16), block(16, 16)
                s.up2 = nn.ConvTranspose2d(16, 16, 2, stride=2)
                s.d2 = block(32, 8)
                s.up1 = nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode != "nearest"
                                                                   else {}))
                s.d1 = block(16, 8)
                s.out = nn.Conv2d(8, CLASSES, 1)

            def forward(s, x):
                e1 = s.e1(x)
                e2 = s.e2(F.max_pool2d(e1, 2))
                m = s.mid(F.max_pool2d(e2, 2))
                d2 = s.d2(torch.cat([s.up2(m), e2], dim=1))
                return s.out(s.d1(torch.cat([s.up1(d2), e1], dim=1)))
        return UNet

    class Norms(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 8, 3, padding=1)
            s.gn = nn.GroupNorm(4, 8)
            s.inorm = nn.InstanceNorm2d(8, affine=True)
            s.ln = nn.LayerNorm([8, 8])
            s.fc = nn.Linear(8 * 2, CLASSES)

        def forward(s, x):
            h = F.silu(s.gn(s.conv(x)))
            h = s.ln(F.relu(s.inorm(h)) + h)
            return s.fc(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))

    class Shuffle(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 4, 3, padding=1)
            s.avg, s.max, s.one = nn.AdaptiveAvgPool2d((2, 2)), nn.AdaptiveMaxPool2d((2, 2)), nn.AdaptiveAvgPool2d(1)
            s.unshuffle = nn.PixelUnshuffle(2)
            s.conv = nn.Conv2d(16, 16, 3, padding=1)
            s.shuffle = nn.PixelShuffle(2)
            s.fc = nn.Linear(4 * 4 * 2 + 4 + 4, CLASSES)

        def forward(s, x):
            # PyTorch 1.13 cannot export an adaptive pooling after a
            # PixelUnshuffle (the tracer loses the spatial size): the pools
            # read the stem.
            h = F.relu(s.stem(x))
            up = s.shuffle(F.relu(s.conv(s.unshuffle(h)))).mean((2, 3))
            return s.fc(torch.cat([s.avg(h).flatten(1), s.max(h).flatten(1), s.one(h).flatten(1), up], 1))

    class ConvNeXt(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 16, 2, stride=2)
            s.dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
            s.ln = nn.LayerNorm(16, eps=1e-6)
            s.pw1, s.pw2 = nn.Linear(16, 64), nn.Linear(64, 16)
            s.gamma = nn.Parameter(torch.full((16,), 0.5))
            s.head = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.stem(x)
            y = s.ln(s.dw(h).permute(0, 2, 3, 1))
            y = (s.gamma * s.pw2(F.gelu(s.pw1(y)))).permute(0, 3, 1, 2)
            return s.head((h + y).mean([-2, -1]))

    class PaddingModes(nn.Module):
        def __init__(s):
            super().__init__()
            s.reflect = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
            s.replicate = nn.Conv2d(8, 8, 3, padding=2, dilation=2, padding_mode="replicate")
            s.same = nn.Conv1d(8, 8, 3, padding=1, padding_mode="zeros")
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = F.elu(s.replicate(F.relu(s.reflect(x))))
            return s.fc(s.same(h.flatten(2)).amax(2))

    class Video3d(nn.Module):
        """A small video / volumetric net: Conv3d with a bias, a strided
        and padded grouped Conv3d without one, BatchNorm3d, MaxPool3d and
        a dilated Conv3d, then a global average and a classifier."""
        def __init__(s):
            super().__init__()
            s.c1 = nn.Conv3d(3, 8, 3, padding=1)
            s.c2 = nn.Conv3d(8, 8, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), groups=2, bias=False)
            s.bn = nn.BatchNorm3d(8)
            s.c3 = nn.Conv3d(8, 12, (1, 3, 3), dilation=(1, 2, 1), padding=(0, 2, 1))
            s.fc = nn.Linear(12, CLASSES)

        def forward(s, x):
            h = F.max_pool3d(F.relu(s.c1(x)), (1, 2, 2))
            h = F.relu(s.c3(F.relu(s.bn(s.c2(h)))))
            return s.fc(h.mean(dim=(2, 3, 4)))

    class AlexLRN(nn.Module):
        """AlexNet's and GoogLeNet's local response normalisation after
        the first convolutions (what PyTorch 1.13 exports with an If)."""
        def __init__(s):
            super().__init__()
            s.c1, s.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1)
            s.n1, s.n2 = nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0), nn.LocalResponseNorm(2)
            s.fc = nn.Linear(12, CLASSES)

        def forward(s, x):
            h = F.max_pool2d(s.n1(F.relu(s.c1(x))), 2)
            h = s.n2(F.relu(s.c2(h)))
            return s.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    class GridWarp(nn.Module):
        """A spatial-transformer-style warp: a grid predicted from the
        image (tanh, reaching a little past the borders) samples a feature
        map with F.grid_sample twice, by default bilinear with zeros padding
        and nearest with border padding and align_corners."""
        SAMPLES = (("bilinear", "zeros", False), ("nearest", "border", True))

        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 6, 3, padding=1)
            s.loc = nn.Linear(3 * 8 * 8, 5 * 5 * 2)
            s.fc = nn.Linear(2 * 6 * 5 * 5, CLASSES)

        def forward(s, x):
            grid = torch.tanh(s.loc(x.flatten(1))).view(-1, 5, 5, 2) * 1.1
            h = F.relu(s.conv(x))
            a, b = (F.grid_sample(h, grid, mode=m, padding_mode=p, align_corners=al)
                    for m, p, al in s.SAMPLES)
            return s.fc(torch.cat([a, b], 1).flatten(1))

    class GridWarpCubic(GridWarp):
        """The warp bicubic with reflection padding, and bilinear with
        reflection padding and align_corners."""
        SAMPLES = (("bicubic", "reflection", False), ("bilinear", "reflection", True))

    return {
        "video_conv3d": (Video3d, "video", 0.2),
        "grid_warp": (GridWarp, "image", 0.2),
        "grid_warp_cubic": (GridWarpCubic, "image", 0.2),
        "alexnet_lrn": (AlexLRN, "image", 0.2),
        "vit_postnorm": (vit(False), "image", 0.1),
        "vit_postnorm13": (vit(False), "image", 0.1, {"opset": 13}),
        "vit_prenorm13": (vit(True), "image", 0.5, {"opset": 13}),
        "vit_mha": (ViTBlock, "image", 0.5),
        "mobilenetv2": (MobileNetV2, "image", 0.5),
        "resnet_block": (ResNetBlock, "image", 0.5),
        "unet_bilinear": (unet("bilinear"), "pixels", 0.5),
        "unet_nearest13": (unet("nearest"), "pixels", 0.5, {"opset": 13}),
        "norms": (Norms, "image", 0.05),
        "norms13": (Norms, "image", 0.05, {"opset": 13}),
        "shuffle_pools": (Shuffle, "image", 0.2),
        "convnext_block": (ConvNeXt, "image", 0.2),
        "padding_modes": (PaddingModes, "image", 0.2),
    }


def sequence(torch):
    """Token and vector models: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class Bert(nn.Module):
        def __init__(s):
            super().__init__()
            s.word = nn.Embedding(VOCAB, 16, padding_idx=0)
            s.position, s.segment = nn.Embedding(SEQ, 16), nn.Embedding(2, 16)
            s.ln = nn.LayerNorm(16, eps=1e-12)
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", batch_first=True)
            s.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            s.pooler, s.fc = nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x):
            pos = torch.arange(x.size(1), device=x.device).unsqueeze(0)
            seg = (pos >= x.size(1) // 2).long()
            h = s.ln(s.word(x) + s.position(pos) + s.segment(seg))
            pad = x == 0
            h = s.enc(h, src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).float()
            pooled = (h * keep).sum(1) / keep.sum(1)
            return s.fc(torch.tanh(s.pooler(pooled)))

    class CausalSelfAttention(nn.Module):
        def __init__(s):
            super().__init__()
            s.tok, s.pos = nn.Embedding(VOCAB, 16), nn.Parameter(torch.randn(1, SEQ, 16) * 0.02)
            s.c_attn, s.c_proj = nn.Linear(16, 48), nn.Linear(16, 16)
            s.ln = nn.LayerNorm(16)
            s.register_buffer("bias", torch.tril(torch.ones(SEQ, SEQ)).view(1, 1, SEQ, SEQ))
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            B, T = x.size()
            h = s.tok(x) + s.pos[:, :T]
            q, k, v = s.c_attn(s.ln(h)).split(16, dim=2)
            q, k, v = (t.view(B, T, 2, 8).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = F.softmax(att.masked_fill(s.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, 16)
            return s.fc((h + s.c_proj(y))[:, -1])

    class PaddedBag(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 12, padding_idx=0)
            s.fc = nn.Linear(12, CLASSES)

        def forward(s, x):
            mask = (x != 0).unsqueeze(-1)
            return s.fc((s.emb(x) * mask).sum(1) / mask.sum(1).clamp(min=1))

    class TensorOps(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(16, 24), nn.Linear(24, 16)
            s.glu, s.silu, s.mish = nn.GLU(dim=-1), nn.SiLU(), nn.Mish()
            s.fc = nn.Linear(8 * 3 + 6 + 10 + 2, CLASSES)

        def forward(s, x):
            p, q, r = torch.chunk(s.a(x), 3, dim=1)
            st = torch.flatten(torch.stack([s.silu(p), s.mish(q), torch.tanh(r)], dim=1), start_dim=1)
            u, w = torch.split(s.b(st), [6, 10], dim=1)
            g = s.glu(torch.cat([u, w[:, :6]], 1))
            c = torch.cumsum(w, dim=1).masked_fill(x[:, :10] > 1.0, 0.0)
            return s.fc(torch.cat([st, g, c, torch.stack([g.sum(1), c.mean(1)], 1)], 1))

    class BiLSTM(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.lstm = nn.LSTM(8, 12, num_layers=2, bidirectional=True, batch_first=True)
            s.fc = nn.Linear(24 + 24, CLASSES)

        def forward(s, x):
            out, (h, _) = s.lstm(s.emb(x))
            return s.fc(torch.cat([out[:, -1], h[-2:].transpose(0, 1).flatten(1)], 1))

    class KMaxPool(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.conv = nn.Conv1d(8, 8, 3, padding=1)
            s.fc = nn.Linear(8 * 3 + 4, CLASSES)

        def forward(s, x):
            h = torch.tanh(s.conv(s.emb(x).transpose(1, 2)))
            top = h.topk(3, dim=2).values.flatten(1)
            low = torch.sort(h.mean(1), dim=1, descending=False).values[:, :4]
            return s.fc(torch.cat([top, low], 1))

    return {
        "kmax_pool": (KMaxPool, "tokens", 0.5),
        "bert": (Bert, "padded", 0.5),
        "bert13": (Bert, "padded", 0.5, {"opset": 13}),
        "causal_attn": (CausalSelfAttention, "tokens", 0.5),
        "causal_attn13": (CausalSelfAttention, "tokens", 0.5, {"opset": 13}),
        "padded_bag": (PaddedBag, "padded", 0.5),
        "tensor_ops": (TensorOps, "vec", 0.3),
        "lstm2_bi": (BiLSTM, "tokens", 0.5),
    }


def io(torch):
    """Models of several inputs or outputs, and regressions computing their
    own loss: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class ImageAndVector(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.meta = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(FEATURES, 8)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, image, meta):
            a = F.adaptive_avg_pool2d(F.relu(s.conv(image)), 1).flatten(1)
            return s.fc(torch.cat([a, F.relu(s.meta(meta))], 1))

    class TokensAndFeatures(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.feat = nn.Embedding(VOCAB, 8), nn.Linear(FEATURES, 8)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x, f):
            return s.fc(s.emb(x).mean(1) * torch.sigmoid(s.feat(f)))

    class Seq2Seq(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            s.dec = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, src, tgt):
            causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
            h = s.dec(s.emb(tgt), s.enc(s.emb(src)), tgt_mask=causal)
            return s.fc(h[:, -1])

    class TwoHeads(nn.Module):
        def __init__(s):
            super().__init__()
            s.body, s.cls, s.proj = nn.Linear(16, 16), nn.Linear(16, CLASSES), nn.Linear(16, 4)

        def forward(s, x):
            h = F.relu(s.body(x))
            return s.cls(h), F.normalize(s.proj(h), dim=1)

    class Regressor(nn.Module):
        def __init__(s):
            super().__init__()
            s.net = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, TARGETS))

        def forward(s, x, y):
            # PyTorch 1.13 cannot export F.mse_loss: written out.
            return ((s.net(x) - y) ** 2).mean()

    class RobustRegressor(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, TARGETS)

        def forward(s, x, y):
            # F.smooth_l1_loss and F.l1_loss do not export: written out.
            d = (s.fc(F.gelu(s.conv(x)).mean((2, 3))) - y).abs()
            return torch.where(d < 1.0, 0.5 * d * d, d - 0.5).mean() + 0.5 * d.mean()

    class MultiLabel(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x, y):
            return F.binary_cross_entropy_with_logits(s.b(F.gelu(s.a(x))), y)

    class SoftTargets(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.fc = nn.Embedding(VOCAB, 8), nn.Linear(8, CLASSES)

        def forward(s, x, y):
            logits = s.fc(s.emb(x).mean(1))
            kl = F.kl_div(F.log_softmax(logits, 1), y, reduction="batchmean")
            return F.cross_entropy(logits, y) + kl

    class WeightedLoss(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, CLASSES)
            s.register_buffer("weight", torch.linspace(0.5, 1.5, CLASSES))

        def forward(s, x, y):
            # label_smoothing does not export; class weights and NLL do.
            logits = s.fc(F.relu(s.conv(x)).amax((2, 3)))
            return F.cross_entropy(logits, y, weight=s.weight) + 0.5 * F.nll_loss(F.log_softmax(logits, 1), y)

    class PaddedLM(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.mix, s.head = nn.Embedding(VOCAB, 16), nn.Linear(16, 16), nn.Linear(16, VOCAB)

        def forward(s, x):
            # A language model's next-token loss over padded sequences
            # (token 0 pads): the padding targets are ignored, so the mean
            # is over the batch's real tokens (the labels come from x).
            h = torch.tanh(s.mix(s.emb(x[:, :-1])))
            return F.cross_entropy(s.head(h).reshape(-1, VOCAB), x[:, 1:].reshape(-1), ignore_index=0)

    class AutoEncoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.enc = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(8 * 4 * 4, 12))
            s.dec = nn.Sequential(nn.Linear(12, 8 * 4 * 4), nn.ReLU())
            s.up = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

        def forward(s, x):
            # The loss reads the input alone: no labels.
            recon = s.up(s.dec(s.enc(x)).view(-1, 8, 4, 4))
            return ((recon - x) ** 2).mean()

    class VAE(nn.Module):
        def __init__(s):
            super().__init__()
            s.enc, s.mu, s.logvar = nn.Linear(16, 24), nn.Linear(24, 4), nn.Linear(24, 4)
            s.dec = nn.Sequential(nn.Linear(4, 24), nn.Tanh(), nn.Linear(24, 16))

        def forward(s, x, eps):
            # torch.randn_like exports as RandomNormalLike, which trains
            # (vae_random.py) but no two runtimes draw alike: to compare
            # with PyTorch step by step the noise comes in as an input.
            h = F.relu(s.enc(x))
            mu, logvar = s.mu(h), s.logvar(h)
            recon = s.dec(mu + torch.exp(0.5 * logvar) * eps)
            kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
            return ((recon - x) ** 2).sum(1).mean() + kl

    class Ensemble(nn.Module):
        """Two heads whose class probabilities are averaged: the loss
        reads log(p), which PyTorch exports as NegativeLogLikelihoodLoss
        (only F.nll_loss right after F.log_softmax becomes
        SoftmaxCrossEntropyLoss)."""
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(16, 16), nn.Linear(16, CLASSES), nn.Linear(16, CLASSES)

        def log_probs(s, x):
            h = torch.tanh(s.a(x))
            return torch.log((F.softmax(s.b(h), 1) + F.softmax(s.c(h), 1)) / 2)

    class NLLMean(Ensemble):
        def forward(s, x, y):
            return F.nll_loss(s.log_probs(x), y)

    class NLLVariants(Ensemble):
        """nn.NLLLoss with class weights and ignore_index (a mean over
        the counted rows' weights), summed, and per row (reduction none)."""
        def __init__(s):
            super().__init__()
            s.register_buffer("weight", torch.linspace(0.5, 2.0, CLASSES))
            s.nll = nn.NLLLoss(weight=s.weight, ignore_index=1)

        def forward(s, x, y):
            logp = s.log_probs(x)
            rows = F.nll_loss(logp, y, reduction="none")
            return s.nll(logp, y) + 0.1 * F.nll_loss(logp, y, reduction="sum") + (rows * rows).mean()

    class RuntimeWeights(Ensemble):
        """Class weights computed in forward from buffers (inverse class
        frequencies, a scaled table), not initializers the losses read."""
        def __init__(s):
            super().__init__()
            s.register_buffer("counts", torch.tensor([30.0, 10.0, 25.0, 5.0, 15.0]))
            s.register_buffer("w", torch.linspace(1.5, 0.5, CLASSES))

        def forward(s, x, y):
            inverse = s.counts.sum() / s.counts
            ce = F.cross_entropy(s.b(torch.tanh(s.a(x))), y, weight=inverse)
            return ce + F.nll_loss(s.log_probs(x), y, weight=s.w * 2, ignore_index=3)

    return {
        "image_and_vector": (ImageAndVector, "image+vec", 0.5),
        "tokens_and_features": (TokensAndFeatures, "tokens+vec", 0.5),
        "seq2seq": (Seq2Seq, "tokens+tokens", 0.5),
        "two_outputs": (TwoHeads, "vec", 0.5, {"outputs": 2}),
        "regression_mse": (Regressor, "regress", 0.1, {"loss": "output"}),
        "regression_l1": (RobustRegressor, "image_regress", 0.1, {"loss": "output", "opset": 13}),
        "multilabel_bce": (MultiLabel, "multilabel", 0.5, {"loss": "output"}),
        "soft_targets": (SoftTargets, "soft", 0.5, {"loss": "output"}),
        "weighted_nll": (WeightedLoss, "image", 0.1, {"loss": "output"}),
        "nll_mean": (NLLMean, "vec", 0.5, {"loss": "output"}),
        "nll_variants": (NLLVariants, "vec", 0.2, {"loss": "output"}),
        "runtime_weights": (RuntimeWeights, "vec", 0.2, {"loss": "output"}),
        "padded_lm": (PaddedLM, "padded_only", 0.5, {"loss": "output"}),
        "autoencoder": (AutoEncoder, "image_only", 0.5, {"loss": "output"}),
        "vae": (VAE, "vec+noise", 0.02, {"loss": "output"}),
    }


def zoo(torch):
    """Every model of this comparison by name."""
    return {**vision(torch), **sequence(torch), **io(torch)}


def inputs(np, kind, n, rng):
    """One input array of a kind: tokens, padded tokens, a vector, a video or an image."""
    if kind == "tokens":
        return rng.integers(0, VOCAB, size=(n, SEQ))
    if kind == "padded":
        # Token 0 pads the tail of each sequence; the first token is never one.
        x = rng.integers(1, VOCAB, size=(n, SEQ))
        x[np.arange(SEQ)[None, :] >= rng.integers(2, SEQ + 1, size=(n, 1))] = 0
        return x
    if kind == "vec":
        return rng.standard_normal((n, 16)).astype("float32")
    if kind == "video":  # 4 frames of 8x8
        return rng.standard_normal((n, 3, 4, 8, 8)).astype("float32")
    return rng.standard_normal((n, 3, 8, 8)).astype("float32")


def batches(np, kind, n, rng):
    """Inputs (a tuple for models of several) and labels of n samples:
    int64 classes, per pixel for "pixels", float targets for regressions."""
    if kind == "image+vec":
        xs = (inputs(np, "image", n, rng), rng.standard_normal((n, FEATURES)).astype("float32"))
    elif kind == "tokens+vec":
        xs = (inputs(np, "tokens", n, rng), rng.standard_normal((n, FEATURES)).astype("float32"))
    elif kind == "tokens+tokens":
        xs = (inputs(np, "tokens", n, rng), inputs(np, "tokens", n, rng))
    elif kind in ("regress", "image_regress"):
        x = inputs(np, "vec" if kind == "regress" else "image", n, rng)
        return x, rng.standard_normal((n, TARGETS)).astype("float32")
    elif kind == "image_only":
        return inputs(np, "image", n, rng), None
    elif kind == "padded_only":  # a language model's: its labels are its input shifted
        return inputs(np, "padded", n, rng), None
    elif kind == "vec+noise":
        return (inputs(np, "vec", n, rng), rng.standard_normal((n, 4)).astype("float32")), None
    elif kind == "multilabel":
        return inputs(np, "vec", n, rng), (rng.random((n, CLASSES)) < 0.4).astype("float32")
    elif kind == "soft":
        p = rng.random((n, CLASSES)).astype("float32") + 0.1
        return inputs(np, "tokens", n, rng), p / p.sum(1, keepdims=True)
    else:
        xs = inputs(np, "image" if kind == "pixels" else kind, n, rng)
    labels = (n, 8, 8) if kind == "pixels" else (n,)
    return xs, rng.integers(0, CLASSES, size=labels)


def eval_export_warns(prog, torch, np, a, work):
    """PyTorch's default export (eval mode, constant folding) folds each
    BatchNorm into the Conv before it: trainrun must say so, since the
    model then trains without it. True when it does."""
    import subprocess
    m = vision(torch)["resnet_block"][0]()
    xs, ys = batches(np, "image", a.batch, np.random.default_rng(0))
    np.save(os.path.join(work, "x.npy"), xs)
    np.save(os.path.join(work, "y.npy"), ys.astype("int64"))
    path = os.path.join(work, "eval.onnx")
    torch.onnx.export(m, (torch.from_numpy(xs),), path, opset_version=17, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    b = type(a)(**{**vars(a), "steps": 1, "frozen": [], "loss": "ce"})
    cfg = os.path.join(work, "eval.config.pb")
    with open(cfg, "wb") as f:
        f.write(subprocess.run([a.protoc, "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=vs_torch.zoo_config(
                                    np, b, 0.1, xs, work, os.path.join(work, "ck.onnx")).encode(),
                               capture_output=True, check=True).stdout)
    out = subprocess.run([a.trainrun, "--model", path, "--config", cfg], capture_output=True, text=True)
    said = "folded each BatchNormalization into the Conv before it" in out.stdout + out.stderr
    print("%-13s trainrun %s the BatchNorms an eval-mode export folded" % (
        "eval_export", "names" if said else "does NOT name"))
    return out.returncode == 0 and said


def main():
    vs_torch.zoo_main(PROG, __doc__, zoo, batches, {"eval_export": eval_export_warns})


if __name__ == "__main__":
    main()
