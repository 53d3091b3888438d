/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Softmax, LogSoftmax, Hardmax, SoftmaxCrossEntropyLoss and
 * NegativeLogLikelihoodLoss. All reduce along one axis
 * viewed as [outer, dim, inner]; inner is 1 for the usual last-axis case.
 * Before opset 13 Softmax flattened the input to 2-D at `axis`, which is the
 * same view with dim = product of the trailing dims.
 * Values are shifted by the row maximum so exp never overflows. Softmax
 * splits its rows over the executor's threads; its exp is ops/vmath.h's
 * for Softmax, LogSoftmax and SoftmaxCrossEntropyLoss alike (and so is the
 * one SoftmaxCrossEntropyLoss's gradient recomputes). A Softmax with
 * attention's scale and mask folded in (ops/fold_softmax.h) first writes
 * each row scaled and masked into its output, then normalises it there.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"
#include "ops/fold_softmax.h"
#include "ops/vmath.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct sm_job {
  const float *x;
  float *y;
  int64_t dim, inner;
  bool log_out;
  const ty__smf *fold; /* a folded Softmax (inner 1), or NULL */
} sm_job;

float ty__row_max(const float *px, int64_t dim) {
  float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8)
    for (int k = 0; k < 8; k++)
      m[k] = px[d + k] > m[k] ? px[d + k] : m[k];
  for (; d < dim; d++)
    m[0] = px[d] > m[0] ? px[d] : m[0];
  float mx = m[0];
  for (int k = 1; k < 8; k++)
    mx = m[k] > mx ? m[k] : mx;
  return mx;
}

/* py[d * inner] = exp(px[d * inner] - mx) for d < dim, and their sum in
 * double. A contiguous row (inner 1, the usual last axis) goes through
 * ops/vmath.h's vectorised exp, the same function as the Exp kernel, and
 * sums in four lanes (ty__sum4: in double, the order moves the sum by
 * far less than a float's rounding). */
static void softmax_exp(const float *px, float *py, int64_t dim, int64_t inner, float mx,
                        double *out_sum) {
  double sum = 0;
  if (inner == 1) {
    for (int64_t d = 0; d < dim; d++)
      py[d] = px[d] - mx;
    ty_vmath_exp(py, py, dim);
    sum = ty__sum4(py, dim, 0.0);
  } else {
    for (int64_t d = 0; d < dim; d++) {
      float e = ty_vexpf(px[d * inner] - mx);
      py[d * inner] = e;
      sum += e;
    }
  }
  *out_sum = sum;
}

/* Rows [lo, hi) of the outer dim: one exp per element, the sum in double
 * (what PyTorch computes in float, to a rounding). */
TY_VMATH_CLONES static void softmax_rows(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const sm_job *j = arg;
  int64_t dim = j->dim, inner = j->inner;
  for (int64_t o = lo; o < hi; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *px = j->x + o * dim * inner + i;
      float *py = j->y + o * dim * inner + i;
      if (j->fold) { /* the row scaled and masked, normalised in place */
        ty__smf_row(j->fold, o, px, py);
        px = py;
      }
      float mx = -INFINITY;
      if (inner == 1)
        mx = ty__row_max(px, dim);
      else
        for (int64_t d = 0; d < dim; d++)
          mx = px[d * inner] > mx ? px[d * inner] : mx;
      double sum = 0;
      if (j->log_out) {
        /* py holds the exps until the log-probabilities overwrite them. */
        softmax_exp(px, py, dim, inner, mx, &sum);
        double lse = log(sum);
        for (int64_t d = 0; d < dim; d++)
          py[d * inner] = (float)((double)(px[d * inner] - mx) - lse);
        continue;
      }
      softmax_exp(px, py, dim, inner, mx, &sum);
      double inv = 1.0 / sum;
      for (int64_t d = 0; d < dim; d++)
        py[d * inner] = (float)(py[d * inner] * inv);
    }
  }
}

/* 1 at the first maximum of each row, 0 elsewhere. */
static void hardmax_rows(const float *x, float *y, int64_t outer, int64_t dim, int64_t inner) {
  memset(y, 0, (size_t)(outer * dim * inner) * sizeof *y);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *px = x + o * dim * inner + i;
      int64_t best = 0;
      for (int64_t d = 1; d < dim; d++)
        if (px[d * inner] > px[best * inner]) best = d;
      if (dim) y[(o * dim + best) * inner + i] = 1.0f;
    }
}

int ty__k_softmax(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                  ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  const ty_shape *s = &x->shape;
  int rank = s->rank ? s->rank : 1, axis;
  bool legacy = n->opset < 13;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", legacy ? 1 : -1), rank, &axis) != 0)
    return TY_EINTERNAL;
  int64_t outer = ty_shape_span(s, 0, axis), dim, inner;
  if (s->rank == 0) {
    outer = dim = inner = 1;
  } else if (legacy) {
    dim = ty_shape_span(s, axis, s->rank);
    inner = 1;
  } else {
    dim = s->dims[axis];
    inner = ty_shape_span(s, axis + 1, s->rank);
  }
  ty__smf fold;
  bool folded = n->op == TY_OP_SOFTMAX && ty__smf_folded(n);
  if (folded && (inner != 1 || ty__smf_init(n, s, n->n_inputs > 1 ? in[1] : NULL, &fold) != 0))
    return TY_EINTERNAL; /* inference checked both */
  if (n->op == TY_OP_HARDMAX)
    hardmax_rows(x->data, out[0]->data, outer, dim, inner);
  else
    ty__parallel_for(ctx->workers, outer, TY__PAR_GRAIN / (4 * dim * inner + 1) + 1, softmax_rows,
                     &(sm_job){x->data, out[0]->data, dim, inner, n->op == TY_OP_LOG_SOFTMAX,
                               folded ? &fold : NULL});
  return 0;
}

typedef struct sce {
  int64_t n, c, inner;
  int64_t ignore;
  bool has_ignore;
  const float *w;
} sce;

/* Per-element losses into loss (N*inner) and their weights into wsum. */
static int sce_elements(const sce *p, const float *logp, const ty_tensor *labels, float *loss,
                        double *wsum, ty__kctx *ctx) {
  *wsum = 0;
  for (int64_t b = 0; b < p->n; b++) {
    for (int64_t i = 0; i < p->inner; i++) {
      int64_t at = b * p->inner + i, y = ty__geti(labels->dtype, labels->data, at);
      if (p->has_ignore && y == p->ignore) {
        loss[at] = 0;
        continue;
      }
      if (y < 0 || y >= p->c) {
        char also[64] = "";
        if (p->has_ignore)
          snprintf(also, sizeof also, " and is not the ignore_index %lld", (long long)p->ignore);
        return ty__kctx_why(ctx, TY_EINVAL,
                            "label %lld (sample %lld of the batch) is outside [0, %lld), the "
                            "classes%s",
                            (long long)y, (long long)b, (long long)p->c, also);
      }
      float w = p->w ? p->w[y] : 1.0f;
      loss[at] = -w * logp[(b * p->c + y) * p->inner + i];
      *wsum += w;
    }
  }
  return 0;
}

/* The loss of log-probabilities lp [N, C, d...] (reduction none, sum or
 * mean over the weights), into y; shared by both losses. */
static int nll(const ty_graph_node *n, const float *lp, const ty_shape *s, const ty_tensor *labels,
               const ty_tensor *weights, ty_tensor *y, ty__kctx *ctx) {
  sce p = {.n = s->dims[0],
           .c = s->dims[1],
           .inner = ty_shape_span(s, 2, s->rank),
           .w = weights ? weights->data : NULL};
  const ty_graph_attr *ig = ty_graph_node_attr(n, "ignore_index");
  p.has_ignore = ig != NULL;
  p.ignore = ig ? ig->i : 0;
  const char *red = ty_graph_node_attr_string(n, "reduction", "mean");
  bool none = strcmp(red, "none") == 0;
  if (none && !y) return 0;
  ty_tensor *lossbuf = NULL;
  int rc = none ? 0 : ty_tensor_create(TY_DTYPE_F32, &labels->shape, &lossbuf);
  double wsum, total = 0;
  if (rc == 0) rc = sce_elements(&p, lp, labels, none ? y->data : lossbuf->data, &wsum, ctx);
  if (rc == 0 && !none && y) {
    for (int64_t i = 0; i < p.n * p.inner; i++)
      total += ty_tensor_f32(lossbuf)[i];
    ty_tensor_f32(y)[0] = (float)(strcmp(red, "sum") == 0 ? total : total / wsum);
  }
  ty_tensor_destroy(lossbuf);
  return rc;
}

int ty__k_sce_loss(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                   ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  ty_tensor *logp = out[1], *tmp = NULL;
  int rc = 0;
  if (!logp && (rc = ty_tensor_create(TY_DTYPE_F32, &x->shape, &tmp)) != 0) return rc;
  float *lp = logp ? logp->data : tmp->data;
  int64_t dim = x->shape.dims[1], inner = ty_shape_span(&x->shape, 2, x->shape.rank);
  ty__parallel_for(ctx->workers, x->shape.dims[0], TY__PAR_GRAIN / (4 * dim * inner + 1) + 1,
                   softmax_rows, &(sm_job){x->data, lp, dim, inner, true, NULL});
  rc = nll(n, lp, &x->shape, in[1], n->n_inputs > 2 ? in[2] : NULL, out[0], ctx);
  ty_tensor_destroy(tmp);
  return rc;
}

int ty__k_nll_loss(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                   ty__kctx *ctx) {
  return nll(n, in[0]->data, &in[0]->shape, in[1], n->n_inputs > 2 ? in[2] : NULL, out[0], ctx);
}
