/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's step launchers: a generated region, each node the
 * plan puts on the GPU (cuBLAS MatMul and Gemm, cuDNN's 2-D Conv, pooling
 * and training-mode BatchNormalization, softmax, the builtin loss, views
 * and Transpose, each forward and backward)
 * and the CPU step every other node takes, with ops/exec's kernels.
 *
 * Output shapes are inferred on the host first (ty__infer_node, integer
 * inputs read from the host). A launcher that finds a concrete shape it
 * does not handle returns DECLINED before queuing anything; the step then
 * runs on the CPU and is counted (ty_cuda_exec_stats.declined).
 */
#include "ops/cuda/exec_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/ops_internal.h"

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DECLINED 1

/* One node being launched: its shapes and where a decline says why. */
typedef struct gnode {
  ty_cuda_exec *e;
  const ty_graph_node *n;
  const ty_shape *in_sh; /* n_inputs */
  const ty_dtype *in_dt;
  const ty_shape *out_sh; /* n_outputs */
  const ty_dtype *out_dt;
  char *err;
  size_t err_len;
  int rc; /* the first device error */
} gnode;

static int decline(gnode *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int decline(gnode *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->e->st.last_declined, sizeof c->e->st.last_declined, fmt, ap);
  va_end(ap);
  return DECLINED;
}

static bool has_in(const gnode *c, int i) {
  return i < c->n->n_inputs && c->n->inputs[i] != TY_NO_VALUE;
}

static const void *din(gnode *c, int i) {
  int rc = 0;
  void *p = c->rc ? NULL : ty__cx_dev(c->e, c->n->inputs[i], c->err, c->err_len, &rc);
  if (rc) c->rc = rc;
  return p;
}

static void *dout(gnode *c, int i) {
  void *p = NULL;
  if (c->rc == 0)
    c->rc =
        ty__cx_out_dev(c->e, c->n->outputs[i], c->out_dt[i], &c->out_sh[i], &p, c->err, c->err_len);
  return p;
}

static int cuda_rc(gnode *c, int ce, const char *what) {
  return ce ? ty__cx_cuda_err(c->err, c->err_len, ce, what) : 0;
}

/* A [rows, last dim] view of shape s. */
static ty_cuda_rows rows_of(const gnode *c, const ty_shape *s) {
  int64_t cols = s->rank > 0 ? s->dims[s->rank - 1] : 1;
  return (ty_cuda_rows){cols ? ty_shape_numel(s) / cols : 0, cols, c->e->stream};
}

/* ---- views: a device copy of input 0 (forward: the data, backward: dY) ---- */
static int run_copy(gnode *c) {
  if (ty_shape_numel(&c->in_sh[0]) != ty_shape_numel(&c->out_sh[0]))
    return decline(c, "%s: input and output sizes differ", ty_op_name(c->n->op));
  size_t bytes = (size_t)ty_shape_numel(&c->out_sh[0]) * ty_dtype_size(c->out_dt[0]);
  const void *x = din(c, 0);
  void *y = dout(c, 0);
  if (c->rc) return c->rc;
  return bytes ? cuda_rc(c,
                         (int)cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice,
                                              (cudaStream_t)c->e->stream),
                         "a view's copy")
               : 0;
}

/* ---- MatMul ---------------------------------------------------------------- */
/* [..., m, k] x [..., k, n]: the batch counts of both operands. */
typedef struct mm_dims {
  int64_t m, k, n, ba, bb, by;
} mm_dims;

static int mm_dims_of(gnode *c, const ty_shape *a, const ty_shape *b, const ty_shape *y,
                      mm_dims *d) {
  if (a->rank < 2 || b->rank < 2) return decline(c, "MatMul with a 1-D operand");
  d->m = a->dims[a->rank - 2];
  d->k = a->dims[a->rank - 1];
  d->n = b->dims[b->rank - 1];
  if (d->m * d->k == 0 || d->k * d->n == 0 || d->m * d->n == 0)
    return decline(c, "MatMul with an empty matrix");
  d->ba = ty_shape_numel(a) / (d->m * d->k);
  d->bb = ty_shape_numel(b) / (d->k * d->n);
  d->by = ty_shape_numel(y) / (d->m * d->n);
  if (!(d->bb == 1 && d->ba == d->by) && !(d->ba == d->bb && d->ba == d->by) &&
      !(d->ba == 1 && d->bb == d->by))
    return decline(c, "MatMul with broadcast batch dims (%lld x %lld entries)", (long long)d->ba,
                   (long long)d->bb);
  return 0;
}

static int gemm(gnode *c, ty_cuda_gemm_args *g) {
  if (c->rc) return c->rc;
  return ty_cuda_gemm(c->e->blas, g, c->err, c->err_len);
}

static int run_matmul(gnode *c) {
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
  g.a = din(c, 0);
  g.b = din(c, 1);
  g.c = dout(c, 0);
  return gemm(c, &g);
}

/* TyGrad of MatMul: inputs dY, A, B; dA = dY B^T, dB = A^T dY per entry. */
static int run_matmul_grad(gnode *c, int wrt) {
  mm_dims d;
  ty_shape ysh;
  if (!has_in(c, 1) || !has_in(c, 2)) return decline(c, "MatMul gradient without its operands");
  ysh = c->in_sh[0];
  int rc = mm_dims_of(c, &c->in_sh[1], &c->in_sh[2], &ysh, &d);
  if (rc) return rc;
  if (d.ba == 1 && d.bb > 1) return decline(c, "MatMul gradient of a broadcast A");
  int64_t rows = d.bb == 1 ? d.m * d.ba : d.m, batch = d.bb == 1 ? 1 : d.by;
  ty_cuda_gemm_args g = {.batch = batch, .alpha = 1, .beta = 0};
  const float *dy = din(c, 0), *a = din(c, 1), *b = din(c, 2);
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
  g.c = dout(c, 0);
  return gemm(c, &g);
}

/* ---- Gemm: Y = alpha op(A) op(B) + beta C ----------------------------------- */
typedef struct gemm_attrs {
  bool ta, tb;
  float alpha, beta;
  int64_t m, k, n;
} gemm_attrs;

static int gemm_attrs_of(gnode *c, const ty_shape *a, const ty_shape *b, gemm_attrs *o) {
  const ty_graph_node *n = c->n;
  o->ta = ty_graph_node_attr_int(n, "transA", 0) != 0;
  o->tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  o->alpha = ty_graph_node_attr_float(n, "alpha", 1.0f);
  o->beta = ty_graph_node_attr_float(n, "beta", 1.0f);
  if (a->rank != 2 || b->rank != 2) return decline(c, "Gemm on operands that are not 2-D");
  o->m = o->ta ? a->dims[1] : a->dims[0];
  o->k = o->ta ? a->dims[0] : a->dims[1];
  o->n = o->tb ? b->dims[0] : b->dims[1];
  return 0;
}

static int run_gemm(gnode *c) {
  gemm_attrs at;
  int rc = gemm_attrs_of(c, &c->in_sh[0], &c->in_sh[1], &at);
  if (rc) return rc;
  const ty_shape *cs = has_in(c, 2) ? &c->in_sh[2] : NULL;
  bool bias = cs && cs->rank == 1 && cs->dims[0] == at.n && at.beta == 1.0f;
  bool full = cs && ty_shape_equal(cs, &c->out_sh[0]);
  if (cs && !bias && !full) return decline(c, "Gemm with a C broadcast other than per column");
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
  g.a = din(c, 0);
  g.b = din(c, 1);
  const float *cv = cs ? din(c, 2) : NULL;
  g.c = dout(c, 0);
  if (c->rc) return c->rc;
  if (bias) return ty_cuda_gemm_bias(c->e->blas, &g, cv, c->err, c->err_len);
  if (full &&
      (rc = cuda_rc(c,
                    (int)cudaMemcpyAsync(g.c, cv, (size_t)(at.m * at.n) * 4,
                                         cudaMemcpyDeviceToDevice, (cudaStream_t)c->e->stream),
                    "Gemm's C")) != 0)
    return rc;
  return gemm(c, &g);
}

/* dC = beta * dY summed to C's shape: a [N] bias sums over rows. */
static int run_gemm_grad_c(gnode *c, const gemm_attrs *at) {
  const ty_shape *cs = &c->out_sh[0];
  if (ty_shape_equal(cs, &c->in_sh[0]) && at->beta == 1.0f) return run_copy(c);
  if (!(cs->rank == 1 && cs->dims[0] == at->n))
    return decline(c, "gradient of Gemm's C broadcast other than per column");
  ty_cuda_reduce r = {.n_keep = 1, .n_red = 1};
  r.keep_dims[0] = at->n;
  r.keep_strides[0] = 1;
  r.red_dims[0] = at->m;
  r.red_strides[0] = at->n;
  const float *dy = din(c, 0);
  float *dc = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_reduce_sum(c->e->kern, &r, at->beta, dy, dc, c->e->stream, c->err, c->err_len);
}

/* TyGrad of Gemm: inputs dY [m, n], A, B, C. */
static int run_gemm_grad(gnode *c, int wrt) {
  gemm_attrs at;
  if (!has_in(c, 1) || !has_in(c, 2)) return decline(c, "Gemm gradient without its operands");
  int rc = gemm_attrs_of(c, &c->in_sh[1], &c->in_sh[2], &at);
  if (rc) return rc;
  if (wrt == 2) return run_gemm_grad_c(c, &at);
  if (at.ta) return decline(c, "gradient of Gemm with transA");
  const float *dy = din(c, 0), *a = din(c, 1), *b = din(c, 2);
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
  g.c = dout(c, 0);
  return gemm(c, &g);
}

/* ---- softmax and the loss ---------------------------------------------------- */
static int run_softmax(gnode *c, bool log) {
  ty_cuda_rows r = rows_of(c, &c->in_sh[0]);
  const float *x = din(c, 0);
  float *y = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_softmax(c->e->kern, &r, x, y, log, c->err, c->err_len);
}

/* TyGrad of (Log)Softmax: inputs dY, X, Y. */
static int run_softmax_grad(gnode *c, bool log) {
  if (!has_in(c, 2)) return decline(c, "softmax gradient without the forward output");
  ty_cuda_rows r = rows_of(c, &c->in_sh[0]);
  const float *dy = din(c, 0), *y = din(c, 2);
  float *dx = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_softmax_bwd(c->e->kern, &r, y, dy, dx, log, c->err, c->err_len);
}

/* Per-row loss and softmax of logits (input li) against labels (input li
 * + 1) into scratch blocks; checks the labels. */
static int xent_rows(gnode *c, int li, float **loss, float **prob, ty_cuda_rows *r) {
  const ty_shape *x = &c->in_sh[li];
  if (x->rank != 2) return decline(c, "the loss over logits that are not [N, C]");
  if (c->in_dt[li + 1] != TY_DTYPE_I64)
    return decline(c, "the loss with labels that are not int64");
  ty_cuda_exec *e = c->e;
  *r = rows_of(c, x);
  const float *logits = din(c, li);
  const int64_t *labels = din(c, li + 1);
  if (c->rc) return c->rc;
  int rc =
      ty_cuda_alloc_get(e->alloc, (size_t)(r->rows ? r->rows : 1) * 4, e->stream, (void **)loss);
  if (rc == 0)
    rc = ty_cuda_alloc_get(e->alloc, (size_t)(ty_shape_numel(x) ? ty_shape_numel(x) : 1) * 4,
                           e->stream, (void **)prob);
  if (rc != 0) return ty_errf(c->err, c->err_len, rc, "no device memory for the loss");
  int64_t bad = 0;
  if ((rc = cuda_rc(c, (int)cudaMemsetAsync(e->bad, 0, sizeof bad, (cudaStream_t)e->stream),
                    "the label check")) != 0)
    return rc;
  rc = ty_cuda_xent(e->kern, r, logits, labels, *loss, *prob, e->bad, c->err, c->err_len);
  if (rc == 0)
    rc = cuda_rc(c,
                 (int)cudaMemcpyAsync(&bad, e->bad, sizeof bad, cudaMemcpyDeviceToHost,
                                      (cudaStream_t)e->stream),
                 "the label check");
  if (rc == 0)
    rc = cuda_rc(c, (int)cudaStreamSynchronize((cudaStream_t)e->stream), "the loss kernel");
  if (rc == 0 && bad)
    rc = ty_errf(c->err, c->err_len, TY_EINVAL, "label of row %lld is outside [0, %lld)",
                 (long long)(bad - 1), (long long)r->cols);
  return rc;
}

static int run_xent(gnode *c) {
  float *loss = NULL, *prob = NULL;
  ty_cuda_rows r;
  int rc = xent_rows(c, 0, &loss, &prob, &r);
  float *y = rc ? NULL : dout(c, 0);
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
static int run_xent_grad(gnode *c) {
  float *loss = NULL, *prob = NULL;
  ty_cuda_rows r;
  int rc = xent_rows(c, 1, &loss, &prob, &r);
  if (rc == 0) rc = ty__cx_host(c->e, c->n->inputs[0], c->err, c->err_len);
  const ty_tensor *dyt = rc == 0 ? c->e->v[c->n->inputs[0]].host : NULL;
  float *dx = rc == 0 ? dout(c, 0) : NULL;
  if (rc == 0 && c->rc) rc = c->rc;
  if (rc == 0) {
    float scale = ty_tensor_f32(dyt)[0] / (float)(r.rows ? r.rows : 1);
    rc = ty_cuda_xent_bwd(c->e->kern, &r, prob, din(c, 2), scale, dx, c->err, c->err_len);
  }
  ty_cuda_alloc_put(c->e->alloc, loss);
  ty_cuda_alloc_put(c->e->alloc, prob);
  return rc;
}

/* ---- LayerNormalization over the last axis ----------------------------------- */
/* x's rows and a scale of one value per column. */
static int ln_rows(gnode *c, const ty_shape *x, const ty_shape *gamma, ty_cuda_rows *r) {
  *r = rows_of(c, x);
  if (ty_shape_numel(gamma) != r->cols)
    return decline(c, "LayerNormalization with a scale broadcast over more than the last axis");
  return 0;
}

/* Inputs X, Scale, B; outputs Y, Mean and InvStdDev (one per row, optional). */
static int run_layer_norm(gnode *c) {
  ty_cuda_rows r;
  int rc = ln_rows(c, &c->in_sh[0], &c->in_sh[1], &r);
  if (rc) return rc;
  if (has_in(c, 2) && ty_shape_numel(&c->in_sh[2]) != r.cols)
    return decline(c, "LayerNormalization with a bias broadcast over more than the last axis");
  const float *x = din(c, 0), *gamma = din(c, 1), *beta = has_in(c, 2) ? din(c, 2) : NULL;
  float *y = dout(c, 0), *mean = NULL, *rstd = NULL;
  if (c->n->n_outputs > 1 && c->n->outputs[1] != TY_NO_VALUE) mean = dout(c, 1);
  if (c->n->n_outputs > 2 && c->n->outputs[2] != TY_NO_VALUE) rstd = dout(c, 2);
  if (c->rc) return c->rc;
  float eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  return ty_cuda_layer_norm(c->e->kern, &r, x, gamma, beta, eps, y, mean, rstd, c->err, c->err_len);
}

/* TyGrad of LayerNormalization: inputs dY, X, Scale, B. The row
 * statistics are recomputed (a forward pass into scratch), then the
 * backward kernel writes dX and adds into dScale or dB. */
static int run_layer_norm_grad(gnode *c, int wrt) {
  ty_cuda_rows r;
  if (wrt > 2 || !has_in(c, 1) || !has_in(c, 2)) return decline(c, "LayerNormalization gradient");
  int rc = ln_rows(c, &c->in_sh[1], &c->in_sh[2], &r);
  if (rc) return rc;
  const float *dy = din(c, 0), *x = din(c, 1), *gamma = din(c, 2);
  float *out = dout(c, 0), *scratch = NULL;
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
    rc = cuda_rc(c, (int)cudaMemsetAsync(out, 0, (size_t)r.cols * 4, (cudaStream_t)e->stream),
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
static int check_indices(gnode *c, int in, int64_t vocab) {
  const ty__cx_val *v = &c->e->v[c->n->inputs[in]];
  if (v->dt != TY_DTYPE_I64) return decline(c, "Gather with indices that are not int64");
  if (!v->host_ok) return decline(c, "Gather with indices on the device only");
  const int64_t *idx = v->host->data;
  for (int64_t i = 0; i < ty_shape_numel(&v->shape); i++)
    if (idx[i] < 0 || idx[i] >= vocab)
      return decline(c, "Gather index %lld outside [0, %lld)", (long long)idx[i], (long long)vocab);
  return 0;
}

/* Inputs table [V, D], indices; output [indices..., D]. */
static int run_gather(gnode *c) {
  const ty_shape *t = &c->in_sh[0];
  if (t->rank != 2 || ty_graph_node_attr_int(c->n, "axis", 0) != 0)
    return decline(c, "Gather other than rows of a 2-D table");
  int rc = check_indices(c, 1, t->dims[0]);
  if (rc) return rc;
  ty_cuda_rows r = {ty_shape_numel(&c->in_sh[1]), t->dims[1], c->e->stream};
  const float *table = din(c, 0);
  const int64_t *idx = din(c, 1);
  float *y = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_embedding(c->e->kern, &r, t->dims[0], table, idx, y, c->e->bad, c->err,
                           c->err_len);
}

/* TyGrad of Gather w.r.t. the table: inputs dY, table, indices. */
static int run_gather_grad(gnode *c, int wrt) {
  const ty_shape *t = &c->out_sh[0];
  if (wrt != 0 || t->rank != 2 || !has_in(c, 2) || ty_graph_node_attr_int(c->n, "axis", 0) != 0)
    return decline(c, "Gather gradient other than into rows of a 2-D table");
  int rc = check_indices(c, 2, t->dims[0]);
  if (rc) return rc;
  ty_cuda_rows r = {ty_shape_numel(&c->in_sh[2]), t->dims[1], c->e->stream};
  const float *dy = din(c, 0);
  const int64_t *idx = din(c, 2);
  float *dt = dout(c, 0);
  if (c->rc) return c->rc;
  rc = cuda_rc(
      c, (int)cudaMemsetAsync(dt, 0, (size_t)ty_shape_numel(t) * 4, (cudaStream_t)c->e->stream),
      "the embedding gradient");
  return rc ? rc
            : ty_cuda_embedding_bwd(c->e->kern, &r, t->dims[0], dy, idx, dt, c->err, c->err_len);
}

/* ---- Add / Sub gradients of a broadcast input: dY summed to its shape ---------- */
static int run_sum_to(gnode *c, float scale) {
  const ty_shape *dy = &c->in_sh[0], *x = &c->out_sh[0];
  if (c->n->opset < 7) return decline(c, "legacy broadcast attributes");
  if (dy->rank > 8 || x->rank > dy->rank) return decline(c, "a broadcast of rank above 8");
  int64_t st[TY_MAX_RANK];
  ty_shape_strides(dy, st);
  ty_cuda_reduce r = {0};
  for (int d = 0; d < dy->rank; d++) {
    int xd = d - (dy->rank - x->rank);
    int64_t xs = xd >= 0 ? x->dims[xd] : 1;
    if (xs == dy->dims[d]) {
      r.keep_dims[r.n_keep] = dy->dims[d];
      r.keep_strides[r.n_keep++] = st[d];
    } else if (xs == 1) {
      r.red_dims[r.n_red] = dy->dims[d];
      r.red_strides[r.n_red++] = st[d];
    } else {
      return decline(c, "a gradient shape that does not broadcast to dY");
    }
  }
  if (ty_shape_numel(dy) == 0) return decline(c, "an empty gradient");
  const float *g = din(c, 0);
  float *out = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_reduce_sum(c->e->kern, &r, scale, g, out, c->e->stream, c->err, c->err_len);
}

/* ---- Transpose -------------------------------------------------------------- */
static int perm_of(gnode *c, int rank, int64_t *perm) {
  int cnt = 0;
  if (rank > 8) return decline(c, "Transpose of rank %d (copy.cu takes 8)", rank);
  if (ty__attr_ints(c->n, "perm", perm, TY_MAX_RANK, &cnt) != 0 || (cnt >= 0 && cnt != rank))
    return decline(c, "Transpose: perm does not match the rank");
  for (int d = 0; cnt < 0 && d < rank; d++)
    perm[d] = rank - 1 - d;
  return 0;
}

/* Forward: out[i] = x[perm-strided i]; backward (dX from dY) the inverse. */
static int run_transpose(gnode *c, bool grad) {
  const ty_shape *x = grad ? &c->out_sh[0] : &c->in_sh[0];
  int64_t perm[TY_MAX_RANK], xs[TY_MAX_RANK], ys[TY_MAX_RANK];
  int rc = perm_of(c, x->rank, perm);
  if (rc) return rc;
  ty_shape y = *x;
  for (int d = 0; d < x->rank; d++)
    y.dims[d] = x->dims[perm[d]];
  ty_shape_strides(x, xs);
  ty_shape_strides(&y, ys);
  ty_cuda_copy cp = {.rank = x->rank};
  for (int d = 0; d < x->rank; d++) {
    if (!grad) { /* over Y's index space: Y dim d walks X dim perm[d] */
      cp.dims[d] = y.dims[d];
      cp.in_strides[d] = xs[perm[d]];
      cp.out_strides[d] = ys[d];
    } else { /* over dY's index space, writing dX */
      cp.dims[d] = y.dims[d];
      cp.in_strides[d] = ys[d];
      cp.out_strides[d] = xs[perm[d]];
    }
  }
  const float *in = din(c, 0);
  float *out = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_strided_copy(c->e->kern, &cp, in, out, c->e->stream, c->err, c->err_len);
}

/* ---- cuDNN: Conv, MaxPool / AveragePool / GlobalAveragePool, BatchNorm ---- */
#ifdef TY_HAVE_CUDNN
/* The node's window over 2 spatial dims of x, symmetric pads only. */
static int window_2d(gnode *c, const ty_shape *x, const int64_t *w_spatial, ty__window *win) {
  if (x->rank != 4) return decline(c, "%s on a rank-%d input", ty_op_name(c->n->op), x->rank);
  if (ty__window_read(c->n, 2, w_spatial, x->dims + 2, win, NULL, 0) != 0)
    return decline(c, "%s: its window attributes", ty_op_name(c->n->op));
  if (win->pad_begin[0] != win->pad_end[0] || win->pad_begin[1] != win->pad_end[1])
    return decline(c, "%s with asymmetric pads (cuDNN pads both sides alike)",
                   ty_op_name(c->n->op));
  return 0;
}

/* x, w, y shapes of a Conv node (forward: inputs 0, 1, output 0). */
static int conv_of(gnode *c, const ty_shape *x, const ty_shape *w, const ty_shape *y,
                   ty_cuda_conv *cv) {
  ty__window win;
  if (w->rank != 4 || y->rank != 4) return decline(c, "Conv that is not 2-D");
  int rc = window_2d(c, x, w->dims + 2, &win);
  if (rc) return rc;
  *cv = (ty_cuda_conv){.n = x->dims[0],
                       .c = x->dims[1],
                       .h = x->dims[2],
                       .w = x->dims[3],
                       .k = w->dims[0],
                       .r = w->dims[2],
                       .s = w->dims[3],
                       .p = y->dims[2],
                       .q = y->dims[3],
                       .groups = ty_graph_node_attr_int(c->n, "group", 1),
                       .pad_h = win.pad_begin[0],
                       .pad_w = win.pad_begin[1],
                       .stride_h = win.stride[0],
                       .stride_w = win.stride[1],
                       .dil_h = win.dilation[0],
                       .dil_w = win.dilation[1]};
  char why[160];
  return ty_cuda_conv_check(cv, why, sizeof why) ? decline(c, "%s", why) : 0;
}

static int run_conv(gnode *c) {
  ty_cuda_conv cv;
  int rc = conv_of(c, &c->in_sh[0], &c->in_sh[1], &c->out_sh[0], &cv);
  if (rc) return rc;
  const float *x = din(c, 0), *w = din(c, 1), *b = has_in(c, 2) ? din(c, 2) : NULL;
  float *y = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_conv_fwd(c->e->dnn, &cv, x, w, b, y, c->err, c->err_len);
}

/* TyGrad of Conv: inputs dY, X, W, B. */
static int run_conv_grad(gnode *c, int wrt) {
  ty_cuda_conv cv;
  if (!has_in(c, 1) || !has_in(c, 2)) return decline(c, "Conv gradient without its operands");
  int rc = conv_of(c, &c->in_sh[1], &c->in_sh[2], &c->in_sh[0], &cv);
  if (rc) return rc;
  const float *dy = din(c, 0);
  const float *x = wrt == 1 ? din(c, 1) : NULL, *w = wrt == 0 ? din(c, 2) : NULL;
  float *dx = dout(c, 0);
  if (c->rc) return c->rc;
  ty_cuda_dnn *d = c->e->dnn;
  if (wrt == 0) return ty_cuda_conv_bwd_data(d, &cv, w, dy, dx, c->err, c->err_len);
  if (wrt == 1) return ty_cuda_conv_bwd_filter(d, &cv, x, dy, dx, c->err, c->err_len);
  return ty_cuda_conv_bwd_bias(d, &cv, dy, dx, c->err, c->err_len);
}

static int pool_of(gnode *c, int op, const ty_shape *x, const ty_shape *y, ty_cuda_pool *p) {
  if (x->rank != 4 || y->rank != 4) return decline(c, "pooling that is not 2-D");
  *p = (ty_cuda_pool){.n = x->dims[0],
                      .c = x->dims[1],
                      .h = x->dims[2],
                      .w = x->dims[3],
                      .p = y->dims[2],
                      .q = y->dims[3],
                      .max = op == TY_OP_MAX_POOL};
  if (op == TY_OP_GLOBAL_AVERAGE_POOL) {
    p->kh = p->h, p->kw = p->w, p->stride_h = p->stride_w = 1;
  } else {
    ty__window win;
    int rc = window_2d(c, x, NULL, &win);
    if (rc) return rc;
    if (win.ceil_mode) return decline(c, "pooling with ceil_mode");
    if (win.dilation[0] != 1 || win.dilation[1] != 1) return decline(c, "dilated pooling");
    p->kh = win.kernel[0], p->kw = win.kernel[1], p->stride_h = win.stride[0];
    p->stride_w = win.stride[1], p->pad_h = win.pad_begin[0], p->pad_w = win.pad_begin[1];
    p->count_pad = win.count_include_pad;
  }
  char why[160];
  return ty_cuda_pool_check(p, why, sizeof why) ? decline(c, "%s", why) : 0;
}

static int run_pool(gnode *c, int op) {
  ty_cuda_pool p;
  if (c->n->n_outputs > 1 && c->n->outputs[1] != TY_NO_VALUE)
    return decline(c, "MaxPool with its Indices output");
  int rc = pool_of(c, op, &c->in_sh[0], &c->out_sh[0], &p);
  if (rc) return rc;
  const float *x = din(c, 0);
  float *y = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_pool_fwd(c->e->dnn, &p, x, y, c->err, c->err_len);
}

/* TyGrad of a pool: inputs dY, X, Y (cuDNN's backward reads both). */
static int run_pool_grad(gnode *c, int op) {
  ty_cuda_pool p;
  if (!has_in(c, 1) || !has_in(c, 2)) return decline(c, "pooling gradient without X and Y");
  int rc = pool_of(c, op, &c->in_sh[1], &c->in_sh[2], &p);
  if (rc) return rc;
  const float *dy = din(c, 0), *x = din(c, 1), *y = din(c, 2);
  float *dx = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_pool_bwd(c->e->dnn, &p, x, y, dy, dx, c->err, c->err_len);
}

static int bn_of(gnode *c, const ty_shape *x, ty_cuda_bn *b) {
  if (!c->e->o.training) return decline(c, "BatchNormalization with running statistics");
  if (x->rank != 4 && x->rank != 2) return decline(c, "BatchNormalization on rank %d", x->rank);
  *b = (ty_cuda_bn){.n = x->dims[0],
                    .c = x->dims[1],
                    .h = x->rank == 4 ? x->dims[2] : 1,
                    .w = x->rank == 4 ? x->dims[3] : 1,
                    .eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f)};
  return 0;
}

/* Forward in training mode: inputs X, scale, B, mean, var; output Y only. */
static int run_bn(gnode *c) {
  ty_cuda_bn b;
  for (int i = 1; i < c->n->n_outputs; i++)
    if (c->n->outputs[i] != TY_NO_VALUE)
      return decline(c, "BatchNormalization's statistics outputs");
  int rc = bn_of(c, &c->in_sh[0], &b);
  if (rc) return rc;
  const float *x = din(c, 0), *scale = din(c, 1), *bias = din(c, 2);
  float *y = dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_bn_fwd_train(c->e->dnn, &b, x, scale, bias, y, c->err, c->err_len);
}

/* TyGrad of BatchNormalization: inputs dY, X, scale, B, ...; cuDNN
 * computes all three gradients, the two not asked for go to scratch. */
static int run_bn_grad(gnode *c, int wrt) {
  ty_cuda_bn b;
  if (wrt > 2 || !has_in(c, 1) || !has_in(c, 2)) return decline(c, "BatchNormalization gradient");
  int rc = bn_of(c, &c->in_sh[1], &b);
  if (rc) return rc;
  const float *dy = din(c, 0), *x = din(c, 1), *scale = din(c, 2);
  float *out = dout(c, 0), *scratch = NULL;
  if (c->rc) return c->rc;
  size_t bytes = (size_t)(b.n * b.c * b.h * b.w + 2 * b.c) * sizeof(float);
  if ((rc = ty_cuda_alloc_get(c->e->alloc, bytes ? bytes : 4, c->e->stream, (void **)&scratch)))
    return ty_errf(c->err, c->err_len, rc, "no device memory for the BatchNormalization gradient");
  float *dx = wrt == 0 ? out : scratch, *ds = wrt == 1 ? out : scratch + b.n * b.c * b.h * b.w;
  float *db = wrt == 2 ? out : scratch + b.n * b.c * b.h * b.w + b.c;
  rc = ty_cuda_bn_bwd(c->e->dnn, &b, x, dy, scale, dx, ds, db, c->err, c->err_len);
  ty_cuda_alloc_put(c->e->alloc, scratch);
  return rc;
}

static int launch_dnn(gnode *c, int op, bool grad, int wrt) {
  switch (op) {
  case TY_OP_CONV:
    return grad ? run_conv_grad(c, wrt) : run_conv(c);
  case TY_OP_BATCH_NORM:
    return grad ? run_bn_grad(c, wrt) : run_bn(c);
  default:
    return grad ? run_pool_grad(c, op) : run_pool(c, op);
  }
}
#endif

/* ---- dispatch ---------------------------------------------------------------- */
static bool view_op(int op) {
  return op == TY_OP_RESHAPE || op == TY_OP_FLATTEN || op == TY_OP_SQUEEZE ||
         op == TY_OP_UNSQUEEZE || op == TY_OP_IDENTITY;
}

static int launch_node(gnode *c) {
  const ty_graph_node *n = c->n;
  for (int i = 0; i < n->n_outputs; i++)
    if (n->outputs[i] != TY_NO_VALUE && c->out_dt[i] != TY_DTYPE_F32)
      return decline(c, "%s: an output that is not float32", ty_op_name(n->op));
  bool grad = n->op == TY_OP_GRAD;
  int op = grad ? ty_autodiff_grad_forward_op(n) : (int)n->op;
  int wrt = (int)ty_graph_node_attr_int(n, "wrt", 0);
  if (view_op(op)) return run_copy(c);
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
  case TY_OP_TRANSPOSE:
    return run_transpose(c, grad);
  case TY_OP_LAYER_NORM:
    return grad ? run_layer_norm_grad(c, wrt) : run_layer_norm(c);
  case TY_OP_GATHER:
    return grad ? run_gather_grad(c, wrt) : run_gather(c);
  case TY_OP_ADD:
  case TY_OP_SUB:
    if (!grad) return decline(c, "%s outside a region", ty_op_name((ty_op)op));
    return run_sum_to(c, op == TY_OP_SUB && wrt == 1 ? -1.0f : 1.0f);
#ifdef TY_HAVE_CUDNN
  case TY_OP_CONV:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_GLOBAL_AVERAGE_POOL:
  case TY_OP_BATCH_NORM:
    return launch_dnn(c, op, grad, wrt);
#endif
  default:
    return decline(c, "%s: no launcher", ty_op_name((ty_op)op));
  }
}

/* Infers a node's output dtypes and shapes from its inputs' (data only
 * where the host has it: integer shape arithmetic). */
static int infer(ty_cuda_exec *e, const ty_graph_node *n, const ty_tensor **vals, ty_dtype *dts,
                 ty_shape *shs, char *err, size_t err_len) {
  int ni = n->n_inputs;
  for (int i = 0; i < ni; i++) {
    int id = n->inputs[i];
    const ty__cx_val *v = id == TY_NO_VALUE ? NULL : &e->v[id];
    bool have = v && v->known;
    dts[i] = have ? v->dt : TY_DTYPE_INVALID;
    shs[i] = have ? v->shape : ty_shape_unknown();
    vals[i] = have && v->host_ok ? v->host : NULL;
  }
  ty__infer ic = {.node = n,
                  .n_in = ni,
                  .in_dt = dts,
                  .in_shape = shs,
                  .in_val = vals,
                  .n_out = n->n_outputs,
                  .out_dt = dts + ni,
                  .out_shape = shs + ni,
                  .err = err,
                  .err_len = err_len};
  return ty__infer_node(&ic);
}

int ty__cx_cpu_node(ty_cuda_exec *e, const ty_cuda_step *s, bool host, char *err, size_t err_len) {
  const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
  int ni = n->n_inputs, no = n->n_outputs, rc = 0;
  const ty_tensor *in[64] = {NULL};
  ty_tensor *out[16] = {NULL}, shape_only[64];
  ty_dtype dts[80];
  ty_shape shs[80];
  if (ni > 64 || no > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  for (int i = 0; i < ni && rc == 0; i++)
    if (n->inputs[i] != TY_NO_VALUE && !host) rc = ty__cx_host(e, n->inputs[i], err, err_len);
  if (rc == 0) rc = infer(e, n, in, dts, shs, err, err_len);
  for (int i = 0; rc == 0 && host && i < ni; i++) /* Shape reads no data */
    if (!in[i] && n->inputs[i] != TY_NO_VALUE) {
      shape_only[i] = (ty_tensor){.dtype = dts[i], .shape = shs[i]};
      in[i] = &shape_only[i];
    }
  for (int i = 0; rc == 0 && i < no; i++)
    if (n->outputs[i] != TY_NO_VALUE && (rc = ty_tensor_create(dts[ni + i], &shs[ni + i], &out[i])))
      rc = ty__node_err(err, err_len, n, rc, "cannot allocate output %d", i);
  ty__kctx ctx = {.training = e->o.training, .rng = e->rng, .workers = e->o.workers};
  if (rc == 0 && (rc = ty__kernel_for(n->op)(n, in, out, &ctx)) != 0)
    rc = ty__node_err(err, err_len, n, rc, "kernel failed on the CPU: %s", ty_strerror(rc));
  e->rng = ctx.rng;
  for (int i = 0; i < no; i++) {
    if (rc == 0 && out[i])
      ty__cx_out_host(e, n->outputs[i], out[i]);
    else
      ty_tensor_destroy(out[i]);
  }
  return rc;
}

int ty__cx_gpu_node(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
  const ty_tensor *vals[64] = {NULL};
  ty_dtype dts[80];
  ty_shape shs[80];
  if (n->n_inputs > 64 || n->n_outputs > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  int rc = infer(e, n, vals, dts, shs, err, err_len);
  if (rc != 0) return rc;
  gnode c = {e, n, shs, dts, shs + n->n_inputs, dts + n->n_inputs, err, err_len, 0};
  rc = launch_node(&c);
  if (rc == DECLINED) {
    for (int i = 0; i < n->n_outputs; i++)
      if (n->outputs[i] != TY_NO_VALUE) ty__cx_forget(e, n->outputs[i]);
    e->st.declined++;
    return ty__cx_cpu_node(e, s, false, err, err_len);
  }
  if (rc != 0 && err[0] && !strstr(err, ty_op_name(n->op))) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err);
    return ty__node_err(err, err_len, n, rc, "on the GPU: %s", inner);
  }
  return rc;
}

/* ---- a generated region --------------------------------------------------------- */
int ty__cx_region(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  const ty_fused_src *r = &e->plan->regions[s->region];
  const ty_graph_node *first = ty_graph_node_at(e->g, s->node);
  const float *in[TY_FUSE_MAX_IO];
  float *out[TY_FUSE_MAX_IO];
  ty_shape shapes[TY_FUSE_MAX_IO], loop = ty_shape_make(0, NULL);
  int rc = 0;
  for (int i = 0; i < r->n_in; i++) {
    const ty__cx_val *v = &e->v[r->in_ids[i]];
    const char *vn = ty_graph_value_at(e->g, r->in_ids[i])->name;
    if (!v->known || v->dt != TY_DTYPE_F32)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" missing or not float", vn);
    shapes[i] = v->shape;
    if (ty_shape_broadcast(&loop, &v->shape, &loop) != 0)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" does not broadcast", vn);
    if (!(in[i] = ty__cx_dev(e, r->in_ids[i], err, err_len, &rc))) return rc;
  }
  for (int j = 0; j < r->n_out; j++)
    if ((rc = ty__cx_out_dev(e, r->out_ids[j], TY_DTYPE_F32, &loop, (void **)&out[j], err,
                             err_len)) != 0)
      return rc;
  ty_cuda_fused_call call = {r->name, r->n_in, r->n_out, r->n_params, r->cls,   shapes,
                             &loop,   in,      out,      r->params,   e->stream};
  rc = ty_cuda_fused_launch(e->mods[s->region], &call, err, err_len);
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err);
    return ty__node_err(err, err_len, first, rc, "fused region on the GPU: %s", inner);
  }
  return 0;
}
