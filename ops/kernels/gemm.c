/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gemm and MatMul on OpenBLAS's cblas_sgemm. MatMul's batch dims broadcast
 * (numpy rules); each batch entry is one sgemm call, which is the right
 * trade for the small batch counts of MLP and attention layers.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <string.h>

int ty__k_gemm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *a = in[0], *b = in[1], *c = in[2];
  ty_tensor *y = out[0];
  if (!y) return 0;
  bool ta = ty_graph_node_attr_int(n, "transA", 0) != 0, tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  float alpha = ty_graph_node_attr_float(n, "alpha", 1.0f), beta = ty_graph_node_attr_float(n, "beta", 1.0f);
  int64_t m = y->shape.dims[0], nn = y->shape.dims[1];
  int64_t k = a->shape.dims[ta ? 0 : 1];
  float *yd = y->data;
  if (c && beta != 0.0f) {
    /* Broadcast C into Y, then let sgemm accumulate with beta. */
    int64_t st[TY_MAX_RANK];
    ty_broadcast_strides(&c->shape, &y->shape, st);
    const float *cd = c->data;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < nn; j++) yd[i * nn + j] = cd[i * st[0] + j * st[1]];
  } else {
    beta = 0.0f;
  }
  if (m == 0 || nn == 0) return 0;
  if (k == 0) {
    for (int64_t i = 0; i < m * nn; i++) yd[i] *= beta;
    return 0;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
              (blasint)nn, (blasint)k, alpha, a->data, (blasint)a->shape.dims[1], b->data,
              (blasint)b->shape.dims[1], beta, yd, (blasint)nn);
  return 0;
}

/* Offset (in matrices) of batch entry `linear` of out within an operand
 * whose batch dims broadcast to out's. */
static int64_t batch_offset(const ty_shape *op_batch, const ty_shape *out_batch, int64_t linear) {
  int64_t st[TY_MAX_RANK], off = 0;
  ty_broadcast_strides(op_batch, out_batch, st);
  for (int d = out_batch->rank - 1; d >= 0; d--) {
    int64_t i = linear % out_batch->dims[d];
    linear /= out_batch->dims[d];
    off += i * st[d];
  }
  return off;
}

int ty__k_matmul(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  ty_tensor *y = out[0];
  if (!y) return 0;
  ty_shape a = in[0]->shape, b = in[1]->shape;
  if (a.rank == 1) a = ty_shape_make(2, (int64_t[]){1, a.dims[0]});
  if (b.rank == 1) b = ty_shape_make(2, (int64_t[]){b.dims[0], 1});
  int64_t m = a.dims[a.rank - 2], k = a.dims[a.rank - 1], nn = b.dims[b.rank - 1];
  ty_shape ba = ty_shape_make(a.rank - 2, a.dims), bb = ty_shape_make(b.rank - 2, b.dims), bo;
  if (ty_shape_broadcast(&ba, &bb, &bo) != 0) return TY_EINTERNAL;
  int64_t batches = ty_shape_numel(&bo);
  const float *ad = in[0]->data, *bd = in[1]->data;
  float *yd = y->data;
  if (m == 0 || nn == 0 || batches == 0) return 0;
  if (k == 0) {
    memset(yd, 0, y->nbytes);
    return 0;
  }
  for (int64_t i = 0; i < batches; i++) {
    const float *pa = ad + batch_offset(&ba, &bo, i) * m * k;
    const float *pb = bd + batch_offset(&bb, &bo, i) * k * nn;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)nn, (blasint)k, 1.0f, pa,
                (blasint)k, pb, (blasint)nn, 0.0f, yd + i * m * nn, (blasint)nn);
  }
  return 0;
}
