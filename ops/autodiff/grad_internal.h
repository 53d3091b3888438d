/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/autodiff shared by its files: the layout of the TyGrad
 * node and the per-family backward kernels.
 *
 * A TyGrad node computes the gradient of the loss with respect to ONE input
 * of ONE forward node. Its inputs are
 *   [0]                      dY, the gradient of the forward output 0
 *   [1 .. 1+n_fwd_in)        the forward node's inputs (TY_NO_VALUE kept)
 *   [1+n_fwd_in .. end)      the forward node's outputs (TY_NO_VALUE kept)
 * and its attributes are the forward node's (so window and axis helpers
 * read them unchanged) plus fwd_op (the forward ty_op), wrt (which forward
 * input), n_fwd_in and, for ops whose every output carries a gradient
 * (Split and the recurrent ops), out: which forward output dY belongs to (default 0). Its opset
 * is the forward node's. The single output has the dtype and shape of
 * forward input wrt. For the ops whose backward computes every input's
 * gradient in one pass (the recurrent ops, ty__grad_all_inputs, and a
 * marked LayerNormalization, ty__grad_all_inputs_node), the node
 * may instead have n_fwd_in outputs: output i is the gradient of forward
 * input i (TY_NO_VALUE where none is wanted), and wrt names one of them.
 */
#ifndef TY_OPS_AUTODIFF_GRAD_INTERNAL_H
#define TY_OPS_AUTODIFF_GRAD_INTERNAL_H

#include "ops/autodiff/autodiff.h"
#include "ops/ops_internal.h"

#define TY__GRAD_FWD_OP "fwd_op"
#define TY__GRAD_WRT "wrt"
#define TY__GRAD_NFI "n_fwd_in"
#define TY__GRAD_OUT "out"

/* A decoded TyGrad node as the kernels see it. */
typedef struct ty__gctx {
  const ty_graph_node *n;
  ty_op op; /* forward op */
  int wrt;  /* forward input index */
  const ty_tensor *dy;
  const ty_tensor *const *x; /* forward inputs (NULL when absent) */
  int nx;
  const ty_tensor *const *y; /* forward outputs (NULL when absent) */
  int ny;
  ty_tensor *dx;         /* the output, zero-filled */
  ty_tensor *const *dxs; /* with ty__grad_all_inputs: ndx outputs, dxs[i] for input i or NULL */
  int ndx;
  bool training;
  int out;             /* the forward output dy belongs to */
  ty_workers *workers; /* the executor's threads (ops/workers.c); NULL: the caller only */
} ty__gctx;

/* True if forward input i of op carries a gradient (labels, shapes, axes,
 * indices and running statistics do not). */
bool ty__grad_differentiable(ty_op op, int i);
/* True for ops whose every output, not only output 0, carries a gradient. */
bool ty__grad_multi_output(ty_op op);
/* True for ops whose TyGrad node gives every input's gradient at once. */
bool ty__grad_all_inputs(ty_op op);
/* The same for forward node n of op (or a TyGrad node of forward op op,
 * which carries n's attributes): also a LayerNormalization marked with
 * TY_AUTODIFF_LN_ONE_GRAD (autodiff.h). */
bool ty__grad_all_inputs_node(ty_op op, const ty_graph_node *n);
/* Why op cannot be differentiated with respect to input wrt with these
 * attributes (a message), or NULL when it can. */
const char *ty__grad_refusal(const ty_graph_node *n, int wrt, const ty_shape *const *in_shapes);

/* Backward kernels by family (kernels_grad.c, kernels_grad_nn.c). */
int ty__g_binary(ty__gctx *c);
int ty__g_unary(ty__gctx *c);
int ty__g_softmax(ty__gctx *c);
int ty__g_sce(ty__gctx *c);
int ty__g_reshape(ty__gctx *c);
int ty__g_concat(ty__gctx *c);
int ty__g_gather(ty__gctx *c);
int ty__g_reduce(ty__gctx *c);
int ty__g_gemm_bias(ty__gctx *c);
int ty__g_matmul(ty__gctx *c);
int ty__g_conv(ty__gctx *c);
int ty__g_pool(ty__gctx *c);
int ty__g_global_pool(ty__gctx *c);
int ty__g_batch_norm(ty__gctx *c);
int ty__g_layer_norm(ty__gctx *c);
int ty__g_dropout(ty__gctx *c);
/* kernels_grad_elem.c */
int ty__g_unary_ext(ty__gctx *c);
int ty__g_clip(ty__gctx *c);
int ty__g_where(ty__gctx *c);
int ty__g_variadic(ty__gctx *c);
/* kernels_grad_index.c */
int ty__g_slice(ty__gctx *c);
int ty__g_split(ty__gctx *c);
int ty__g_expand(ty__gctx *c);
int ty__g_tile(ty__gctx *c);
int ty__g_pad(ty__gctx *c);
int ty__g_trilu(ty__gctx *c);
int ty__g_gather_elements(ty__gctx *c);
int ty__g_gather_nd(ty__gctx *c);
int ty__g_top_k(ty__gctx *c);
int ty__g_scatter(ty__gctx *c);
int ty__g_depth_space(ty__gctx *c);
int ty__g_resize(ty__gctx *c);
int ty__g_cumsum(ty__gctx *c);
/* kernels_grad_layers.c */
int ty__g_reduce_ext(ty__gctx *c);
int ty__g_conv_transpose(ty__gctx *c);
int ty__g_einsum(ty__gctx *c);
int ty__g_nll(ty__gctx *c);
int ty__g_global_max_pool(ty__gctx *c);
int ty__g_instance_norm(ty__gctx *c);
/* kernels_grad_norm.c */
int ty__g_lrn(ty__gctx *c);
int ty__g_mvn(ty__gctx *c);
/* kernels_grad_sample.c */
int ty__g_grid_sample(ty__gctx *c);
/* kernels_grad_rnn.c: LSTM, GRU and RNN (backpropagation through time) */
int ty__g_rnn(ty__gctx *c);
/* Sums g (shaped like the broadcast out) into dx of shape x, accumulating
 * in double (undoing broadcasting). w, when not NULL, scales element i. */
int ty__g_unbroadcast(const ty_tensor *g, const ty_shape *x_shape, ty_tensor *dx);

#endif
