#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a fourth zoo of models written the way PyTorch users write them
with trainrun and with PyTorch from the same weights on the same batches,
and compares losses and weights.

    zoo4_vs_torch.py --trainrun PATH --proto PROTO_DIR [--steps 8] [--batch 4]
                     [--threads 1] [--only NAME]

The models are what acceptance testers bring beyond zoo_vs_torch.py,
zoo2_vs_torch.py and zoo3_vs_torch.py. Losses, each the model's own output
(the config's loss_output): segmentation cross-entropy with
ignore_index and per-pixel weights (reduction none), NLL summed, losses
summed over the batch by hand (.sum() of per-row losses, a squared error
summed, a sum over dim 0, a sum / x.shape[0]),
F.binary_cross_entropy_with_logits with
pos_weight and class weights, F.gaussian_nll_loss, F.multilabel_soft_margin_loss,
F.kl_div with log_target, and what users write out because PyTorch 1.13
cannot export it: margin ranking, hinge embedding and soft margin losses
over pairs, a Siamese net's contrastive and cosine embedding losses, a
triplet loss with hard-negative mining by topk, label smoothing and a focal
loss, a Poisson NLL and a Huber loss with delta, CLIP's symmetric InfoNCE
(a learned temperature, a rank-0 parameter that trains only when the
config names it in trainable; arange labels), ArcFace's angular margin (acos, cos,
one_hot) and a Dice loss for segmentation. Tensor ops: torch.cdist (p=2
and p=1) as a prototypical classifier, var/std unbiased, norm p=1,
F.normalize p=1, prod, a cumprod written as exp(cumsum(log)), aminmax,
argmin, torch.diagonal, einsum in six forms (a repeated index among them)
and tensordot, addmm/baddbmm with alpha and beta, mv and dot, triu/tril
with offsets, masked_fill, where with a scalar, clamp with tensor bounds,
lerp, index_select and index_add (a graph net's message passing) and
scatter_add, uneven chunk/split, unbind, stack, narrow, movedim, flips and
rolls over two axes, F.unfold (im2col patches and a convolution written
as a matmul) and Tensor.unfold, sorting by argsort and gather, indices as
features (max_pool2d's return_indices, torch.max over a dim, topk). Layers:
AvgPool2d with ceil_mode and count_include_pad, LPPool1d/2d, dilated
MaxPool2d; F.pad reflect (1-D), replicate (3-D), circular and constant;
hardtanh, elu, celu, softplus (beta), hardshrink, softshrink,
rrelu (eval), softmin; a weight-tied language-model head; an MLP-Mixer;
ECA and CBAM attention; an FNet-like mixer (a real DFT by cos/sin
buffers); a Perceiver-style cross-attention (nn.MultiheadAttention with
kdim/vdim); rotary position embeddings; a LLaMA-style block (RMSNorm
written out, rotary causal attention, SwiGLU); a top-2 mixture of experts; a
diffusion-style sinusoidal time embedding with FiLM; F.interpolate of 1-D
(linear) and 3-D (trilinear, nearest) inputs with ConvTranspose3d;
GroupNorm, InstanceNorm1d and a BatchNorm1d without affine on 1-D data;
nn.utils.weight_norm. Export, training and comparison are vs_torch.py's
zoo loop.

Exit status: 0 when every loss agrees within --loss-tol and every trained
tensor within --weight-tol, most tensors having moved, 1 otherwise, 77
(skipped) when torch, onnx, numpy or protoc is missing.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402

PROG = "zoo4_vs_torch.py"
VOCAB, SEQ, CLASSES, TARGETS, NODES = 30, 8, 5, 3, 6
OUT = {"loss": "output"}


def losses(torch):
    """Models returning their own loss: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class PosWeightBCE(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(16, 16), nn.Linear(16, CLASSES)
            s.register_buffer("pos_weight", torch.linspace(0.5, 3.0, CLASSES))
            s.register_buffer("weight", torch.linspace(1.5, 0.5, CLASSES))

        def forward(s, x, y):
            logits = s.b(F.elu(s.a(x), alpha=0.5))
            return F.binary_cross_entropy_with_logits(logits, y, weight=s.weight, pos_weight=s.pos_weight)

    class GaussianNLL(nn.Module):
        def __init__(s):
            super().__init__()
            s.body, s.head = nn.Linear(16, 24), nn.Linear(24, 2 * TARGETS)

        def forward(s, x, y):
            mu, raw = s.head(torch.tanh(s.body(x))).chunk(2, dim=1)
            return F.gaussian_nll_loss(mu, y, F.softplus(raw) + 1e-3)

    class MultiLabelSoftMargin(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv, s.fc = nn.Conv1d(1, 4, 3, padding=1), nn.Linear(4 * 16, CLASSES)

        def forward(s, x, y):
            return F.multilabel_soft_margin_loss(s.fc(F.celu(s.conv(x.unsqueeze(1)), 2.0).flatten(1)), y)

    class KLLogTarget(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.fc = nn.Embedding(VOCAB, 8), nn.Linear(8, CLASSES)

        def forward(s, x, y):
            logp = F.log_softmax(s.fc(s.emb(x).mean(1)), 1)
            return F.kl_div(logp, torch.log(y), reduction="sum", log_target=True) / x.shape[0]

    class Ranking(nn.Module):
        """Margin ranking, hinge embedding and soft margin losses over pairs,
        written out (PyTorch 1.13 exports none of them)."""
        def __init__(s):
            super().__init__()
            s.enc = nn.Sequential(nn.Linear(16, 16), nn.Softplus(beta=2.0), nn.Linear(16, 8))
            s.score = nn.Linear(8, 1)

        def forward(s, a, b, y):
            ea, eb = s.enc(a), s.enc(b)
            sa, sb = s.score(ea).squeeze(1), s.score(eb).squeeze(1)
            ranking = torch.clamp(-y * (sa - sb) + 0.5, min=0).mean()
            d = F.pairwise_distance(ea, eb)
            hinge = torch.where(y > 0, d, torch.clamp(1.0 - d, min=0)).mean()
            soft = torch.log1p(torch.exp(-y * sa)).mean()
            return ranking + hinge + soft

    class Siamese(nn.Module):
        """One encoder for both inputs; a contrastive loss on the distance
        and the cosine embedding loss written out."""
        def __init__(s):
            super().__init__()
            s.enc = nn.Sequential(nn.Linear(16, 24), nn.Hardtanh(-2.0, 1.0), nn.Linear(24, 8))

        def forward(s, a, b, y):
            ea, eb = s.enc(a), s.enc(b)
            same = (y > 0).float()
            d = F.pairwise_distance(ea, eb, p=2.0, eps=1e-6)
            contrastive = (same * d.pow(2) + (1 - same) * torch.clamp(2.0 - d, min=0).pow(2)).mean()
            cos = F.cosine_similarity(ea, eb, dim=1)
            cosine = torch.where(y > 0, 1 - cos, torch.clamp(cos - 0.2, min=0)).mean()
            return contrastive + cosine

    class TripletMining(nn.Module):
        """Batch-hard triplet loss: squared distances between every pair,
        the hardest positive by max, the two hardest negatives by topk."""
        def __init__(s):
            super().__init__()
            s.net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8))

        def forward(s, x, y):
            e = F.normalize(s.net(x), dim=1)
            d = (e.unsqueeze(1) - e.unsqueeze(0)).pow(2).sum(-1)
            c = y % 2
            same = c.unsqueeze(0) == c.unsqueeze(1)
            pos = d.masked_fill(~same, 0.0).max(1).values
            neg = -(-d.masked_fill(same, 1e4)).topk(2, dim=1).values
            return torch.relu(pos.unsqueeze(1) - neg + 1.5).mean()

    class SmoothFocal(nn.Module):
        """Cross-entropy with label smoothing (which does not export) and
        a focal loss, both written from log_softmax and gather."""
        def __init__(s):
            super().__init__()
            s.conv, s.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, CLASSES)

        def forward(s, x, y):
            logp = F.log_softmax(s.fc(F.relu(s.conv(x)).mean((2, 3))), 1)
            nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)
            smooth = (0.9 * nll - 0.1 * logp.mean(1)).mean()
            focal = ((1 - torch.exp(-nll)) ** 2 * nll).mean()
            return smooth + focal

    class PoissonHuber(nn.Module):
        def __init__(s):
            super().__init__()
            s.net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, TARGETS))

        def forward(s, x, y):
            rate = s.net(x)
            poisson = (torch.exp(rate) - y.abs() * rate).mean()
            d = (rate - y).abs()
            huber = torch.where(d <= 0.5, 0.5 * d * d, 0.5 * (d - 0.25)).mean()
            return poisson + huber

    class Clip(nn.Module):
        """CLIP's loss: both towers normalised, a learned temperature,
        the diagonal as labels (arange), cross-entropy both ways."""
        def __init__(s):
            super().__init__()
            s.image = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(8 * 16, 8))
            s.text = nn.Linear(16, 8)
            s.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def forward(s, image, text):
            a, b = F.normalize(s.image(image), dim=-1), F.normalize(s.text(text), dim=-1)
            logits = s.logit_scale.exp() * a @ b.t()
            labels = torch.arange(image.shape[0])
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2

    class ArcFace(nn.Module):
        def __init__(s):
            super().__init__()
            s.net = nn.Linear(16, 8)
            s.w = nn.Parameter(torch.randn(CLASSES, 8))

        def forward(s, x, y):
            cos = F.normalize(s.net(x)) @ F.normalize(s.w).t()
            theta = torch.acos(torch.clamp(cos, -1 + 1e-6, 1 - 1e-6))
            onehot = F.one_hot(y, CLASSES).float()
            logits = 8.0 * (onehot * torch.cos(theta + 0.3) + (1 - onehot) * cos)
            return F.cross_entropy(logits, y)

    class Dice(nn.Module):
        def __init__(s):
            super().__init__()
            s.c1, s.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, CLASSES, 1)

        def forward(s, x, y):
            logits = s.c2(F.relu(s.c1(x)))
            p = logits.softmax(1)
            oh = F.one_hot(y, CLASSES).permute(0, 3, 1, 2).float()
            inter = (p * oh).sum((2, 3))
            dice = 1 - (2 * inter + 1) / (p.sum((2, 3)) + oh.sum((2, 3)) + 1)
            return dice.mean() + F.cross_entropy(logits, y)

    class CEVariants(nn.Module):
        """Segmentation cross-entropy ignoring label 255 (unlabelled
        pixels), and per-pixel losses (reduction none) weighted by a
        border mask, with NLL summed."""
        def __init__(s):
            super().__init__()
            s.c1, s.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, CLASSES, 1)

        def forward(s, x, y):
            logits = s.c2(F.relu(s.c1(x)))
            seg = F.cross_entropy(logits, y, ignore_index=255)
            per = F.cross_entropy(logits, y.clamp(max=CLASSES - 1), reduction="none")
            border = torch.ones(8, 8)
            border[2:6, 2:6] = 0.5
            nll = F.nll_loss(F.log_softmax(logits, 1), y, ignore_index=255, reduction="sum") / y.numel()
            return seg + (per * border).mean() + nll

    class HandSums(nn.Module):
        """Losses summed over the batch by hand: per-row cross-entropies
        summed, a squared error summed (mse_loss with reduction sum, which
        PyTorch 1.13 cannot export), a sum over dim 0 of the rows' mean
        squares, and a sum over the batch divided by x.shape[0]."""
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x, y):
            logits = s.b(torch.tanh(s.a(x)))
            ce = F.cross_entropy(logits, y, reduction="none").sum()
            mse = ((torch.softmax(logits, 1) - 0.2) ** 2).sum()
            rows = (logits ** 2).mean(1).sum(0)
            per = ((logits - 0.5) ** 2).sum() / x.shape[0]
            return 0.05 * ce + mse + 0.01 * rows + 0.1 * per

    return {
        "hand_sums": (HandSums, "vec", 0.1, OUT),
        "ce_variants": (CEVariants, "pixels_ignore", 0.5, OUT),
        "bce_pos_weight": (PosWeightBCE, "multilabel", 0.5, {**OUT, "frozen": ["pos_weight", "weight"]}),
        "gaussian_nll": (GaussianNLL, "regress", 0.05, OUT),
        "multilabel_margin": (MultiLabelSoftMargin, "multilabel", 0.5, OUT),
        "kl_log_target": (KLLogTarget, "soft", 0.5, OUT),
        "ranking_losses": (Ranking, "pairs", 0.2, OUT),
        "siamese": (Siamese, "pairs", 0.1, OUT),
        "triplet_mining": (TripletMining, "vec_out", 0.2, OUT),
        "smooth_focal": (SmoothFocal, "image_out", 0.5, OUT),
        "poisson_huber": (PoissonHuber, "regress", 0.1, OUT),
        # A rank-0 parameter trains only when the config names it (docs/training.md).
        "clip_loss": (Clip, "image+text", 0.2, {**OUT, "trainable": ["*"]}),
        "arcface": (ArcFace, "vec_out", 0.1, OUT),
        "dice_seg": (Dice, "pixels_out", 0.5, OUT),
    }


def tensor_ops(torch):
    """Tensor ops as user code writes them: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class Prototypes(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.proto = nn.Embedding(VOCAB, 8), nn.Parameter(torch.randn(CLASSES, 8))

        def forward(s, x):
            h = s.emb(x).mean(1)
            return -torch.cdist(h, s.proto)

    class Stats(nn.Module):
        def __init__(s):
            super().__init__()
            s.a = nn.Linear(16, 16)
            s.fc = nn.Linear(16 + 8 + 16 + 8, CLASSES)

        def forward(s, x):
            h = s.a(x)
            cumprod = torch.exp(torch.cumsum(F.logsigmoid(h[:, :8]), 1))
            lo, hi = h.amin(1), h.amax(1)
            stats = torch.stack([h.var(1, unbiased=True), h.std(1), h.norm(p=1, dim=1) / 16,
                                 torch.sigmoid(h[:, :6]).prod(1), lo, hi, h.argmin(1).float() / 16,
                                 torch.diagonal(h.view(-1, 4, 4), dim1=1, dim2=2).sum(1)], 1)
            return s.fc(torch.cat([F.normalize(h, p=1, dim=1), stats, h.amin(1, keepdim=True) * h, cumprod], 1))

    class EinsumForms(nn.Module):
        def __init__(s):
            super().__init__()
            s.w = nn.Parameter(torch.randn(16, 8) * 0.3)
            s.u, s.v = nn.Parameter(torch.randn(4) * 0.5), nn.Parameter(torch.randn(4) * 0.5)
            s.sq = nn.Parameter(torch.randn(8, 8) * 0.3)
            s.fc = nn.Linear(8 + 1 + 16 + 4 + 8, CLASSES)

        def forward(s, x):
            h = torch.einsum("bi,ij->bj", x, s.w)
            dot = torch.einsum("bi,bi->b", h, h).unsqueeze(1) / 8
            outer = torch.einsum("bi,bj->bij", h[:, :4], h[:, 4:]).flatten(1)
            plane = torch.einsum("i,j->ij", s.u, s.v)
            bt = torch.einsum("bij->bji", plane.expand(x.shape[0], 4, 4)).sum(1)
            diag = torch.einsum("ii->i", s.sq)
            td = torch.tensordot(h, s.sq, dims=([1], [0]))
            return s.fc(torch.cat([torch.tanh(td), dot, outer, bt, h * diag], 1))

    class AddMM(nn.Module):
        def __init__(s):
            super().__init__()
            s.w, s.b = nn.Parameter(torch.randn(16, 8) * 0.3), nn.Parameter(torch.zeros(8))
            s.m, s.vec = nn.Parameter(torch.randn(CLASSES, 8) * 0.3), nn.Parameter(torch.randn(8) * 0.3)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = torch.relu(torch.addmm(s.b, x, s.w, beta=0.5, alpha=2.0))
            a = h.view(-1, 2, 4)
            h2 = torch.baddbmm(a, a.transpose(1, 2)[:, :2], a, beta=0.7, alpha=0.3).flatten(1)
            return s.fc(h + h2) + torch.mv(s.m, s.vec) + torch.dot(s.vec, s.vec)

    class MasksLerp(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.qk = nn.Embedding(VOCAB, 16), nn.Linear(16, 32)
            s.lo, s.hi = nn.Parameter(torch.full((16,), -0.5)), nn.Parameter(torch.full((16,), 0.6))
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            q, k = s.qk(h).chunk(2, -1)
            att = q @ k.transpose(1, 2) / 4.0
            band = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), diagonal=2) | \
                torch.tril(torch.ones(SEQ, SEQ, dtype=torch.bool), diagonal=-3)
            att = att.masked_fill(band, -1e9).softmax(-1)
            o = att @ h
            o = torch.where(o > 0, o, 0.1 * o)
            o = torch.lerp(o, h, torch.sigmoid(q[..., :1]))
            o = torch.lerp(torch.clamp(o, min=s.lo, max=s.hi), o, 0.25)
            return s.fc(o.mean(1))

    class GraphNet(nn.Module):
        """A two-layer message-passing net on a fixed graph: index_select
        of the source nodes, index_add into the destinations (a ring, each
        node receiving one message: PyTorch 1.13 exports index_add as a
        ScatterElements without reduction, whose duplicate indices ONNX
        leaves undefined), then scatter_add pooling into two node groups
        (duplicates summed: ScatterElements with reduction add)."""
        def __init__(s):
            super().__init__()
            s.msg1, s.self1 = nn.Linear(8, 12), nn.Linear(8, 12)
            s.msg2, s.self2 = nn.Linear(12, 12), nn.Linear(12, 12)
            s.fc = nn.Linear(24, CLASSES)

        def layer(s, h, msg, self_):
            src = torch.tensor([1, 2, 3, 4, 5, 0])
            dst = torch.tensor([0, 1, 2, 3, 4, 5])
            m = msg(h).index_select(1, src)
            agg = torch.zeros(h.shape[0], NODES, m.shape[2]).index_add(1, dst, m)
            return F.relu(self_(h) + agg)

        def forward(s, x):
            h = s.layer(s.layer(x, s.msg1, s.self1), s.msg2, s.self2)
            group = torch.tensor([0, 0, 1, 0, 1, 1]).view(1, NODES, 1).expand(h.shape[0], NODES, 12)
            pooled = torch.zeros(h.shape[0], 2, 12).scatter_add(1, group, h)
            return s.fc(pooled.flatten(1))

    class SplitUneven(nn.Module):
        def __init__(s):
            super().__init__()
            s.a = nn.Linear(16, 16)
            s.fc = nn.Linear(6 + 4 + 3 + 11 + 16 + 16 + 8, CLASSES)

        def forward(s, x):
            h = s.a(x)
            p, q, r = h.chunk(3, dim=1)  # 6, 6, 4
            u, w = torch.split(h, [5, 11], dim=1)
            cols = torch.stack(torch.unbind(h.view(-1, 4, 4), 1), 2).flatten(1)
            grid = torch.movedim(h.view(-1, 2, 8), 1, 2)
            moved = torch.roll(grid.flip(1, 2), (1, -1), (1, 2)).flatten(1)
            return s.fc(torch.cat([p * q, r, u.narrow(1, 1, 3), torch.tanh(w), cols, moved,
                                   r.repeat(1, 2)], 1))

    class UnfoldPatches(nn.Module):
        """F.unfold as a ViT's patch embedding and as a 3x3 convolution
        written as im2col and a matmul; Tensor.unfold sliding windows."""
        def __init__(s):
            super().__init__()
            s.patch = nn.Linear(3 * 16, 8)
            s.kernel = nn.Parameter(torch.randn(6, 3 * 9) * 0.2)
            s.fc = nn.Linear(8 + 6 + 3, CLASSES)

        def forward(s, x):
            p = s.patch(F.unfold(x, 4, stride=4).transpose(1, 2)).mean(1)
            cols = F.unfold(x, 3, dilation=2, padding=2, stride=2)
            conv = torch.relu(s.kernel @ cols).amax(2)
            win = x.mean(1).flatten(1).unfold(1, 8, 4).amax(2)[:, :3]
            return s.fc(torch.cat([F.gelu(p), conv, win], 1))

    class SortGather(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.score = nn.Embedding(VOCAB, 8), nn.Linear(8, 1)
            s.fc = nn.Linear(8 * 3 + 4, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            score = s.score(h).squeeze(-1)
            order = score.argsort(dim=1, descending=True)[:, :3]
            top = torch.gather(h, 1, order.unsqueeze(-1).expand(-1, -1, 8)) * torch.sigmoid(
                torch.gather(score, 1, order)).unsqueeze(-1)
            return s.fc(torch.cat([top.flatten(1), score.sort(1).values[:, :4]], 1))

    return {
        "proto_cdist": (Prototypes, "tokens", 0.2),
        "stats": (Stats, "vec", 0.1),
        "einsum_forms": (EinsumForms, "vec", 0.1),
        "addmm_baddbmm": (AddMM, "vec", 0.1),
        "masks_lerp": (MasksLerp, "tokens", 0.5),
        "graph_scatter": (GraphNet, "graph", 0.3),
        "split_uneven": (SplitUneven, "vec", 0.2),
        "unfold_patches": (UnfoldPatches, "image", 0.2),
        "sort_gather": (SortGather, "tokens", 0.5),
    }


def layers(torch):
    """Layers and blocks: name: (class, data kind, lr[, options])."""
    nn, F = torch.nn, torch.nn.functional

    class PoolModes(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 8, 3, padding=1)
            s.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True)
            s.lp = nn.LPPool2d(2, 2)
            s.lp1 = nn.LPPool1d(3, 2, 2)
            s.fc = nn.Linear(8 * (25 + 16 + 9 + 4), CLASSES)

        def forward(s, x):
            h = F.relu(s.conv(x))
            a = s.avg(h)  # 5x5: the last window starts in the padding's reach
            b = s.lp(h)  # 4x4
            c = F.max_pool2d(h, 2, stride=2, dilation=2)  # 3x3
            d = s.lp1(h.mean(2))  # 4
            return s.fc(torch.cat([t.flatten(1) for t in (a, b, c, d)], 1))

    class PadModes(nn.Module):
        def __init__(s):
            super().__init__()
            s.c1, s.c2 = nn.Conv1d(3, 4, 3), nn.Conv2d(3, 4, 3)
            s.c3 = nn.Conv3d(1, 2, 3)
            s.fc = nn.Linear(4 + 4 + 4 + 2, CLASSES)

        def forward(s, x):
            r = s.c1(F.pad(x.mean(2), (1, 1), mode="reflect")).amax(2)
            # Not mode="circular": PyTorch 1.13 exports it slicing the wrong
            # rows (docs/operators.md).
            c = s.c2(F.pad(x, (2, 1, 0, 2), mode="reflect")).mean((2, 3))
            k = s.c2(F.pad(x, (2, 0, 0, 1), value=0.5)).amax((2, 3))
            v = s.c3(F.pad(x.unsqueeze(1), (1, 1, 1, 1, 1, 1), mode="replicate")).mean((2, 3, 4))
            return s.fc(torch.cat([r, c, k, v], 1))

    class Activations(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.a(x)
            h = (F.hardtanh(h, -2.0, 1.0) + F.elu(h, alpha=0.5) + F.celu(h, alpha=2.0)
                 + F.softplus(h, beta=2.0) + F.hardshrink(h, 0.4) + F.softshrink(h, 0.3))
            h = s.b(h)
            return s.c(F.rrelu(h, training=False) + F.softmin(h, 1) + F.relu6(h * 3.0))

    class TiedLM(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.mix = nn.Linear(16, 16)
            s.ln = nn.LayerNorm(16)

        def forward(s, x):
            h = s.emb(x)
            h = s.ln(h + torch.tanh(s.mix(torch.cumsum(h, 1) / SEQ)))
            return h[:, -1] @ s.emb.weight.t()

    class Mixer(nn.Module):
        def __init__(s):
            super().__init__()
            s.patch = nn.Conv2d(3, 16, 2, stride=2)
            s.ln1, s.ln2, s.ln = nn.LayerNorm(16), nn.LayerNorm(16), nn.LayerNorm(16)
            s.tok = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            s.ch = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            s.head = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.patch(x).flatten(2).transpose(1, 2)
            h = h + s.tok(s.ln1(h).transpose(1, 2)).transpose(1, 2)
            h = h + s.ch(s.ln2(h))
            return s.head(s.ln(h).mean(1))

    class EcaCbam(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 8, 3, padding=1)
            s.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
            s.spatial = nn.Conv2d(2, 1, 7, padding=3)
            s.fc = nn.Linear(8, CLASSES)

        def forward(s, x):
            h = F.relu(s.conv(x))
            w = s.eca(F.adaptive_avg_pool2d(h, 1).squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
            h = h * torch.sigmoid(w)
            m = torch.cat([h.mean(1, keepdim=True), h.amax(1, keepdim=True)], 1)
            h = h * torch.sigmoid(s.spatial(m))
            return s.fc(h.mean((2, 3)))

    class FNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            for n, size in (("seq", SEQ), ("dim", 16)):
                k = torch.arange(size, dtype=torch.float32)
                ang = 2 * math.pi * k.unsqueeze(1) * k.unsqueeze(0) / size
                s.register_buffer(n + "_cos", torch.cos(ang))
                s.register_buffer(n + "_sin", torch.sin(ang))
            s.ln1, s.ln2 = nn.LayerNorm(16), nn.LayerNorm(16)
            s.ff = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = s.emb(x)
            real = s.seq_cos @ h @ s.dim_cos - s.seq_sin @ h @ s.dim_sin
            h = s.ln1(h + real / 4)
            h = s.ln2(h + s.ff(h))
            return s.fc(h[:, 0])

    class Perceiver(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 12)
            s.latents = nn.Parameter(torch.randn(4, 16) * 0.5)
            s.cross = nn.MultiheadAttention(16, 2, kdim=12, vdim=12, batch_first=True)
            s.self_att = nn.MultiheadAttention(16, 2, batch_first=True)
            s.ln1, s.ln2 = nn.LayerNorm(16), nn.LayerNorm(16)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            kv = s.emb(x)
            q = s.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
            h = q + s.cross(s.ln1(q), kv, kv, need_weights=False)[0]
            n = s.ln2(h)
            h = h + s.self_att(n, n, n, need_weights=False)[0]
            return s.fc(h.mean(1))

    class Rotary(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb, s.qkv, s.out = nn.Embedding(VOCAB, 16), nn.Linear(16, 48), nn.Linear(16, CLASSES)

        def rope(s, t):  # also the LLaMA block's (s unused)
            inv = 1.0 / (100.0 ** (torch.arange(0, 8, 2).float() / 8))
            ang = torch.arange(SEQ).float().unsqueeze(1) * inv.unsqueeze(0)
            cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
            t1, t2 = t.chunk(2, -1)
            return t * cos + torch.cat([-t2, t1], -1) * sin

        def forward(s, x):
            n = x.shape[0]
            q, k, v = (t.view(n, SEQ, 2, 8).transpose(1, 2) for t in s.qkv(s.emb(x)).chunk(3, -1))
            q, k = s.rope(q), s.rope(k)
            causal = torch.triu(torch.full((SEQ, SEQ), float("-inf")), diagonal=1)
            att = (q @ k.transpose(-1, -2) / math.sqrt(8) + causal).softmax(-1)
            o = (att @ v).transpose(1, 2).reshape(n, SEQ, 16)
            return s.out(o[:, -1])

    class MoE(nn.Module):
        def __init__(s):
            super().__init__()
            s.gate = nn.Linear(16, 4)
            s.experts = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.SiLU()) for _ in range(4))
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            probs = s.gate(x).softmax(-1)
            top, idx = probs.topk(2, dim=-1)
            dense = torch.zeros_like(probs).scatter(1, idx, top / top.sum(-1, keepdim=True))
            out = torch.stack([e(x) for e in s.experts], 1)
            return s.fc(torch.einsum("ne,ned->nd", dense, out))

    class TimeEmbed(nn.Module):
        def __init__(s):
            super().__init__()
            s.time = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 32))
            s.a, s.fc = nn.Linear(16, 16), nn.Linear(16, CLASSES)

        def forward(s, x, t):
            freqs = torch.exp(torch.arange(4, dtype=torch.float32) * (-math.log(1000.0) / 4))
            args = t.unsqueeze(1) * freqs.unsqueeze(0)
            scale, shift = s.time(torch.cat([torch.sin(args), torch.cos(args)], -1)).chunk(2, -1)
            return s.fc(F.silu(s.a(x) * (1 + scale) + shift))

    class Interp13(nn.Module):
        def __init__(s):
            super().__init__()
            s.c3 = nn.Conv3d(3, 4, 3, stride=2, padding=1)
            s.up = nn.ConvTranspose3d(4, 4, 2, stride=2)
            s.c1 = nn.Conv1d(4, 4, 3, padding=1)
            s.fc = nn.Linear(4 * 3 + 4, CLASSES)

        def forward(s, x):
            h = F.relu(s.c3(x))
            a = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            b = F.interpolate(h, size=(4, 8, 8), mode="nearest")
            c = s.up(h)
            seq = s.c1(F.interpolate(h.mean((3, 4)), size=7, mode="linear", align_corners=True))
            pooled = [a.mean((2, 3, 4)), b.mean((2, 3, 4)), c.amax((2, 3, 4))]
            return s.fc(torch.cat(pooled + [seq.amax(2)], 1))

    class Norms1d(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 8)
            s.conv = nn.Conv1d(8, 8, 3, padding=1)
            s.gn = nn.GroupNorm(4, 8)
            s.inorm = nn.InstanceNorm1d(8, affine=True)
            s.bn = nn.BatchNorm1d(8, affine=False)
            s.fc = nn.Linear(16, CLASSES)

        def forward(s, x):
            h = F.relu(s.gn(s.conv(s.emb(x).transpose(1, 2))))
            h = s.inorm(h) + h
            return s.fc(torch.cat([s.bn(h).amax(2), h.mean(2)], 1))

    class WeightNorm(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = nn.utils.weight_norm(nn.Conv2d(3, 8, 3, padding=1))
            s.fc = nn.utils.weight_norm(nn.Linear(8, CLASSES))

        def forward(s, x):
            return s.fc(F.relu(s.conv(x)).mean((2, 3)))

        def __deepcopy__(s, memo):
            # PyTorch 1.13 cannot deepcopy a weight_norm module (its weight
            # is computed): a new one with the same parameters.
            twin = WeightNorm()
            twin.load_state_dict(s.state_dict())
            return twin

    class Llama(nn.Module):
        """A LLaMA-style block: RMSNorm written out (rsqrt of the mean
        square), rotary attention with a causal mask, SwiGLU."""
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(VOCAB, 16)
            s.n1, s.n2, s.n3 = (nn.Parameter(torch.ones(16)) for _ in range(3))
            s.qkv, s.o = nn.Linear(16, 48, bias=False), nn.Linear(16, 16, bias=False)
            s.gate, s.up, s.down = nn.Linear(16, 24, bias=False), nn.Linear(16, 24, bias=False), \
                nn.Linear(24, 16, bias=False)
            s.head = nn.Linear(16, CLASSES, bias=False)

        def rms(s, h, w):
            return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * w

        def forward(s, x):
            n = x.shape[0]
            h = s.emb(x)
            q, k, v = (t.view(n, SEQ, 2, 8).transpose(1, 2) for t in s.qkv(s.rms(h, s.n1)).chunk(3, -1))
            q, k = Rotary.rope(s, q), Rotary.rope(s, k)
            mask = torch.ones(SEQ, SEQ).tril().bool()
            att = (q @ k.transpose(-1, -2) * 8 ** -0.5).masked_fill(~mask, float("-inf")).softmax(-1)
            h = h + s.o((att @ v).transpose(1, 2).reshape(n, SEQ, 16))
            g = s.rms(h, s.n2)
            h = h + s.down(F.silu(s.gate(g)) * s.up(g))
            return s.head(s.rms(h, s.n3)[:, -1])

    class Indices(nn.Module):
        """Indices as features: max_pool2d's return_indices, torch.max's
        values and indices over a dim, topk's indices (all as floats)."""
        def __init__(s):
            super().__init__()
            s.conv = nn.Conv2d(3, 4, 3, padding=1)
            s.fc = nn.Linear(4 * 16 + 4 * 16 + 8 + 8 + 4, CLASSES)

        def forward(s, x):
            h = s.conv(x)
            v, i = F.max_pool2d(h, 2, return_indices=True)
            m, j = h.mean(1).max(dim=2)
            tv, ti = h.mean((2, 3)).topk(2, dim=1)
            feats = [v.flatten(1), i.flatten(1).float() / 64, m, j.float() / 8, tv, ti.float()]
            return s.fc(torch.cat(feats, 1))

    return {
        "llama_block": (Llama, "tokens", 0.3),
        "indices": (Indices, "image", 0.2),
        "pool_modes": (PoolModes, "image", 0.3),
        "pad_modes": (PadModes, "image", 0.3),
        "activations4": (Activations, "vec", 0.1),
        "tied_lm_head": (TiedLM, "tokens", 0.5),
        "mlp_mixer": (Mixer, "image", 0.3),
        "eca_cbam": (EcaCbam, "image", 0.5),
        "fnet": (FNet, "tokens", 0.3, {"frozen": ["seq_*", "dim_*"]}),
        "perceiver": (Perceiver, "tokens", 0.3),
        "rotary_attn": (Rotary, "tokens", 0.5),
        "moe_top2": (MoE, "vec", 0.3),
        "time_embed": (TimeEmbed, "vec+time", 0.3),
        "interp_1d_3d": (Interp13, "video", 0.3),
        "norms_1d": (Norms1d, "tokens", 0.3),
        "weight_norm": (WeightNorm, "image", 0.3),
    }


def zoo(torch):
    """Every model of this comparison by name."""
    return {**losses(torch), **tensor_ops(torch), **layers(torch)}


def batches(np, kind, n, rng):
    """Inputs (a tuple for models of several) and labels of n samples."""
    def vec():
        return rng.standard_normal((n, 16)).astype("float32")
    if kind == "tokens":
        return rng.integers(0, VOCAB, size=(n, SEQ)), rng.integers(0, CLASSES, size=(n,))
    if kind in ("vec", "vec_out"):
        return vec(), rng.integers(0, CLASSES, size=(n,))
    if kind == "regress":
        return vec(), rng.standard_normal((n, TARGETS)).astype("float32")
    if kind == "multilabel":
        return vec(), (rng.random((n, CLASSES)) < 0.4).astype("float32")
    if kind == "soft":
        p = rng.random((n, CLASSES)).astype("float32") + 0.1
        return rng.integers(0, VOCAB, size=(n, SEQ)), p / p.sum(1, keepdims=True)
    if kind == "pairs":  # two vectors and +1 (alike) or -1
        return (vec(), vec()), np.where(rng.random(n) < 0.5, 1.0, -1.0).astype("float32")
    if kind == "image+text":
        return (rng.standard_normal((n, 3, 8, 8)).astype("float32"), vec()), None
    if kind == "vec+time":
        return (vec(), rng.uniform(0, 100, size=n).astype("float32")), rng.integers(0, CLASSES, size=(n,))
    if kind == "graph":
        return rng.standard_normal((n, NODES, 8)).astype("float32"), rng.integers(0, CLASSES, size=(n,))
    if kind == "video":
        return rng.standard_normal((n, 3, 4, 8, 8)).astype("float32"), rng.integers(0, CLASSES, size=(n,))
    x = rng.standard_normal((n, 3, 8, 8)).astype("float32")
    if kind == "pixels_ignore":  # a fifth of the pixels unlabelled (255)
        y = rng.integers(0, CLASSES, size=(n, 8, 8))
        return x, np.where(rng.random((n, 8, 8)) < 0.2, 255, y)
    return x, rng.integers(0, CLASSES, size=(n, 8, 8) if kind == "pixels_out" else (n,))


def main():
    vs_torch.zoo_main(PROG, __doc__, zoo, batches)


if __name__ == "__main__":
    main()
