#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the example Fashion-MNIST models as ONNX files.

    gen_models.py OUT_DIR [--seed N]

produces OUT_DIR/mlp.onnx, OUT_DIR/cnn.onnx, OUT_DIR/wide.onnx, OUT_DIR/resnet.onnx,
OUT_DIR/masked.onnx, OUT_DIR/picked.onnx, OUT_DIR/weighted.onnx, OUT_DIR/grouped.onnx and
OUT_DIR/skip.onnx:

  mlp.onnx  x [N,784] -> Gemm 784x256, Relu -> Gemm 256x128, Relu
            -> Gemm 128x10 -> logits [N,10]
  wide.onnx x [N,784] -> 3 x (MatMul 512 wide, Add bias, Relu) -> MatMul 512x10,
            Add -> logits [N,10]: a wide MatMul chain for tensor parallelism
  grouped.onnx  x [N,784] as [N,784,1,1] -> 3 x (Conv 1x1 of 2 groups to 512
            channels, Relu) -> Flatten -> MatMul 512x10, Add -> logits [N,10]:
            weights no mesh splits (a grouped Conv splits neither its input
            nor its output channels), for plans only a pipeline fits
  cnn.onnx  x [N,1,28,28] -> Conv 1->32 3x3 pad 1, Relu, MaxPool 2
            -> Conv 32->64 3x3 pad 1, Relu, MaxPool 2 -> Flatten
            -> Gemm 3136x128, Relu -> Gemm 128x10 -> logits [N,10]
  resnet.onnx  x [N,1,28,28] -> stem: Conv 1->32 3x3, BatchNorm, Relu,
            MaxPool 2 -> layer1: basic block 32 -> layer2: basic block
            32->64, stride 2 (1x1 conv + BN shortcut) -> layer3: basic block
            64 -> GlobalAveragePool -> Gemm 64x10 -> logits [N,10]
            (a basic block: Conv 3x3 + BN + Relu, Conv 3x3 + BN, add the
            input, Relu; convs before a BatchNorm have no bias)
  masked.onnx  x [N,784] -> Gemm 784x32, times a ConstantOfShape [N,1] of
            ones, plus a ConstantOfShape [N,32] of zeros (both shaped
            Concat(Shape(x)[0], k), as PyTorch exports torch.ones(
            x.shape[0], 1) and x.new_zeros(x.size(0), 32)), Relu
            -> Gemm 32x10 -> logits [N,10]
  picked.onnx  x [N,784] -> Gemm 784x32, Relu -> h; scores MatMul 32x32 +
            bias read only by ArgMax, whose index picks one element of
            each row of h (GatherElements); h plus h times it -> Gemm
            32x10 -> logits [N,10], and a second output aux = Gemm 32x4 of
            h that the loss does not read (the scores' and aux's weights
            get no gradient, as in PyTorch)
  weighted.onnx  x [N,784], labels [N] -> Gemm 784x32, Relu -> Gemm 32x10
            -> logits; its own loss: SoftmaxCrossEntropyLoss with class
            weights 0.5 .. 1.5 and ignore_index 3 (class 3's samples count
            nothing), the mean over the batch's weights -> loss
  skip.onnx x [N,784] -> Gemm 784x32 -> h; h + Gemm 32x32 (Relu (Gemm
            32x32 h)) -> Gemm 32x10 -> logits [N,10]: a residual skip,
            its four weights four pipeline stages' layers, so h goes from
            the first stage to the second and (skipping it) the third

Weights are initialised as torch.nn.Linear and torch.nn.Conv2d do by default
(kaiming_uniform_ with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
weights and biases alike; BatchNorm starts as torch.nn.BatchNorm2d does),
from a fixed seed, so the files are reproducible
byte for byte. Gemm weights are stored [out, in] with transB=1, the layout
torch.onnx.export produces for nn.Linear, and initialiser names follow
PyTorch's state_dict ("fc1.weight"), so checkpoints map onto both worlds.

Needs Debian's python3-onnx and python3-numpy (it runs under /usr/bin/python3).
Every model passes onnx.checker (full check, with shape inference) before it
is written.
"""
import argparse
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover - depends on the host
    sys.exit("gen_models.py: %s (install python3-onnx and python3-numpy, "
             "and run with /usr/bin/python3)" % e)

OPSET = 13
CLASSES = 10


def uniform_init(rng, shape, fan_in):
    """torch's default for Linear/Conv2d weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Builder:
    """Accumulates nodes and initialisers of one graph."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.inits = []

    def param(self, name, shape, fan_in):
        self.inits.append(numpy_helper.from_array(uniform_init(self.rng, shape, fan_in), name))
        return name

    def linear(self, name, x, n_in, n_out, out=None):
        w = self.param(name + ".weight", (n_out, n_in), n_in)
        b = self.param(name + ".bias", (n_out,), n_in)
        y = out or name + ".out"
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [y], name=name,
                                           alpha=1.0, beta=1.0, transB=1))
        return y

    def matmul(self, name, x, n_in, n_out, out=None):
        """MatMul by a [in, out] weight, then Add the bias: the unfused form
        of a linear layer many exporters write."""
        w = self.param(name + ".weight", (n_in, n_out), n_in)
        b = self.param(name + ".bias", (n_out,), n_in)
        mm = name + ".mm"
        y = out or name + ".out"
        self.nodes.append(helper.make_node("MatMul", [x, w], [mm], name=name + ".matmul"))
        self.nodes.append(helper.make_node("Add", [mm, b], [y], name=name + ".add"))
        return y

    def conv(self, name, x, c_in, c_out, k=3, stride=1, bias=True):
        fan_in = c_in * k * k
        w = self.param(name + ".weight", (c_out, c_in, k, k), fan_in)
        inputs = [x, w] + ([self.param(name + ".bias", (c_out,), fan_in)] if bias else [])
        y = name + ".out"
        p = k // 2
        self.nodes.append(helper.make_node("Conv", inputs, [y], name=name,
                                           kernel_shape=[k, k], pads=[p, p, p, p],
                                           strides=[stride, stride], dilations=[1, 1], group=1))
        return y

    def batch_norm(self, name, x, c):
        """torch.nn.BatchNorm2d's initial state: weight 1, bias 0, running mean 0 and var 1."""
        vals = {"weight": np.ones, "bias": np.zeros, "running_mean": np.zeros, "running_var": np.ones}
        for k, fill in vals.items():
            self.inits.append(numpy_helper.from_array(fill(c, dtype=np.float32), name + "." + k))
        y = name + ".out"
        self.nodes.append(helper.make_node("BatchNormalization", [x] + [name + "." + k for k in vals], [y],
                                           name=name, epsilon=1e-5, momentum=0.9))
        return y

    def add(self, name, a, b):
        y = name + ".out"
        self.nodes.append(helper.make_node("Add", [a, b], [y], name=name))
        return y

    def conv_bn(self, name, x, c_in, c_out, k=3, stride=1, relu=True):
        """Conv (no bias: the BatchNorm's shift replaces it) + BatchNorm (+ Relu)."""
        y = self.batch_norm(name + ".bn", self.conv(name + ".conv", x, c_in, c_out, k, stride, False), c_out)
        return self.unary("Relu", name + ".relu", y) if relu else y

    def res_block(self, name, x, c_in, c_out, stride):
        """He et al.'s basic block: two 3x3 conv + BN, the input added back
        (through a 1x1 conv + BN where the shape changes), then Relu."""
        h = self.conv_bn(name + ".a", x, c_in, c_out, 3, stride)
        h = self.conv_bn(name + ".b", h, c_out, c_out, 3, 1, relu=False)
        skip = x if stride == 1 and c_in == c_out else self.conv_bn(name + ".down", x, c_in, c_out, 1, stride,
                                                                    relu=False)
        return self.unary("Relu", name + ".relu", self.add(name + ".add", h, skip))

    def unary(self, op, name, x, **attrs):
        y = name + ".out"
        self.nodes.append(helper.make_node(op, [x], [y], name=name, **attrs))
        return y

    def model(self, graph_name, x_shape, doc, extra=()):
        """extra: more outputs (name, width) after logits."""
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", w])
                for n, w in (("logits", CLASSES),) + tuple(extra)]
        graph = helper.make_graph(self.nodes, graph_name, [x], outs, self.inits)
        m = helper.make_model(graph, producer_name="trainyard-gen_models",
                              producer_version="1", doc_string=doc,
                              opset_imports=[helper.make_opsetid("", OPSET)])
        onnx.checker.check_model(m, full_check=True)
        return m


def build_mlp(seed):
    b = Builder(np.random.default_rng(seed))
    h = b.unary("Relu", "relu1", b.linear("fc1", "x", 784, 256))
    h = b.unary("Relu", "relu2", b.linear("fc2", h, 256, 128))
    b.linear("fc3", h, 128, CLASSES, out="logits")
    return b.model("mlp", ["N", 784], "Fashion-MNIST MLP 784-256-128-10")


def build_wide(seed):
    b = Builder(np.random.default_rng(seed))
    h = "x"
    for i, (n_in, n_out) in enumerate(((784, 512), (512, 512), (512, 512))):
        h = b.unary("Relu", "relu%d" % (i + 1), b.matmul("l%d" % (i + 1), h, n_in, n_out))
    b.matmul("l4", h, 512, CLASSES, out="logits")
    return b.model("wide", ["N", 784], "Fashion-MNIST wide MatMul chain 784-512-512-512-10")


def build_grouped(seed):
    """x [N,784] as [N,784,1,1] -> 3 x (Conv 1x1 of 2 groups, Relu) -> Flatten -> MatMul 512x10."""
    b = Builder(np.random.default_rng(seed))
    b.inits.append(numpy_helper.from_array(np.array([-1, 784, 1, 1], dtype=np.int64), "to_4d"))
    b.nodes.append(helper.make_node("Reshape", ["x", "to_4d"], ["x4"], name="to_4d"))
    h = "x4"
    for i, (c_in, c_out) in enumerate(((784, 512), (512, 512), (512, 512))):
        name = "g%d" % (i + 1)
        w = b.param(name + ".weight", (c_out, c_in // 2, 1, 1), c_in // 2)
        bias = b.param(name + ".bias", (c_out,), c_in // 2)
        b.nodes.append(helper.make_node("Conv", [h, w, bias], [name + ".out"], name=name, kernel_shape=[1, 1],
                                        pads=[0, 0, 0, 0], strides=[1, 1], dilations=[1, 1], group=2))
        h = b.unary("Relu", "relu%d" % (i + 1), name + ".out")
    h = b.unary("Flatten", "flat", h, axis=1)
    b.matmul("l4", h, 512, CLASSES, out="logits")
    return b.model("grouped", ["N", 784], "Fashion-MNIST grouped 1x1 Conv chain 784-512-512-512-10")


def build_cnn(seed):
    b = Builder(np.random.default_rng(seed))
    h = b.unary("Relu", "relu1", b.conv("conv1", "x", 1, 32))
    h = b.unary("MaxPool", "pool1", h, kernel_shape=[2, 2], strides=[2, 2])
    h = b.unary("Relu", "relu2", b.conv("conv2", h, 32, 64))
    h = b.unary("MaxPool", "pool2", h, kernel_shape=[2, 2], strides=[2, 2])
    h = b.unary("Flatten", "flatten", h, axis=1)
    h = b.unary("Relu", "relu3", b.linear("fc1", h, 64 * 7 * 7, 128))
    b.linear("fc2", h, 128, CLASSES, out="logits")
    return b.model("cnn", ["N", 1, 28, 28], "Fashion-MNIST CNN (2 conv, 2 fc)")


def build_resnet(seed):
    b = Builder(np.random.default_rng(seed))
    h = b.conv_bn("stem", "x", 1, 32)                                    # 32 x 28 x 28
    h = b.unary("MaxPool", "pool", h, kernel_shape=[2, 2], strides=[2, 2])  # 32 x 14 x 14
    h = b.res_block("layer1", h, 32, 32, 1)
    h = b.res_block("layer2", h, 32, 64, 2)                              # 64 x 7 x 7
    h = b.res_block("layer3", h, 64, 64, 1)
    h = b.unary("GlobalAveragePool", "gap", h)
    h = b.unary("Flatten", "flatten", h, axis=1)
    b.linear("fc", h, 64, CLASSES, out="logits")
    return b.model("resnet", ["N", 1, 28, 28], "Fashion-MNIST ResNet-style CNN (3 basic blocks, BatchNorm)")


def build_masked(seed):
    """torch.ones(x.shape[0], 1) and x.new_zeros(x.size(0), 32) as PyTorch
    1.13 exports them: Shape -> Gather -> Unsqueeze -> Concat ->
    ConstantOfShape, a per-sample mask and an initial state built from the
    batch size."""
    b = Builder(np.random.default_rng(seed))
    h = b.linear("fc1", "x", 784, 32)
    b.inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "batch.index"))
    b.inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "batch.axes"))
    b.nodes.append(helper.make_node("Shape", ["x"], ["x.shape"], name="x.shape"))
    b.nodes.append(helper.make_node("Gather", ["x.shape", "batch.index"], ["batch"], name="batch", axis=0))
    b.nodes.append(helper.make_node("Unsqueeze", ["batch", "batch.axes"], ["batch.vec"], name="batch.vec"))
    made = {}
    for name, cols, fill in (("mask", 1, 1.0), ("state", 32, 0.0)):
        b.inits.append(numpy_helper.from_array(np.array([cols], dtype=np.int64), name + ".cols"))
        b.nodes.append(helper.make_node("Concat", ["batch.vec", name + ".cols"], [name + ".shape"],
                                        name=name + ".shape", axis=0))
        value = helper.make_tensor(name + ".value", TensorProto.FLOAT, [1], [fill])
        b.nodes.append(helper.make_node("ConstantOfShape", [name + ".shape"], [name], name=name, value=value))
        made[name] = name
    b.nodes.append(helper.make_node("Mul", [h, made["mask"]], ["masked"], name="masked"))
    h = b.unary("Relu", "relu1", b.add("with_state", "masked", made["state"]))
    b.linear("fc2", h, 32, CLASSES, out="logits")
    return b.model("masked", ["N", 784], "Fashion-MNIST MLP 784-32-10 with a batch-shaped mask and state")


def build_picked(seed):
    """A value the loss reads only through a non-differentiable input
    (ArgMax's scores), and an output head the loss does not read."""
    b = Builder(np.random.default_rng(seed))
    h = b.unary("Relu", "relu1", b.linear("fc1", "x", 784, 32))
    scores = b.matmul("score", h, 32, 32)
    b.nodes.append(helper.make_node("ArgMax", [scores], ["pick"], name="pick", axis=1, keepdims=1))
    b.nodes.append(helper.make_node("GatherElements", [h, "pick"], ["picked"], name="picked", axis=1))
    b.nodes.append(helper.make_node("Mul", [h, "picked"], ["scaled"], name="scaled"))
    b.linear("fc2", b.add("mixed", h, "scaled"), 32, CLASSES, out="logits")
    b.linear("aux", h, 32, 4, out="aux")
    return b.model("picked", ["N", 784], "Fashion-MNIST MLP 784-32-10 with an ArgMax pick and an unused head",
                   extra=(("aux", 4),))


def build_weighted(seed):
    """A weighted and ignore_index mean loss of the model's own: its mean
    is over the whole batch's label weights."""
    b = Builder(np.random.default_rng(seed))
    h = b.unary("Relu", "relu1", b.linear("fc1", "x", 784, 32))
    b.linear("fc2", h, 32, CLASSES, out="logits")
    b.inits.append(numpy_helper.from_array(np.linspace(0.5, 1.5, CLASSES).astype(np.float32), "class_weights"))
    b.nodes.append(helper.make_node("SoftmaxCrossEntropyLoss", ["logits", "labels", "class_weights"], ["loss"],
                                    name="loss", ignore_index=3))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784]),
              helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])]
    outs = [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])]
    graph = helper.make_graph(b.nodes, "weighted", inputs, outs, b.inits)
    m = helper.make_model(graph, producer_name="trainyard-gen_models", producer_version="1",
                          doc_string="Fashion-MNIST MLP 784-32-10 with a class-weighted, ignore_index loss",
                          opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(m, full_check=True)
    return m


def build_skip(seed):
    """A residual skip over a block: h = fc1(x) read by fc2 and by the Add
    after fc3."""
    b = Builder(np.random.default_rng(seed))
    h = b.linear("fc1", "x", 784, 32)
    inner = b.linear("fc3", b.unary("Relu", "relu2", b.linear("fc2", h, 32, 32)), 32, 32)
    b.linear("fc4", b.add("residual", h, inner), 32, CLASSES, out="logits")
    return b.model("skip", ["N", 784], "Fashion-MNIST MLP 784-32-32-32-10 with a residual skip")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="directory to write mlp.onnx, cnn.onnx and wide.onnx into")
    ap.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, build in (("mlp", build_mlp), ("cnn", build_cnn), ("wide", build_wide), ("resnet", build_resnet),
                        ("masked", build_masked), ("picked", build_picked), ("weighted", build_weighted),
                        ("grouped", build_grouped), ("skip", build_skip)):
        path = os.path.join(args.out_dir, name + ".onnx")
        tmp = path + ".tmp"
        onnx.save(build(args.seed), tmp)
        onnx.checker.check_model(tmp)  # the file as written, not just the object
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
