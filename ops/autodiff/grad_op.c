/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TyGrad op: shape inference and kernel dispatch (see grad_internal.h
 * for the node layout).
 *
 * Inference re-runs the forward op's own inference on the forward inputs
 * the node carries, then checks dY and every forward output against it, so
 * the backward kernels may assume exactly what the forward kernels assume.
 * That also makes a TyGrad node smuggled into an imported model harmless: it
 * is validated like any other node.
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <string.h>

int ty_autodiff_grad_forward_op(const ty_graph_node *n) {
  if (n->op != TY_OP_GRAD) return -1;
  int64_t op = ty_graph_node_attr_int(n, TY__GRAD_FWD_OP, -1);
  return op >= 0 && op < TY_OP_COUNT_ && op != TY_OP_GRAD ? (int)op : -1;
}

bool ty_autodiff_input_differentiable(ty_op op, int i) {
  return ty__grad_differentiable(op, i);
}

bool ty__grad_differentiable(ty_op op, int i) {
  /* Random draws are constants of the backward pass (ops/kernels/random.c). */
  if (ty_op_is_random(op)) return false;
  if (ty_op_is_reduce(op)) return i == 0; /* not their axes */
  switch (op) {
  case TY_OP_GATHER:
  case TY_OP_RESHAPE:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
  case TY_OP_DROPOUT:
  case TY_OP_SOFTMAX_CE_LOSS:
  case TY_OP_NLL_LOSS:
  case TY_OP_SLICE:
  case TY_OP_SPLIT:
  case TY_OP_EXPAND:
  case TY_OP_TILE:
  case TY_OP_PAD:
  case TY_OP_TRILU:
  case TY_OP_GATHER_ELEMENTS:
  case TY_OP_GATHER_ND:
  case TY_OP_TOP_K:
  case TY_OP_CUMSUM:
  case TY_OP_CLIP:
  case TY_OP_CAST:
  case TY_OP_CAST_LIKE:
  case TY_OP_SOFTMAX: /* input 1: a folded mask (ops/fold_softmax.h) */
    return i == 0;
  case TY_OP_BATCH_NORM:
    return i <= 2;
  case TY_OP_GEMM:
  case TY_OP_CONV:
  case TY_OP_LAYER_NORM:
  case TY_OP_CONV_TRANSPOSE:
  case TY_OP_INSTANCE_NORM:
    return i <= 2;
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_POW:
  case TY_OP_MATMUL:
  case TY_OP_PRELU:
  case TY_OP_MOD:
  case TY_OP_GRID_SAMPLE:
    return i <= 1;
  case TY_OP_WHERE:
    return i == 1 || i == 2;
  case TY_OP_LSTM:
  case TY_OP_GRU:
  case TY_OP_RNN:
    return i != 4; /* sequence_lens */
  case TY_OP_SCATTER_ND:
  case TY_OP_SCATTER_ELEMENTS:
  case TY_OP_SCATTER:
    return i == 0 || i == 2;
  case TY_OP_CONCAT:
  case TY_OP_MAX:
  case TY_OP_MIN:
  case TY_OP_SUM:
  case TY_OP_MEAN:
  case TY_OP_EINSUM:
    return true;
  /* Integer, boolean and index results carry no gradient. */
  case TY_OP_CONSTANT:
  case TY_OP_GRAD:
  case TY_OP_SHAPE:
  case TY_OP_SIZE:
  case TY_OP_BIT_SHIFT:
  case TY_OP_AND:
  case TY_OP_OR:
  case TY_OP_XOR:
  case TY_OP_NOT:
  case TY_OP_EQUAL:
  case TY_OP_LESS:
  case TY_OP_GREATER:
  case TY_OP_LESS_EQUAL:
  case TY_OP_GREATER_EQUAL:
  case TY_OP_IS_NAN:
  case TY_OP_IS_INF:
  case TY_OP_RANGE:
  case TY_OP_CONSTANT_OF_SHAPE:
  case TY_OP_EYE_LIKE:
  case TY_OP_ONE_HOT:
  case TY_OP_ARG_MAX:
  case TY_OP_ARG_MIN:
  case TY_OP_HARDMAX:
    return false;
  default:
    return i == 0 && (int)op >= 0 && op < TY_OP_COUNT_;
  }
}

bool ty__grad_all_inputs(ty_op op) {
  return op == TY_OP_LSTM || op == TY_OP_GRU || op == TY_OP_RNN;
}

bool ty__grad_all_inputs_node(ty_op op, const ty_graph_node *n) {
  return ty__grad_all_inputs(op) ||
         (op == TY_OP_LAYER_NORM && ty_graph_node_attr_int(n, TY_AUTODIFF_LN_ONE_GRAD, 0) != 0);
}

bool ty__grad_multi_output(ty_op op) {
  return op == TY_OP_SPLIT || op == TY_OP_LSTM || op == TY_OP_GRU || op == TY_OP_RNN;
}

const char *ty__grad_refusal(const ty_graph_node *n, int wrt, const ty_shape *const *in_shapes) {
  (void)wrt; /* every input of the ops below that has a gradient has it whatever the shapes */
  (void)in_shapes;
  switch (n->op) {
  case TY_OP_SCATTER_ND:
  case TY_OP_SCATTER_ELEMENTS: {
    const char *r = ty_graph_node_attr_string(n, "reduction", "none");
    if (strcmp(r, "none") != 0 && strcmp(r, "add") != 0)
      return "no gradient for reduction mul, max or min";
    return NULL;
  }
  default:
    return NULL;
  }
}

typedef struct decoded {
  ty_op op;
  int wrt, nfi, out;
} decoded;

static int decode(const ty_graph_node *n, decoded *d, char *err, size_t err_len) {
  int64_t op = ty_graph_node_attr_int(n, TY__GRAD_FWD_OP, -1),
          wrt = ty_graph_node_attr_int(n, TY__GRAD_WRT, -1);
  int64_t nfi = ty_graph_node_attr_int(n, TY__GRAD_NFI, -1);
  if (op < 0 || op >= TY_OP_COUNT_ || op == TY_OP_GRAD)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute fwd_op=%lld is not a forward op",
                        (long long)op);
  bool all = ty__grad_all_inputs_node((ty_op)op, n) && n->n_outputs == nfi;
  if (nfi < 1 || nfi > n->n_inputs - 1 || (n->n_outputs != 1 && !all))
    return ty__node_err(err, err_len, n, TY_EINVAL,
                        "attribute n_fwd_in=%lld does not fit %d inputs", (long long)nfi,
                        n->n_inputs);
  if (wrt < 0 || wrt >= nfi || !ty__grad_differentiable((ty_op)op, (int)wrt))
    return ty__node_err(err, err_len, n, TY_EINVAL,
                        "attribute wrt=%lld: %s has no gradient for that input", (long long)wrt,
                        ty_op_name((ty_op)op));
  int64_t out = ty_graph_node_attr_int(n, TY__GRAD_OUT, 0);
  if (out < 0 || out >= n->n_inputs - 1 - nfi || (out > 0 && !ty__grad_multi_output((ty_op)op)))
    return ty__node_err(err, err_len, n, TY_EINVAL,
                        "attribute out=%lld is not an output with a gradient", (long long)out);
  d->op = (ty_op)op;
  d->wrt = (int)wrt;
  d->nfi = (int)nfi;
  d->out = (int)out;
  return 0;
}

static bool shape_same(const ty_shape *a, const ty_shape *b) {
  if (a->rank < 0 || b->rank < 0) return true;
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i]) return false;
  return true;
}

int ty__infer_grad(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  decoded d;
  int rc = decode(n, &d, ic->err, ic->err_len);
  if (rc != 0) return rc;
  int nfo = n->n_inputs - 1 - d.nfi;
  ty_graph_node fwd = *n;
  fwd.op = d.op;
  fwd.n_inputs = d.nfi;
  fwd.inputs = n->inputs + 1;
  fwd.n_outputs = nfo;
  fwd.outputs = n->inputs + 1 + d.nfi;
  ty_dtype odt[16];
  ty_shape osh[16];
  if (nfo < 1 || nfo > 16)
    return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "bad forward output count");
  ty__infer fic = {.node = &fwd,
                   .n_in = d.nfi,
                   .in_dt = ic->in_dt + 1,
                   .in_shape = ic->in_shape + 1,
                   .in_val = ic->in_val + 1,
                   .in_sym = ic->in_sym ? ic->in_sym + 1 : NULL,
                   .n_out = nfo,
                   .out_dt = odt,
                   .out_shape = osh,
                   .err = ic->err,
                   .err_len = ic->err_len};
  if ((rc = ty__infer_node(&fic)) != 0) return rc;
  if (ic->in_dt[0] != TY_DTYPE_F32 || !shape_same(&ic->in_shape[0], &osh[d.out]))
    return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "dY does not match forward output %d",
                        d.out);
  for (int i = 0; i < nfo; i++) {
    int at = 1 + d.nfi + i;
    if (ic->in_dt[at] == TY_DTYPE_INVALID) continue;
    if (ic->in_dt[at] != odt[i] || !shape_same(&ic->in_shape[at], &osh[i]))
      return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL,
                          "forward output %d does not match its inference", i);
  }
  if (ic->in_dt[1 + d.wrt] != TY_DTYPE_F32)
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED, "gradient of a non-float input");
  if (ic->n_out == 1) {
    ic->out_dt[0] = TY_DTYPE_F32;
    ic->out_shape[0] = ic->in_shape[1 + d.wrt];
  }
  for (int i = 0; ic->n_out > 1 && i < ic->n_out; i++) { /* every input's (ty__grad_all_inputs) */
    ic->out_dt[i] = TY_DTYPE_F32;
    ic->out_shape[i] = ic->in_shape[1 + i];
  }
  return 0;
}

bool ty__grad_overwrites(const ty_graph_node *n) {
  decoded d = {.op = TY_OP_GRAD};
  if (n->op != TY_OP_GRAD || decode(n, &d, NULL, 0) != 0) return false;
  switch (d.op) {
  case TY_OP_RELU:
  case TY_OP_LEAKY_RELU:
  case TY_OP_SIGMOID:
  case TY_OP_TANH:
  case TY_OP_ERF:
  case TY_OP_SQRT:
  case TY_OP_EXP:
  case TY_OP_LOG:
  case TY_OP_NEG:
  case TY_OP_IDENTITY:
  case TY_OP_CONV:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_MATMUL:
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_POW:
  case TY_OP_PRELU:
  case TY_OP_MOD:
  case TY_OP_CAST:
  case TY_OP_CAST_LIKE:
  case TY_OP_FLATTEN:
  case TY_OP_RESHAPE:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
  case TY_OP_WHERE:
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
  case TY_OP_LAYER_NORM:
  case TY_OP_BATCH_NORM:
  case TY_OP_GLOBAL_AVERAGE_POOL:
  case TY_OP_SOFTMAX_CE_LOSS:
    return true;
  default:
    return false;
  }
}

int ty__k_grad(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  decoded d;
  bool any = false;
  for (int i = 0; i < n->n_outputs; i++)
    any |= out[i] != NULL;
  if (!any) return 0;
  if (decode(n, &d, NULL, 0) != 0) return TY_EINTERNAL;
  ty__gctx c = {.n = n,
                .op = d.op,
                .wrt = d.wrt,
                .dy = in[0],
                .x = in + 1,
                .nx = d.nfi,
                .y = in + 1 + d.nfi,
                .ny = n->n_inputs - 1 - d.nfi,
                .dx = out[0],
                .dxs = out,
                .ndx = n->n_outputs,
                .training = ctx->training,
                .out = d.out,
                .workers = ctx->workers};
  switch (d.op) {
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_POW:
  case TY_OP_PRELU:
  case TY_OP_MOD:
    return ty__g_binary(&c);
  case TY_OP_RELU:
  case TY_OP_LEAKY_RELU:
  case TY_OP_SIGMOID:
  case TY_OP_TANH:
  case TY_OP_ERF:
  case TY_OP_SQRT:
  case TY_OP_EXP:
  case TY_OP_LOG:
  case TY_OP_NEG:
  case TY_OP_IDENTITY:
    return ty__g_unary(&c);
  case TY_OP_CLIP:
    return ty__g_clip(&c);
  case TY_OP_CAST:
  case TY_OP_CAST_LIKE:
    return ty__g_reshape(&c); /* float to float: the identity */
  case TY_OP_WHERE:
    return ty__g_where(&c);
  case TY_OP_MAX:
  case TY_OP_MIN:
  case TY_OP_SUM:
  case TY_OP_MEAN:
    return ty__g_variadic(&c);
  case TY_OP_SLICE:
    return ty__g_slice(&c);
  case TY_OP_SPLIT:
    return ty__g_split(&c);
  case TY_OP_EXPAND:
    return ty__g_expand(&c);
  case TY_OP_TILE:
    return ty__g_tile(&c);
  case TY_OP_PAD:
    return ty__g_pad(&c);
  case TY_OP_TRILU:
    return ty__g_trilu(&c);
  case TY_OP_GATHER_ELEMENTS:
    return ty__g_gather_elements(&c);
  case TY_OP_GATHER_ND:
    return ty__g_gather_nd(&c);
  case TY_OP_TOP_K:
    return ty__g_top_k(&c);
  case TY_OP_SCATTER_ND:
  case TY_OP_SCATTER_ELEMENTS:
  case TY_OP_SCATTER:
    return ty__g_scatter(&c);
  case TY_OP_DEPTH_TO_SPACE:
  case TY_OP_SPACE_TO_DEPTH:
    return ty__g_depth_space(&c);
  case TY_OP_CUMSUM:
    return ty__g_cumsum(&c);
  case TY_OP_RESIZE:
  case TY_OP_UPSAMPLE:
    return ty__g_resize(&c);
  case TY_OP_REDUCE_MAX:
  case TY_OP_REDUCE_MIN:
  case TY_OP_REDUCE_PROD:
  case TY_OP_REDUCE_L1:
  case TY_OP_REDUCE_L2:
  case TY_OP_REDUCE_SUM_SQUARE:
  case TY_OP_REDUCE_LOG_SUM:
  case TY_OP_REDUCE_LOG_SUM_EXP:
    return ty__g_reduce_ext(&c);
  case TY_OP_CONV_TRANSPOSE:
    return ty__g_conv_transpose(&c);
  case TY_OP_EINSUM:
    return ty__g_einsum(&c);
  case TY_OP_LSTM:
  case TY_OP_GRU:
  case TY_OP_RNN:
    return ty__g_rnn(&c);
  case TY_OP_NLL_LOSS:
    return ty__g_nll(&c);
  case TY_OP_GLOBAL_MAX_POOL:
    return ty__g_global_max_pool(&c);
  case TY_OP_INSTANCE_NORM:
    return ty__g_instance_norm(&c);
  case TY_OP_LRN:
    return ty__g_lrn(&c);
  case TY_OP_MVN:
    return ty__g_mvn(&c);
  case TY_OP_GRID_SAMPLE:
    return ty__g_grid_sample(&c);
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
    return ty__g_softmax(&c);
  case TY_OP_SOFTMAX_CE_LOSS:
    return ty__g_sce(&c);
  case TY_OP_FLATTEN:
  case TY_OP_RESHAPE:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
    return ty__g_reshape(&c);
  case TY_OP_CONCAT:
    return ty__g_concat(&c);
  case TY_OP_GATHER:
    return ty__g_gather(&c);
  case TY_OP_REDUCE_MEAN:
  case TY_OP_REDUCE_SUM:
    return ty__g_reduce(&c);
  case TY_OP_GEMM:
    return ty__g_gemm_bias(&c);
  case TY_OP_MATMUL:
    return ty__g_matmul(&c);
  case TY_OP_CONV:
    return ty__g_conv(&c);
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
    return ty__g_pool(&c);
  case TY_OP_GLOBAL_AVERAGE_POOL:
    return ty__g_global_pool(&c);
  case TY_OP_BATCH_NORM:
    return ty__g_batch_norm(&c);
  case TY_OP_LAYER_NORM:
    return ty__g_layer_norm(&c);
  case TY_OP_DROPOUT:
    return ty__g_dropout(&c);
  default:
    return ty__g_unary_ext(&c); /* the other unary float ops */
  }
}
