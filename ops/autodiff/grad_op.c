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

#include "lib/base/base.h"

#include <string.h>

bool ty__grad_differentiable(ty_op op, int i) {
  switch (op) {
  case TY_OP_GATHER: case TY_OP_RESHAPE: case TY_OP_SQUEEZE: case TY_OP_UNSQUEEZE:
  case TY_OP_REDUCE_MEAN: case TY_OP_REDUCE_SUM: case TY_OP_DROPOUT: case TY_OP_SOFTMAX_CE_LOSS:
    return i == 0;
  case TY_OP_BATCH_NORM: return i <= 2;
  case TY_OP_CONSTANT: return false;
  case TY_OP_GEMM: case TY_OP_CONV: case TY_OP_LAYER_NORM: return i <= 2;
  case TY_OP_ADD: case TY_OP_SUB: case TY_OP_MUL: case TY_OP_DIV: case TY_OP_POW: case TY_OP_MATMUL:
    return i <= 1;
  case TY_OP_CONCAT: return true;
  default:
    return i == 0 && (int)op >= 0 && op < TY_OP_COUNT_ && op != TY_OP_GRAD;
  }
}

typedef struct decoded {
  ty_op op;
  int wrt, nfi;
} decoded;

static int decode(const ty_graph_node *n, decoded *d, char *err, size_t err_len) {
  int64_t op = ty_graph_node_attr_int(n, TY__GRAD_FWD_OP, -1), wrt = ty_graph_node_attr_int(n, TY__GRAD_WRT, -1);
  int64_t nfi = ty_graph_node_attr_int(n, TY__GRAD_NFI, -1);
  if (op < 0 || op >= TY_OP_COUNT_ || op == TY_OP_GRAD)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute fwd_op=%lld is not a forward op", (long long)op);
  if (nfi < 1 || nfi > n->n_inputs - 1 || n->n_outputs != 1)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute n_fwd_in=%lld does not fit %d inputs", (long long)nfi,
                        n->n_inputs);
  if (wrt < 0 || wrt >= nfi || !ty__grad_differentiable((ty_op)op, (int)wrt))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute wrt=%lld: %s has no gradient for that input",
                        (long long)wrt, ty_op_name((ty_op)op));
  d->op = (ty_op)op;
  d->wrt = (int)wrt;
  d->nfi = (int)nfi;
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
  if (nfo < 1 || nfo > 16) return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "bad forward output count");
  ty__infer fic = {.node = &fwd, .n_in = d.nfi, .in_dt = ic->in_dt + 1, .in_shape = ic->in_shape + 1,
                   .in_val = ic->in_val + 1, .n_out = nfo, .out_dt = odt, .out_shape = osh,
                   .err = ic->err, .err_len = ic->err_len};
  if ((rc = ty__infer_node(&fic)) != 0) return rc;
  if (ic->in_dt[0] != TY_DTYPE_F32 || !shape_same(&ic->in_shape[0], &osh[0]))
    return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "dY does not match forward output 0");
  for (int i = 0; i < nfo; i++) {
    int at = 1 + d.nfi + i;
    if (ic->in_dt[at] == TY_DTYPE_INVALID) continue;
    if (ic->in_dt[at] != odt[i] || !shape_same(&ic->in_shape[at], &osh[i]))
      return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "forward output %d does not match its inference", i);
  }
  if (ic->in_dt[1 + d.wrt] != TY_DTYPE_F32)
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED, "gradient of a non-float input");
  if (ic->n_out >= 1) {
    ic->out_dt[0] = TY_DTYPE_F32;
    ic->out_shape[0] = ic->in_shape[1 + d.wrt];
  }
  return 0;
}

int ty__k_grad(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  decoded d;
  if (!out[0]) return 0;
  if (decode(n, &d, NULL, 0) != 0) return TY_EINTERNAL;
  ty__gctx c = {.n = n, .op = d.op, .wrt = d.wrt, .dy = in[0], .x = in + 1, .nx = d.nfi,
                .y = in + 1 + d.nfi, .ny = n->n_inputs - 1 - d.nfi, .dx = out[0], .training = ctx->training};
  switch (d.op) {
  case TY_OP_ADD: case TY_OP_SUB: case TY_OP_MUL: case TY_OP_DIV: case TY_OP_POW: return ty__g_binary(&c);
  case TY_OP_RELU: case TY_OP_LEAKY_RELU: case TY_OP_SIGMOID: case TY_OP_TANH: case TY_OP_ERF:
  case TY_OP_SQRT: case TY_OP_EXP: case TY_OP_LOG: case TY_OP_NEG: case TY_OP_IDENTITY: return ty__g_unary(&c);
  case TY_OP_SOFTMAX: case TY_OP_LOG_SOFTMAX: return ty__g_softmax(&c);
  case TY_OP_SOFTMAX_CE_LOSS: return ty__g_sce(&c);
  case TY_OP_FLATTEN: case TY_OP_RESHAPE: case TY_OP_SQUEEZE: case TY_OP_UNSQUEEZE: return ty__g_reshape(&c);
  case TY_OP_CONCAT: return ty__g_concat(&c);
  case TY_OP_GATHER: return ty__g_gather(&c);
  case TY_OP_REDUCE_MEAN: case TY_OP_REDUCE_SUM: return ty__g_reduce(&c);
  case TY_OP_GEMM: return ty__g_gemm_bias(&c);
  case TY_OP_MATMUL: return ty__g_matmul(&c);
  case TY_OP_CONV: return ty__g_conv(&c);
  case TY_OP_MAX_POOL: case TY_OP_AVERAGE_POOL: return ty__g_pool(&c);
  case TY_OP_GLOBAL_AVERAGE_POOL: return ty__g_global_pool(&c);
  case TY_OP_BATCH_NORM: return ty__g_batch_norm(&c);
  case TY_OP_LAYER_NORM: return ty__g_layer_norm(&c);
  case TY_OP_DROPOUT: return ty__g_dropout(&c);
  default: return TY_EUNSUPPORTED;
  }
}
