/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's compute launchers: cuBLAS MatMul and Gemm, softmax
 * and log-softmax, the builtin loss, layer normalisation and embedding
 * Gather, each forward and backward (TyGrad), through ops/cuda's cuBLAS
 * wrapper and hand-written kernels. Each checks the concrete shapes first
 * and declines (TY__CX_DECLINED, nothing queued) what it does not handle.
 */
#include "ops/cuda/exec_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <cuda_runtime_api.h>
#include <string.h>

/* ---- MatMul ---------------------------------------------------------------- */
/* [..., m, k] x [..., k, n]: the batch counts of both operands. */
typedef struct mm_dims {
  int64_t m, k, n, ba, bb, by;
} mm_dims;

static int mm_dims_of(ty__cx_node *c, const ty_shape *a, const ty_shape *b, const ty_shape *y,
                      mm_dims *d) {
  if (a->rank < 2 || b->rank < 2) return ty__cx_decline(c, "MatMul with a 1-D operand");
  d->m = a->dims[a->rank - 2];
  d->k = a->dims[a->rank - 1];
  d->n = b->dims[b->rank - 1];
  if (d->m * d->k == 0 || d->k * d->n == 0 || d->m * d->n == 0)
    return ty__cx_decline(c, "MatMul with an empty matrix");
  d->ba = ty_shape_numel(a) / (d->m * d->k);
  d->bb = ty_shape_numel(b) / (d->k * d->n);
  d->by = ty_shape_numel(y) / (d->m * d->n);
  if (!(d->bb == 1 && d->ba == d->by) && !(d->ba == d->bb && d->ba == d->by) &&
      !(d->ba == 1 && d->bb == d->by))
    return ty__cx_decline(c, "MatMul with broadcast batch dims (%lld x %lld entries)",
                          (long long)d->ba, (long long)d->bb);
  return 0;
}

static int gemm(ty__cx_node *c, ty_cuda_gemm_args *g) {
  if (c->rc) return c->rc;
  return ty_cuda_gemm(c->e->blas, g, c->err, c->err_len);
}

static int run_matmul(ty__cx_node *c) {
  mm_dims d;
  int rc = mm_dims_of(c, &c->in_sh[0], &c->in_sh[1], &c->out_sh[0], &d);
  if (rc) return rc;
  ty_cuda_gemm_args g = {.m = d.m,
                         .n = d.n,
                         .k = d.k,
                         .batch = d.by,
                         .alpha = 1,
                         .beta = 0,
                         .lda = d.k,
                         .ldb = d.n,
                         .ldc = d.n,
                         .stride_a = d.ba == 1 ? 0 : d.m * d.k,
                         .stride_b = d.bb == 1 ? 0 : d.k * d.n,
                         .stride_c = d.m * d.n};
  if (d.bb == 1) { /* one B: A's entries are the rows of one matrix */
    g.m = d.m * d.ba;
    g.batch = 1;
    g.stride_a = g.stride_b = g.stride_c = 0;
  }
  g.a = ty__cx_din(c, 0);
  g.b = ty__cx_din(c, 1);
  g.c = ty__cx_dout(c, 0);
  return gemm(c, &g);
}

/* TyGrad of MatMul: inputs dY, A, B; dA = dY B^T, dB = A^T dY per entry. */
static int run_matmul_grad(ty__cx_node *c, int wrt) {
  mm_dims d;
  ty_shape ysh;
  if (!ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "MatMul gradient without its operands");
  ysh = c->in_sh[0];
  int rc = mm_dims_of(c, &c->in_sh[1], &c->in_sh[2], &ysh, &d);
  if (rc) return rc;
  if (d.ba == 1 && d.bb > 1) return ty__cx_decline(c, "MatMul gradient of a broadcast A");
  int64_t rows = d.bb == 1 ? d.m * d.ba : d.m, batch = d.bb == 1 ? 1 : d.by;
  ty_cuda_gemm_args g = {.batch = batch, .alpha = 1, .beta = 0};
  const float *dy = ty__cx_din(c, 0), *a = ty__cx_din(c, 1), *b = ty__cx_din(c, 2);
  if (wrt == 0) { /* dA [rows, k] = dY [rows, n] B^T */
    g = (ty_cuda_gemm_args){.trans_b = true,
                            .m = rows,
                            .n = d.k,
                            .k = d.n,
                            .batch = batch,
                            .alpha = 1,
                            .a = dy,
                            .b = b,
                            .lda = d.n,
                            .ldb = d.n,
                            .ldc = d.k,
                            .stride_a = d.m * d.n,
                            .stride_b = d.k * d.n,
                            .stride_c = d.m * d.k};
  } else { /* dB [k, n] = A^T [k, rows] dY [rows, n] */
    g = (ty_cuda_gemm_args){.trans_a = true,
                            .m = d.k,
                            .n = d.n,
                            .k = rows,
                            .batch = batch,
                            .alpha = 1,
                            .a = a,
                            .b = dy,
                            .lda = d.k,
                            .ldb = d.n,
                            .ldc = d.n,
                            .stride_a = d.m * d.k,
                            .stride_b = d.m * d.n,
                            .stride_c = d.k * d.n};
  }
  if (batch == 1) g.stride_a = g.stride_b = g.stride_c = 0;
  g.c = ty__cx_dout(c, 0);
  return gemm(c, &g);
}

/* ---- Gemm: Y = alpha op(A) op(B) + beta C ----------------------------------- */
typedef struct gemm_attrs {
  bool ta, tb;
  float alpha, beta;
  int64_t m, k, n;
} gemm_attrs;

static int gemm_attrs_of(ty__cx_node *c, const ty_shape *a, const ty_shape *b, gemm_attrs *o) {
  const ty_graph_node *n = c->n;
  o->ta = ty_graph_node_attr_int(n, "transA", 0) != 0;
  o->tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  o->alpha = ty_graph_node_attr_float(n, "alpha", 1.0f);
  o->beta = ty_graph_node_attr_float(n, "beta", 1.0f);
  if (a->rank != 2 || b->rank != 2) return ty__cx_decline(c, "Gemm on operands that are not 2-D");
  o->m = o->ta ? a->dims[1] : a->dims[0];
  o->k = o->ta ? a->dims[0] : a->dims[1];
  o->n = o->tb ? b->dims[0] : b->dims[1];
  return 0;
}

static int run_gemm(ty__cx_node *c) {
  gemm_attrs at;
  int rc = gemm_attrs_of(c, &c->in_sh[0], &c->in_sh[1], &at);
  if (rc) return rc;
  const ty_shape *cs = ty__cx_has_in(c, 2) ? &c->in_sh[2] : NULL;
  bool bias = cs && cs->rank == 1 && cs->dims[0] == at.n && at.beta == 1.0f;
  bool full = cs && ty_shape_equal(cs, &c->out_sh[0]);
  if (cs && !bias && !full)
    return ty__cx_decline(c, "Gemm with a C broadcast other than per column");
  ty_cuda_gemm_args g = {.trans_a = at.ta,
                         .trans_b = at.tb,
                         .m = at.m,
                         .n = at.n,
                         .k = at.k,
                         .batch = 1,
                         .alpha = at.alpha,
                         .beta = full ? at.beta : 0.0f,
                         .lda = c->in_sh[0].dims[1],
                         .ldb = c->in_sh[1].dims[1],
                         .ldc = at.n};
  g.a = ty__cx_din(c, 0);
  g.b = ty__cx_din(c, 1);
  const float *cv = cs ? ty__cx_din(c, 2) : NULL;
  g.c = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  if (bias) return ty_cuda_gemm_bias(c->e->blas, &g, cv, c->err, c->err_len);
  if (full && (rc = ty__cx_cuda_rc(c,
                                   (int)cudaMemcpyAsync(g.c, cv, (size_t)(at.m * at.n) * 4,
                                                        cudaMemcpyDeviceToDevice,
                                                        (cudaStream_t)c->e->stream),
                                   "Gemm's C")) != 0)
    return rc;
  return gemm(c, &g);
}

/* dC = beta * dY summed to C's shape: a [N] bias sums over rows. */
static int run_gemm_grad_c(ty__cx_node *c, const gemm_attrs *at) {
  const ty_shape *cs = &c->out_sh[0];
  if (ty_shape_equal(cs, &c->in_sh[0]) && at->beta == 1.0f)
    return ty__cx_launch_layout(c, TY_OP_IDENTITY, false, 0); /* a copy of dY */
  if (!(cs->rank == 1 && cs->dims[0] == at->n))
    return ty__cx_decline(c, "gradient of Gemm's C broadcast other than per column");
  ty_cuda_reduce r = {.n_keep = 1, .n_red = 1};
  r.keep_dims[0] = at->n;
  r.keep_strides[0] = 1;
  r.red_dims[0] = at->m;
  r.red_strides[0] = at->n;
  const float *dy = ty__cx_din(c, 0);
  float *dc = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_reduce_sum(c->e->kern, &r, at->beta, dy, dc, c->e->stream, c->err, c->err_len);
}

/* TyGrad of Gemm: inputs dY [m, n], A, B, C. */
static int run_gemm_grad(ty__cx_node *c, int wrt) {
  gemm_attrs at;
  if (!ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "Gemm gradient without its operands");
  int rc = gemm_attrs_of(c, &c->in_sh[1], &c->in_sh[2], &at);
  if (rc) return rc;
  if (wrt == 2) return run_gemm_grad_c(c, &at);
  if (at.ta) return ty__cx_decline(c, "gradient of Gemm with transA");
  const float *dy = ty__cx_din(c, 0), *a = ty__cx_din(c, 1), *b = ty__cx_din(c, 2);
  ty_cuda_gemm_args g = {.batch = 1, .alpha = at.alpha};
  if (wrt == 0) { /* dA [m, k] = alpha dY op(B)^T */
    g.m = at.m, g.n = at.k, g.k = at.n;
    g.a = dy, g.lda = at.n;
    g.b = b, g.trans_b = !at.tb, g.ldb = at.tb ? at.k : at.n;
    g.ldc = at.k;
  } else if (!at.tb) { /* dB [k, n] = alpha A^T dY */
    g.trans_a = true, g.m = at.k, g.n = at.n, g.k = at.m;
    g.a = a, g.lda = at.k, g.b = dy, g.ldb = at.n, g.ldc = at.n;
  } else { /* dB [n, k] = alpha dY^T A */
    g.trans_a = true, g.m = at.n, g.n = at.k, g.k = at.m;
    g.a = dy, g.lda = at.n, g.b = a, g.ldb = at.k, g.ldc = at.k;
  }
  g.c = ty__cx_dout(c, 0);
  return gemm(c, &g);
}

/* ---- softmax and the loss ---------------------------------------------------- */
static int run_softmax(ty__cx_node *c, bool log) {
  ty_cuda_rows r = ty__cx_rows_of(c, &c->in_sh[0]);
  const float *x = ty__cx_din(c, 0);
  float *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_softmax(c->e->kern, &r, x, y, log, c->err, c->err_len);
}

/* TyGrad of (Log)Softmax: inputs dY, X, Y. */
static int run_softmax_grad(ty__cx_node *c, bool log) {
  if (!ty__cx_has_in(c, 2)) return ty__cx_decline(c, "softmax gradient without the forward output");
  ty_cuda_rows r = ty__cx_rows_of(c, &c->in_sh[0]);
  const float *dy = ty__cx_din(c, 0), *y = ty__cx_din(c, 2);
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_softmax_bwd(c->e->kern, &r, y, dy, dx, log, c->err, c->err_len);
}

/* Per-row loss and softmax of logits (input li) against labels (input li
 * + 1) into scratch blocks; checks the labels. */
static int xent_rows(ty__cx_node *c, int li, float **loss, float **prob, ty_cuda_rows *r) {
  const ty_shape *x = &c->in_sh[li];
  if (x->rank != 2) return ty__cx_decline(c, "the loss over logits that are not [N, C]");
  if (c->in_dt[li + 1] != TY_DTYPE_I64)
    return ty__cx_decline(c, "the loss with labels that are not int64");
  ty_cuda_exec *e = c->e;
  *r = ty__cx_rows_of(c, x);
  const float *logits = ty__cx_din(c, li);
  const int64_t *labels = ty__cx_din(c, li + 1);
  if (c->rc) return c->rc;
  int rc =
      ty_cuda_alloc_get(e->alloc, (size_t)(r->rows ? r->rows : 1) * 4, e->stream, (void **)loss);
  if (rc == 0)
    rc = ty_cuda_alloc_get(e->alloc, (size_t)(ty_shape_numel(x) ? ty_shape_numel(x) : 1) * 4,
                           e->stream, (void **)prob);
  if (rc != 0) return ty_errf(c->err, c->err_len, rc, "no device memory for the loss");
  int64_t bad = 0;
  if ((rc = ty__cx_cuda_rc(c, (int)cudaMemsetAsync(e->bad, 0, sizeof bad, (cudaStream_t)e->stream),
                           "the label check")) != 0)
    return rc;
  rc = ty_cuda_xent(e->kern, r, logits, labels, *loss, *prob, e->bad, c->err, c->err_len);
  if (rc == 0)
    rc = ty__cx_cuda_rc(c,
                        (int)cudaMemcpyAsync(&bad, e->bad, sizeof bad, cudaMemcpyDeviceToHost,
                                             (cudaStream_t)e->stream),
                        "the label check");
  if (rc == 0)
    rc = ty__cx_cuda_rc(c, (int)cudaStreamSynchronize((cudaStream_t)e->stream), "the loss kernel");
  if (rc == 0 && bad)
    rc = ty_errf(c->err, c->err_len, TY_EINVAL, "label of row %lld is outside [0, %lld)",
                 (long long)(bad - 1), (long long)r->cols);
  return rc;
}

static int run_xent(ty__cx_node *c) {
  float *loss = NULL, *prob = NULL;
  ty_cuda_rows r;
  int rc = xent_rows(c, 0, &loss, &prob, &r);
  float *y = rc ? NULL : ty__cx_dout(c, 0);
  if (rc == 0 && c->rc) rc = c->rc;
  ty_cuda_reduce red = {.n_keep = 0, .n_red = 1};
  red.red_dims[0] = r.rows;
  red.red_strides[0] = 1;
  if (rc == 0)
    rc = ty_cuda_reduce_sum(c->e->kern, &red, r.rows ? 1.0f / (float)r.rows : 0.0f, loss, y,
                            c->e->stream, c->err, c->err_len);
  ty_cuda_alloc_put(c->e->alloc, loss);
  ty_cuda_alloc_put(c->e->alloc, prob);
  return rc;
}

/* TyGrad of the loss w.r.t. the logits: inputs dY (a scalar), logits, labels. */
static int run_xent_grad(ty__cx_node *c) {
  float *loss = NULL, *prob = NULL;
  ty_cuda_rows r;
  int rc = xent_rows(c, 1, &loss, &prob, &r);
  if (rc == 0) rc = ty__cx_host(c->e, c->n->inputs[0], c->err, c->err_len);
  const ty_tensor *dyt = rc == 0 ? c->e->v[c->n->inputs[0]].host : NULL;
  float *dx = rc == 0 ? ty__cx_dout(c, 0) : NULL;
  if (rc == 0 && c->rc) rc = c->rc;
  if (rc == 0) {
    float scale = ty_tensor_f32(dyt)[0] / (float)(r.rows ? r.rows : 1);
    rc = ty_cuda_xent_bwd(c->e->kern, &r, prob, ty__cx_din(c, 2), scale, dx, c->err, c->err_len);
  }
  ty_cuda_alloc_put(c->e->alloc, loss);
  ty_cuda_alloc_put(c->e->alloc, prob);
  return rc;
}

/* ---- LayerNormalization over the last axis ----------------------------------- */
/* x's rows and a scale of one value per column. */
static int ln_rows(ty__cx_node *c, const ty_shape *x, const ty_shape *gamma, ty_cuda_rows *r) {
  *r = ty__cx_rows_of(c, x);
  if (ty_shape_numel(gamma) != r->cols)
    return ty__cx_decline(c,
                          "LayerNormalization with a scale broadcast over more than the last axis");
  return 0;
}

/* Inputs X, Scale, B; outputs Y, Mean and InvStdDev (one per row, optional). */
static int run_layer_norm(ty__cx_node *c) {
  ty_cuda_rows r;
  int rc = ln_rows(c, &c->in_sh[0], &c->in_sh[1], &r);
  if (rc) return rc;
  if (ty__cx_has_in(c, 2) && ty_shape_numel(&c->in_sh[2]) != r.cols)
    return ty__cx_decline(c,
                          "LayerNormalization with a bias broadcast over more than the last axis");
  const float *x = ty__cx_din(c, 0), *gamma = ty__cx_din(c, 1),
              *beta = ty__cx_has_in(c, 2) ? ty__cx_din(c, 2) : NULL;
  float *y = ty__cx_dout(c, 0), *mean = NULL, *rstd = NULL;
  if (c->n->n_outputs > 1 && c->n->outputs[1] != TY_NO_VALUE) mean = ty__cx_dout(c, 1);
  if (c->n->n_outputs > 2 && c->n->outputs[2] != TY_NO_VALUE) rstd = ty__cx_dout(c, 2);
  if (c->rc) return c->rc;
  float eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  return ty_cuda_layer_norm(c->e->kern, &r, x, gamma, beta, eps, y, mean, rstd, c->err, c->err_len);
}

/* TyGrad of LayerNormalization: inputs dY, X, Scale, B. The row
 * statistics are recomputed (a forward pass into scratch), then the
 * backward kernel writes dX and adds into dScale or dB. */
static int run_layer_norm_grad(ty__cx_node *c, int wrt) {
  ty_cuda_rows r;
  if (wrt > 2 || !ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "LayerNormalization gradient");
  int rc = ln_rows(c, &c->in_sh[1], &c->in_sh[2], &r);
  if (rc) return rc;
  const float *dy = ty__cx_din(c, 0), *x = ty__cx_din(c, 1), *gamma = ty__cx_din(c, 2);
  float *out = ty__cx_dout(c, 0), *scratch = NULL;
  if (c->rc) return c->rc;
  ty_cuda_exec *e = c->e;
  size_t n = (size_t)(r.rows * r.cols), bytes = (2 * n + 2 * (size_t)r.rows) * sizeof(float);
  if ((rc = ty_cuda_alloc_get(e->alloc, bytes ? bytes : 4, e->stream, (void **)&scratch)) != 0)
    return ty_errf(c->err, c->err_len, rc, "no device memory for the layer norm gradient");
  float *y = scratch, *dx = wrt == 0 ? out : scratch + n, *mean = scratch + 2 * n,
        *rstd = mean + r.rows;
  float eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  rc = ty_cuda_layer_norm(e->kern, &r, x, gamma, NULL, eps, y, mean, rstd, c->err, c->err_len);
  if (rc == 0 && wrt > 0)
    rc =
        ty__cx_cuda_rc(c, (int)cudaMemsetAsync(out, 0, (size_t)r.cols * 4, (cudaStream_t)e->stream),
                       "the layer norm gradient");
  if (rc == 0)
    rc = ty_cuda_layer_norm_bwd(e->kern, &r, x, gamma, mean, rstd, dy, dx, wrt == 1 ? out : NULL,
                                wrt == 2 ? out : NULL, c->err, c->err_len);
  ty_cuda_alloc_put(e->alloc, scratch);
  return rc;
}

/* ---- Gather of table rows (embeddings) ------------------------------------------ */
/* The indices (on the host: integers are computed there) within [0, vocab);
 * a negative one, which ONNX wraps, declines to the CPU kernel. */
static int check_indices(ty__cx_node *c, int in, int64_t vocab) {
  const ty__cx_val *v = &c->e->v[c->n->inputs[in]];
  if (v->dt != TY_DTYPE_I64) return ty__cx_decline(c, "Gather with indices that are not int64");
  if (!v->host_ok) return ty__cx_decline(c, "Gather with indices on the device only");
  const int64_t *idx = v->host->data;
  for (int64_t i = 0; i < ty_shape_numel(&v->shape); i++)
    if (idx[i] < 0 || idx[i] >= vocab)
      return ty__cx_decline(c, "Gather index %lld outside [0, %lld)", (long long)idx[i],
                            (long long)vocab);
  return 0;
}

/* Inputs table [V, D], indices; output [indices..., D]. */
static int run_gather(ty__cx_node *c) {
  const ty_shape *t = &c->in_sh[0];
  if (t->rank != 2 || ty_graph_node_attr_int(c->n, "axis", 0) != 0)
    return ty__cx_decline(c, "Gather other than rows of a 2-D table");
  int rc = check_indices(c, 1, t->dims[0]);
  if (rc) return rc;
  ty_cuda_rows r = {ty_shape_numel(&c->in_sh[1]), t->dims[1], c->e->stream};
  const float *table = ty__cx_din(c, 0);
  const int64_t *idx = ty__cx_din(c, 1);
  float *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_embedding(c->e->kern, &r, t->dims[0], table, idx, y, c->e->bad, c->err,
                           c->err_len);
}

/* TyGrad of Gather w.r.t. the table: inputs dY, table, indices. */
static int run_gather_grad(ty__cx_node *c, int wrt) {
  const ty_shape *t = &c->out_sh[0];
  if (wrt != 0 || t->rank != 2 || !ty__cx_has_in(c, 2) ||
      ty_graph_node_attr_int(c->n, "axis", 0) != 0)
    return ty__cx_decline(c, "Gather gradient other than into rows of a 2-D table");
  int rc = check_indices(c, 2, t->dims[0]);
  if (rc) return rc;
  ty_cuda_rows r = {ty_shape_numel(&c->in_sh[2]), t->dims[1], c->e->stream};
  const float *dy = ty__cx_din(c, 0);
  const int64_t *idx = ty__cx_din(c, 2);
  float *dt = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  rc = ty__cx_cuda_rc(
      c, (int)cudaMemsetAsync(dt, 0, (size_t)ty_shape_numel(t) * 4, (cudaStream_t)c->e->stream),
      "the embedding gradient");
  return rc ? rc
            : ty_cuda_embedding_bwd(c->e->kern, &r, t->dims[0], dy, idx, dt, c->err, c->err_len);
}

int ty__cx_launch_math(ty__cx_node *c, int op, bool grad, int wrt) {
  switch (op) {
  case TY_OP_MATMUL:
    return grad ? run_matmul_grad(c, wrt) : run_matmul(c);
  case TY_OP_GEMM:
    return grad ? run_gemm_grad(c, wrt) : run_gemm(c);
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
    return grad ? run_softmax_grad(c, op == TY_OP_LOG_SOFTMAX)
                : run_softmax(c, op == TY_OP_LOG_SOFTMAX);
  case TY_OP_SOFTMAX_CE_LOSS:
    return grad ? run_xent_grad(c) : run_xent(c);
  case TY_OP_LAYER_NORM:
    return grad ? run_layer_norm_grad(c, wrt) : run_layer_norm(c);
  case TY_OP_GATHER:
    return grad ? run_gather_grad(c, wrt) : run_gather(c);
  default:
    return ty__cx_decline(c, "%s: no compute launcher", ty_op_name((ty_op)op));
  }
}
