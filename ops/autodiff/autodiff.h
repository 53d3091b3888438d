/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/autodiff: reverse-mode differentiation over the graph IR.
 *
 * ty_autodiff appends to a graph the nodes computing d loss / d param for a
 * scalar loss value and a list of parameters (usually the trainable float
 * initializers). Running the extended graph once with ops/exec computes the
 * forward pass, the loss and every gradient; forward activations are
 * read by the backward nodes through the executor's kept values.
 *
 * Backward nodes are ordinary IR nodes so fusion and memory planning see
 * them like any other:
 *   - existing ops where one does the job: Gemm (with transA/transB) for
 *     Gemm's A and B, Transpose with the inverse perm, Add to accumulate the
 *     gradient of a value read by several nodes;
 *   - otherwise one TyGrad node per (forward node, input): gradients of
 *     elementwise ops (undoing broadcasting), Softmax/LogSoftmax,
 *     SoftmaxCrossEntropyLoss, Conv (data, filter, bias), pooling,
 *     normalisation, Dropout (through its mask, which autodiff adds to the
 *     forward node when absent), the shape ops, Concat, Gather, reductions,
 *     MatMul (rank >= 2); one node with an output per input instead for
 *     the recurrent ops and for a LayerNormalization marked with
 *     TY_AUTODIFF_LN_ONE_GRAD (below).
 * A TyExtern node (an op the executor's caller computes, ops/exec.h) is
 * differentiated into another TyExtern node: the caller computes both.
 * TyGrad (TY_OP_GRAD) is not an ONNX op: export the forward graph, not the
 * differentiated one, when writing a model.
 *
 * Differentiable: every float op of ops/graph.h except Constant. Inputs
 * that carry no gradient: indices, labels, shapes, axes, dropout ratio,
 * BatchNormalization's running statistics, the inputs of the random
 * generators (RandomNormalLike, Bernoulli, ...: their draws are constants
 * of the backward pass). A parameter the loss does not
 * depend on gets TY_NO_VALUE.
 */
#ifndef TY_OPS_AUTODIFF_AUTODIFF_H
#define TY_OPS_AUTODIFF_AUTODIFF_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>

/* Differentiates loss (a float value of one element, e.g. the scalar output
 * of SoftmaxCrossEntropyLoss) with respect to params[0..n_params), which
 * must be float values (initializers or graph inputs). Appends the backward
 * nodes to g, re-runs shape inference, and writes the gradient value id of
 * each param (same shape as the param) to out_grads[i], or TY_NO_VALUE.
 * The gradient values are marked as graph outputs.
 * Errors: TY_EINVAL (loss not a one-element float, bad param id) and
 * TY_EUNSUPPORTED (a node on the path has no gradient rule, e.g. 1-D MatMul
 * or a gradient flowing into an op's secondary output), naming the node.
 * On error g may hold some appended nodes; discard it. */
int ty_autodiff(ty_graph *g, int loss, const int *params, size_t n_params, int *out_grads,
                char *err, size_t err_len);

/* True when a gradient flows into forward input `input` of op (false for
 * labels, shapes, axes, indices, running statistics). The one rule autodiff
 * follows; the planner's cost model reads it too, so both agree on which
 * tensors have gradients. */
bool ty_autodiff_input_differentiable(ty_op op, int input);

/* The forward op a TyGrad node differentiates, or -1 when n is not one (or
 * carries no valid op). Backends pick the backward kernel by it. */
int ty_autodiff_grad_forward_op(const ty_graph_node *n);

/* Internal attribute (int, not ONNX) on a LayerNormalization node: when
 * non-zero and more than one of its inputs wants a gradient, autodiff
 * emits one TyGrad node giving dX, dScale and dB in one sweep of X and dY
 * instead of a node per input. The CPU executor only (the CUDA backend
 * and the parallel plans read a TyGrad node per input): set it with
 * ty_autodiff_one_grad_layer_norm on a training graph that is never
 * exported. */
#define TY_AUTODIFF_LN_ONE_GRAD "ty_ln_one_grad"

/* Marks every LayerNormalization node of g with TY_AUTODIFF_LN_ONE_GRAD
 * before ty_autodiff runs; *marked: how many. 0 or TY_ENOMEM. */
int ty_autodiff_one_grad_layer_norm(ty_graph *g, size_t *marked);

#endif
