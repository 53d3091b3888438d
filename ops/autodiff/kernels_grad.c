/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the elementwise, softmax/loss, shape and reduction
 * ops. Every kernel writes the gradient of ONE forward input into c->dx,
 * which the executor zero-filled with that input's shape.
 *
 * Broadcasting is undone where it happened: a broadcast input's gradient is
 * the sum of dY over the stretched dims, accumulated in double so a bias
 * summed over a large batch keeps float precision.
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"
#include "ops/fold_softmax.h"
#include "ops/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Walks dY's shape with an odometer, keeping element offsets of a and b. */
typedef struct walk {
  int r;
  int64_t dims[TY_MAX_RANK], sa[TY_MAX_RANK], sb[TY_MAX_RANK], idx[TY_MAX_RANK];
  int64_t oa, ob;
} walk;

static void walk_init(walk *w, const ty_shape *out, const ty_shape *a, const ty_shape *b) {
  memset(w, 0, sizeof *w);
  w->r = out->rank;
  memcpy(w->dims, out->dims, sizeof w->dims);
  ty_broadcast_strides(a, out, w->sa);
  ty_broadcast_strides(b, out, w->sb);
}

static void walk_next(walk *w) {
  for (int d = w->r - 1; d >= 0; d--) {
    w->idx[d]++;
    w->oa += w->sa[d];
    w->ob += w->sb[d];
    if (w->idx[d] < w->dims[d]) return;
    w->oa -= w->sa[d] * w->idx[d];
    w->ob -= w->sb[d] * w->idx[d];
    w->idx[d] = 0;
  }
}

static double binary_partial(ty_op op, int wrt, double a, double b, double dy) {
  switch (op) {
  case TY_OP_ADD:
    return dy;
  case TY_OP_SUB:
    return wrt == 0 ? dy : -dy;
  case TY_OP_MUL:
    return wrt == 0 ? dy * b : dy * a;
  case TY_OP_DIV:
    return wrt == 0 ? dy / b : -dy * a / (b * b);
  case TY_OP_PRELU:
    return wrt == 0 ? (a < 0 ? dy * b : dy) : (a < 0 ? dy * a : 0);
  case TY_OP_MOD:
    return wrt == 0 ? dy : -dy * trunc(a / b); /* fmod: a - trunc(a / b) * b */
  default:                                     /* Pow */
    if (wrt == 0) return b == 0 ? 0 : dy * b * pow(a, b - 1);
    return a > 0 ? dy * log(a) * pow(a, b) : 0;
  }
}

typedef struct bin_job {
  ty_op op;
  int wrt;
  const float *a, *b, *dy;
  bool other_scalar; /* the other operand is one element */
  float *dx;
  int64_t rows, cols;
} bin_job;

/* dX for an input of dY's shape, the other operand of dY's shape or one
 * element: float loops that give the bits of the double formula (a product
 * or quotient of two floats rounds once either way). */
static void bin_same_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const bin_job *j = arg;
  const float *dy = j->dy, *o = j->wrt == 0 ? j->b : j->a;
  float *dx = j->dx, o0 = o[0];
  bool neg = j->op == TY_OP_SUB && j->wrt == 1;
  switch (j->op) {
  case TY_OP_MUL:
    if (j->other_scalar)
      for (int64_t i = lo; i < hi; i++)
        dx[i] = dy[i] * o0;
    else
      for (int64_t i = lo; i < hi; i++)
        dx[i] = dy[i] * o[i];
    break;
  case TY_OP_DIV: /* wrt 0 only */
    if (j->other_scalar)
      for (int64_t i = lo; i < hi; i++)
        dx[i] = dy[i] / o0;
    else
      for (int64_t i = lo; i < hi; i++)
        dx[i] = dy[i] / o[i];
    break;
  default:
    if (neg)
      for (int64_t i = lo; i < hi; i++)
        dx[i] = -dy[i];
    else
      memcpy(dx + lo, dy + lo, (size_t)(hi - lo) * sizeof *dx);
  }
}

/* Add/Sub into an input broadcast along the leading dims (a bias): column
 * sums of dY viewed as [rows, cols], in double, rows in order (the order of
 * the general path). */
TY_VMATH_CLONES static void add_row(double *acc, const float *g, int64_t n) {
  for (int64_t c = 0; c < n; c++)
    acc[c] += g[c];
}

/* Eight rows (stride apart) added to acc in row order, each column's sum
 * held in a register meanwhile: the same sums as eight add_row calls, with
 * one load and store of acc instead of eight (the sums' loads and stores,
 * not the rows', bounded the bias gradients of the GPT). */
#define BIAS_ROWS 8
TY_VMATH_CLONES static void add_rows8(double *acc, const float *g, int64_t stride, int64_t n) {
  const float *g0 = g, *g1 = g + stride, *g2 = g1 + stride, *g3 = g2 + stride, *g4 = g3 + stride,
              *g5 = g4 + stride, *g6 = g5 + stride, *g7 = g6 + stride;
  for (int64_t c = 0; c < n; c++) {
    double s = acc[c];
    s += g0[c];
    s += g1[c];
    s += g2[c];
    s += g3[c];
    s += g4[c];
    s += g5[c];
    s += g6[c];
    s += g7[c];
    acc[c] = s;
  }
}

/* Columns summed BIAS_COLS at a time into the caller's own stack: a
 * shared sum array had two threads writing the cache lines at their
 * chunks' border on every row (the split ran twice slower than one
 * thread on the GPT's [2048, 128..512] biases). */
#define BIAS_COLS 256
#define BIAS_GRAIN 64 /* columns per chunk at least: 256 bytes of each row */

static void bin_bias_cols(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const bin_job *j = arg;
  float sign = j->op == TY_OP_SUB && j->wrt == 1 ? -1.0f : 1.0f;
  double acc[BIAS_COLS];
  for (int64_t c0 = lo; c0 < hi; c0 += BIAS_COLS) {
    int64_t w = hi - c0 < BIAS_COLS ? hi - c0 : BIAS_COLS;
    memset(acc, 0, sizeof acc);
    int64_t r = 0;
    for (; r + BIAS_ROWS <= j->rows; r += BIAS_ROWS)
      add_rows8(acc, j->dy + r * j->cols + c0, j->cols, w);
    for (; r < j->rows; r++)
      add_row(acc, j->dy + r * j->cols + c0, w);
    for (int64_t c = 0; c < w; c++)
      j->dx[c0 + c] = sign * (float)acc[c];
  }
}

/* True when x's shape, leading 1s aside, is dY's trailing dims. */
static bool trailing_of(const ty_shape *x, const ty_shape *dy) {
  int k = x->rank;
  while (k > 0 && x->dims[x->rank - k] == 1)
    k--;
  if (k > dy->rank) return false;
  for (int i = 1; i <= k; i++)
    if (x->dims[x->rank - i] != dy->dims[dy->rank - i]) return false;
  return true;
}

/* The fast paths of ty__g_binary; 1 when none applies. */
static int binary_fast(ty__gctx *c, const ty_tensor *a, const ty_tensor *b) {
  int64_t n = ty_tensor_numel(c->dy), nd = ty_tensor_numel(c->dx);
  const ty_tensor *x = c->wrt == 0 ? a : b, *other = c->wrt == 0 ? b : a;
  bool addsub = c->op == TY_OP_ADD || c->op == TY_OP_SUB;
  if (b->dtype != TY_DTYPE_F32 || c->n->opset < 7) return 1; /* legacy broadcast attributes */
  bin_job j = {.op = c->op,
               .wrt = c->wrt,
               .a = a->data,
               .b = b->data,
               .dy = c->dy->data,
               .dx = c->dx->data,
               .other_scalar = ty_tensor_numel(other) == 1};
  if (nd == n && ty_shape_equal(&x->shape, &c->dy->shape) &&
      (addsub || ((c->op == TY_OP_MUL || (c->op == TY_OP_DIV && c->wrt == 0)) &&
                  (j.other_scalar || ty_shape_equal(&other->shape, &c->dy->shape))))) {
    ty__parallel_for(c->workers, n, TY__PAR_GRAIN, bin_same_range, &j);
    return 0;
  }
  if (!addsub || nd <= 0 || !trailing_of(&x->shape, &c->dy->shape)) return 1;
  j.cols = nd;
  j.rows = n / nd;
  int64_t grain = TY__PAR_GRAIN / (j.rows + 1) + 1;
  ty__parallel_for(c->workers, nd, grain > BIAS_GRAIN ? grain : BIAS_GRAIN, bin_bias_cols, &j);
  return 0;
}

int ty__g_binary(ty__gctx *c) {
  const ty_tensor *a = c->x[0], *b = c->x[1];
  ty_tensor *bf = NULL; /* Pow's exponent may be int64: read it as float */
  if (a->dtype != TY_DTYPE_F32) return TY_EUNSUPPORTED;
  if (b->dtype == TY_DTYPE_I64) {
    if (ty_tensor_create(TY_DTYPE_F32, &b->shape, &bf) != 0) return TY_ENOMEM;
    for (int64_t i = 0; i < ty_tensor_numel(b); i++)
      ty_tensor_f32(bf)[i] = (float)ty_tensor_i64(b)[i];
    b = bf;
  }
  int rc = binary_fast(c, a, b);
  if (rc <= 0) {
    ty_tensor_destroy(bf);
    return rc;
  }
  int64_t n = ty_tensor_numel(c->dy), nd = ty_tensor_numel(c->dx);
  double *acc = calloc((size_t)(nd ? nd : 1), sizeof *acc);
  if (!acc) {
    ty_tensor_destroy(bf);
    return TY_ENOMEM;
  }
  ty_shape bs =
      ty__binary_bshape(c->n, c->op, &a->shape, &b->shape); /* legacy per-axis broadcast */
  walk w;
  walk_init(&w, &c->dy->shape, &a->shape, &bs);
  const float *ad = a->data, *bd = b->data, *dy = c->dy->data;
  for (int64_t i = 0; i < n; i++, walk_next(&w)) {
    double g = binary_partial(c->op, c->wrt, ad[w.oa], bd[w.ob], dy[i]);
    acc[c->wrt == 0 ? w.oa : w.ob] += g;
  }
  float *dx = c->dx->data;
  for (int64_t i = 0; i < nd; i++)
    dx[i] = (float)acc[i];
  free(acc);
  ty_tensor_destroy(bf);
  return 0;
}

typedef struct unary_grad_job {
  ty_op op;
  float alpha;
  const float *x, *y, *dy;
  float *dx;
} unary_grad_job;

/* Relu's gradient, the CNNs' largest elementwise pass (dY of every conv
 * output): cloned for AVX-512 and AVX2 (ops/vmath.h), a select, so every
 * width gives the same bits. A NaN input passes its gradient, as
 * torch's threshold_backward (x <= 0 ? 0 : dY). */
TY_VMATH_CLONES static void relu_grad(const float *x, const float *dy, float *dx, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    dx[i] = x[i] <= 0 ? 0.0f : dy[i];
}

/* One loop per op, so each vectorises. */
static void unary_grad_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const unary_grad_job *j = arg;
  const float *x = j->x, *y = j->y, *dy = j->dy;
  float *dx = j->dx, alpha = j->alpha;
  switch (j->op) {
  case TY_OP_RELU:
    relu_grad(x + lo, dy + lo, dx + lo, hi - lo);
    break;
  case TY_OP_LEAKY_RELU:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = x[i] > 0 ? dy[i] : alpha * dy[i];
    break;
  case TY_OP_SIGMOID:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    break;
  case TY_OP_TANH:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    break;
  case TY_OP_ERF:
    ty_vmath_erf_grad(dy + lo, x + lo, dx + lo, hi - lo);
    break;
  case TY_OP_SQRT:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i] * 0.5f / y[i];
    break;
  case TY_OP_EXP:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i] * y[i];
    break;
  case TY_OP_LOG:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i] / x[i];
    break;
  case TY_OP_NEG:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = -dy[i];
    break;
  default:
    for (int64_t i = lo; i < hi; i++)
      dx[i] = dy[i];
    break;
  }
}

int ty__g_unary(ty__gctx *c) {
  unary_grad_job j = {.op = c->op,
                      .alpha = ty_graph_node_attr_float(c->n, "alpha", 0.01f),
                      .x = c->x[0]->data,
                      .y = c->ny > 0 && c->y[0] ? c->y[0]->data : NULL,
                      .dy = c->dy->data,
                      .dx = c->dx->data};
  if (!j.y && c->op != TY_OP_RELU && c->op != TY_OP_LEAKY_RELU && c->op != TY_OP_NEG &&
      c->op != TY_OP_IDENTITY && c->op != TY_OP_ERF && c->op != TY_OP_LOG)
    return TY_EINVAL; /* sigmoid, tanh, sqrt and exp read the forward output */
  ty__parallel_for(c->workers, ty_tensor_numel(c->dx), TY__PAR_GRAIN, unary_grad_range, &j);
  return 0;
}

/* The [outer, dim, inner] view of Softmax's axis (see kernels/softmax.c). */
static int softmax_view(const ty_graph_node *n, const ty_shape *s, int64_t *outer, int64_t *dim,
                        int64_t *inner) {
  bool legacy = n->opset < 13;
  int axis, rank = s->rank ? s->rank : 1;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", legacy ? 1 : -1), rank, &axis) != 0)
    return TY_EINTERNAL;
  if (s->rank == 0) {
    *outer = *dim = *inner = 1;
    return 0;
  }
  *outer = ty_shape_span(s, 0, axis);
  *dim = legacy ? ty_shape_span(s, axis, s->rank) : s->dims[axis];
  *inner = legacy ? 1 : ty_shape_span(s, axis + 1, s->rank);
  return 0;
}

typedef struct sm_grad_job {
  const float *y, *dy;
  float *dx;
  int64_t dim, inner;
  bool log_sm;
  const ty__smf *fold; /* a folded Softmax (inner 1), or NULL */
} sm_grad_job;

/* sum a[i] b[i] in double, four lanes (the order moves the sum by far less
 * than a float's rounding). */
TY_VMATH_CLONES static double dot4(const float *a, const float *b, int64_t n) {
  ty_v4d s = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    s += ty_v4d_load(a + i) * ty_v4d_load(b + i);
  double s0 = s[0];
  for (; i < n; i++)
    s0 += (double)a[i] * b[i];
  return (s0 + s[1]) + (s[2] + s[3]);
}

TY_VMATH_CLONES static void softmax_grad_rows(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const sm_grad_job *j = arg;
  int64_t dim = j->dim, inner = j->inner;
  for (int64_t o = lo; o < hi; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * dim * inner + i;
      double s = 0;
      if (inner == 1 && !j->log_sm)
        s = dot4(j->dy + base, j->y + base, dim);
      else
        for (int64_t d = 0; d < dim; d++) {
          int64_t at = base + d * inner;
          s += j->log_sm ? j->dy[at] : (double)j->dy[at] * j->y[at];
        }
      for (int64_t d = 0; d < dim; d++) {
        int64_t at = base + d * inner;
        j->dx[at] = j->log_sm ? (float)(j->dy[at] - exp((double)j->y[at]) * s)
                              : (float)(j->y[at] * (j->dy[at] - s));
      }
      if (j->fold) ty__smf_row_grad(j->fold, o, j->dx + base);
    }
}

int ty__g_softmax(ty__gctx *c) {
  const ty_tensor *y = c->ny > 0 ? c->y[0] : NULL;
  if (!y) return TY_EINVAL;
  int64_t outer, dim, inner;
  if (softmax_view(c->n, &y->shape, &outer, &dim, &inner) != 0) return TY_EINTERNAL;
  ty__smf fold;
  bool folded = c->op == TY_OP_SOFTMAX && ty__smf_folded(c->n);
  if (folded && (inner != 1 || ty__smf_init(c->n, &y->shape, c->nx > 1 ? c->x[1] : NULL, &fold)))
    return TY_EINTERNAL; /* inference checked both */
  sm_grad_job j = {y->data,
                   c->dy->data,
                   c->dx->data,
                   dim,
                   inner,
                   c->op == TY_OP_LOG_SOFTMAX,
                   folded ? &fold : NULL};
  ty__parallel_for(c->workers, outer, TY__PAR_GRAIN / (4 * dim * inner + 1) + 1, softmax_grad_rows,
                   &j);
  return 0;
}

/* d loss / d scores = g * w[y] * (softmax - onehot(y)) / denominator. */
typedef struct sce_grad_job {
  const float *x, *w, *dy;
  const int64_t *y;
  float *dx;
  int64_t cl, inner;
  const ty_graph_attr *ig;
  bool none;
  double scale; /* 1 / the weight sum for mean, else 1 */
} sce_grad_job;

/* Items are (image, position) pairs: dX = g * (softmax(x) - onehot). */
static void sce_grad_items(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const sce_grad_job *j = arg;
  int64_t cl = j->cl, inner = j->inner;
  for (int64_t at = lo; at < hi; at++) {
    int64_t b = at / inner, i = at % inner, lbl = j->y[at];
    const float *px = j->x + b * cl * inner + i;
    float *pdx = j->dx + b * cl * inner + i;
    if (j->ig && lbl == j->ig->i) {
      for (int64_t k = 0; k < cl; k++)
        pdx[k * inner] = 0.0f;
      continue;
    }
    double g = (j->none ? j->dy[at] : j->dy[0]) * (j->w ? j->w[lbl] : 1.0) * j->scale, sum = 0;
    float mx = -INFINITY;
    if (inner == 1) { /* the usual [N, C] logits: a contiguous row, vectorised */
      mx = ty__row_max(px, cl);
      for (int64_t k = 0; k < cl; k++)
        pdx[k] = px[k] - mx;
      ty_vmath_exp(pdx, pdx, cl);
      sum = ty__sum4(pdx, cl, 0.0);
    } else {
      for (int64_t k = 0; k < cl; k++)
        mx = px[k * inner] > mx ? px[k * inner] : mx;
      for (int64_t k = 0; k < cl; k++) {
        float e = ty_vexpf(px[k * inner] - mx);
        pdx[k * inner] = e;
        sum += e;
      }
    }
    double gs = g / sum;
    for (int64_t k = 0; k < cl; k++)
      pdx[k * inner] = (float)(gs * pdx[k * inner] - (k == lbl ? g : 0.0));
  }
}

int ty__g_sce(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *lab = c->x[1], *wt = c->nx > 2 ? c->x[2] : NULL;
  const ty_shape *s = &x->shape;
  const char *red = ty_graph_node_attr_string(c->n, "reduction", "mean");
  sce_grad_job j = {.x = x->data,
                    .w = wt ? wt->data : NULL,
                    .dy = c->dy->data,
                    .y = lab->data,
                    .dx = c->dx->data,
                    .cl = s->dims[1],
                    .inner = ty_shape_span(s, 2, s->rank),
                    .ig = ty_graph_node_attr(c->n, "ignore_index"),
                    .none = strcmp(red, "none") == 0};
  int64_t items = s->dims[0] * j.inner;
  double wsum = 0;
  for (int64_t i = 0; i < items; i++) {
    if (j.ig && j.y[i] == j.ig->i) continue;
    if (j.y[i] < 0 || j.y[i] >= j.cl) return TY_EINVAL;
    wsum += j.w ? j.w[j.y[i]] : 1.0;
  }
  j.scale = strcmp(red, "mean") == 0 && wsum != 0 ? 1.0 / wsum : 1.0;
  ty__parallel_for(c->workers, items, TY__PAR_GRAIN / (4 * j.cl + 1) + 1, sce_grad_items, &j);
  return 0;
}

int ty__g_reshape(ty__gctx *c) {
  if (c->dy->nbytes != c->dx->nbytes) return TY_EINTERNAL;
  /* Memory planning may hand dX dY's buffer (a view: ops/fusion/region.c). */
  if (c->dx->data != c->dy->data) memcpy(c->dx->data, c->dy->data, c->dx->nbytes);
  return 0;
}

int ty__g_concat(ty__gctx *c) {
  const ty_shape *ys = &c->dy->shape;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", 0), ys->rank, &axis) != 0)
    return TY_EINTERNAL;
  int64_t off = 0;
  for (int i = 0; i < c->wrt; i++)
    off += c->x[i]->shape.dims[axis];
  int64_t outer = ty_shape_span(ys, 0, axis), inner = ty_shape_span(ys, axis + 1, ys->rank);
  int64_t yrow = ys->dims[axis] * inner, xrow = c->dx->shape.dims[axis] * inner;
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t o = 0; o < outer; o++)
    memcpy(dx + o * xrow, dy + o * yrow + off * inner, (size_t)xrow * sizeof *dx);
  return 0;
}

int ty__g_gather(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *ind = c->x[1];
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", 0), x->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  int64_t outer = ty_shape_span(&x->shape, 0, axis), dim = x->shape.dims[axis];
  int64_t inner = ty_shape_span(&x->shape, axis + 1, x->shape.rank), ni = ty_tensor_numel(ind);
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t k = ty__geti(ind->dtype, ind->data, j);
      if (k < 0) k += dim;
      if (k < 0 || k >= dim) return TY_EINVAL;
      const float *src = dy + (o * ni + j) * inner;
      float *dst = dx + (o * dim + k) * inner;
      for (int64_t i = 0; i < inner; i++)
        dst[i] += src[i];
    }
  return 0;
}

/* dX = dY broadcast back over the reduced axes (/ count for the mean). */
int ty__g_reduce(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int64_t xnum = ty_tensor_numel(x), ynum = ty_tensor_numel(c->dy);
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  ty_graph_node f = *c->n; /* the forward node: its op and opset say where axes are */
  f.op = c->op;
  f.n_inputs = c->nx;
  bool red[TY_MAX_RANK], noop;
  if (ty__reduce_mask(&f, c->x, x->shape.rank, red, &noop) != 0) return TY_EINTERNAL;
  if (noop || ynum == xnum) {
    memcpy(dx, dy, c->dx->nbytes);
    return 0;
  }
  int64_t ys[TY_MAX_RANK];
  ty__reduce_slots(&x->shape, red, ys);
  ty__odo w;
  ty__odo_init_strided(&w, &x->shape, ys, 0);
  float scale = c->op == TY_OP_REDUCE_MEAN && ynum ? (float)((double)ynum / (double)xnum) : 1.0f;
  for (int64_t i = 0; i < xnum; i++, ty__odo_next(&w))
    dx[i] = dy[w.off[0]] * scale;
  return 0;
}

/* Gemm's C: beta * dY summed over the dims C was broadcast along. A and B
 * are differentiated by plain Gemm nodes (see autodiff.c). */
int ty__g_gemm_bias(ty__gctx *c) {
  if (c->wrt != 2) return TY_EUNSUPPORTED;
  float beta = ty_graph_node_attr_float(c->n, "beta", 1.0f);
  int64_t n = ty_tensor_numel(c->dy), nd = ty_tensor_numel(c->dx);
  double *acc = calloc((size_t)(nd ? nd : 1), sizeof *acc);
  if (!acc) return TY_ENOMEM;
  walk w;
  walk_init(&w, &c->dy->shape, &c->dx->shape, &c->dx->shape);
  const float *dy = c->dy->data;
  for (int64_t i = 0; i < n; i++, walk_next(&w))
    acc[w.oa] += dy[i];
  float *dx = c->dx->data;
  for (int64_t i = 0; i < nd; i++)
    dx[i] = (float)(beta * acc[i]);
  free(acc);
  return 0;
}

int ty__g_dropout(ty__gctx *c) {
  const ty_tensor *mask = c->ny > 1 ? c->y[1] : NULL;
  const ty_tensor *rt = c->nx > 1 ? c->x[1] : NULL, *tm = c->nx > 2 ? c->x[2] : NULL;
  float ratio = rt ? ty_tensor_f32(rt)[0] : ty_graph_node_attr_float(c->n, "ratio", 0.5f);
  bool training = c->training || (tm && ty_tensor_bool(tm)[0]);
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  int64_t n = ty_tensor_numel(c->dx);
  if (!training || ratio == 0.0f) {
    memcpy(dx, dy, c->dx->nbytes);
    return 0;
  }
  if (!mask) return TY_EINVAL;
  const uint8_t *m = mask->data;
  float scale = 1.0f / (1.0f - ratio);
  for (int64_t i = 0; i < n; i++)
    dx[i] = m[i] ? dy[i] * scale : 0.0f;
  return 0;
}
