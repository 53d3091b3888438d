/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the layers: MatMul, Conv (1-D to 3-D, groups,
 * strides, pads, dilations), MaxPool/AveragePool (1-D to 3-D),
 * GlobalAveragePool, BatchNormalization and LayerNormalization (a node
 * per input, or dX, dScale and dB from one node in one sweep).
 *
 * Conv follows the forward kernel's im2col layout: the filter gradient is
 * dY x col^T per image and group (one cblas_sgemm, accumulated over blocks
 * of images, the blocks summed in order), the data gradient is W^T x dY
 * scattered back with col2im; images and blocks are split over the
 * executor's threads. Where meson found oneDNN, one-group convs take its
 * backward-data and backward-weights primitives instead
 * (kernels/conv_dnnl.c), the filter gradient again as per-block partials
 * added in block order.
 * MaxPool routes dY to the first maximum of each window, the element the
 * forward kernel picked.
 */
#include "ops/autodiff/grad_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"
#include "ops/vmath.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- MatMul -------------------------------------------------------------- */
/* dA = dY B^T and dB = A^T dY through kernels/matmul.c's driver, each
 * operand read (and dX written) through the forward node's permutation,
 * so a folded Transpose needs no gradient copy either. Where the operand
 * was broadcast over the batch, its entries' products are summed in entry
 * order. */
int ty__g_matmul(ty__gctx *c) {
  ty__mm_view va, vb;
  ty_shape batch;
  if (ty__mm_view_of(c->n, 0, &c->x[0]->shape, &va) != 0 ||
      ty__mm_view_of(c->n, 1, &c->x[1]->shape, &vb) != 0 || ty__mm_batch(&va, &vb, &batch) != 0)
    return TY_EINTERNAL; /* shape inference refused these */
  int64_t m = va.dims.dims[va.dims.rank - 2], k = va.dims.dims[va.dims.rank - 1],
          n = vb.dims.dims[vb.dims.rank - 1];
  ty__mm_mat g = {.p = c->dy->data, .sr = n, .sc = 1};
  int64_t acc = m * n;
  for (int d = batch.rank - 1; d >= 0; d--) {
    g.st[d] = acc;
    acc *= batch.dims[d];
  }
  size_t numel = (size_t)ty_tensor_numel(c->dx);
  if (c->wrt == 0) { /* dA = dY B^T, m x k */
    ty__mm_mat bt = ty__mm_mat_of(&vb, &batch, c->x[1]->data, true),
               da = ty__mm_mat_of(&va, &batch, c->dx->data, false);
    ty__mm_batched(c->workers, &batch, &g, &bt, &da, m, k, n, numel);
  } else { /* dB = A^T dY, k x n */
    ty__mm_mat at = ty__mm_mat_of(&va, &batch, c->x[0]->data, true),
               db = ty__mm_mat_of(&vb, &batch, c->dx->data, false);
    ty__mm_batched(c->workers, &batch, &at, &g, &db, k, n, m, numel);
  }
  return 0;
}

/* ---- Conv ---------------------------------------------------------------- */
/* Images per block of the filter gradient: each block sums its images into
 * its own partial, and the partials are added in block order, so the sum
 * is the same whatever the thread count. */
#define CONV_DW_BLOCK 8

typedef struct conv_grad_job {
  ty__conv_geom g;
  int64_t batch, group, m, mg, kdim, osz, isz;
  const float *x, *w, *dy;
  float *dx;   /* dX, or the per-block partials of dW */
  float *cols; /* one column buffer per thread */
  size_t ncol;
} conv_grad_job;

/* dW: item = (block, group); partial[block] += dY[b,g] col(x[b,g])^T. */
static void conv_dw_items(void *arg, int64_t begin, int64_t end, int slot) {
  const conv_grad_job *j = arg;
  float *col = j->cols + (size_t)slot * j->ncol;
  bool again = false; /* col holds an earlier image's columns (and their zeros) */
  for (int64_t it = begin; it < end; it++) {
    int64_t blk = it / j->group, gi = it % j->group, b0 = blk * CONV_DW_BLOCK;
    float *part = j->dx + (blk * j->m + gi * j->mg) * j->kdim;
    for (int64_t b = b0; b < b0 + CONV_DW_BLOCK && b < j->batch; b++, again = true) {
      ty__im2col(j->x + (b * j->group + gi) * j->isz, &j->g, again, col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)j->mg, (blasint)j->kdim,
                  (blasint)j->osz, 1.0f, j->dy + (b * j->m + gi * j->mg) * j->osz, (blasint)j->osz,
                  col, (blasint)j->osz, b == b0 ? 0.0f : 1.0f, part, (blasint)j->kdim);
    }
  }
}

/* dX: item = (image, group); col = W[g]^T dY[b,g], dX[b,g] += col2im(col). */
static void conv_dx_items(void *arg, int64_t begin, int64_t end, int slot) {
  const conv_grad_job *j = arg;
  float *col = j->cols + (size_t)slot * j->ncol;
  for (int64_t it = begin; it < end; it++) {
    int64_t b = it / j->group, gi = it % j->group;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)j->kdim, (blasint)j->osz,
                (blasint)j->mg, 1.0f, j->w + gi * j->mg * j->kdim, (blasint)j->kdim,
                j->dy + (b * j->m + gi * j->mg) * j->osz, (blasint)j->osz, 0.0f, col,
                (blasint)j->osz);
    float *dx = j->dx + (b * j->group + gi) * j->isz; /* not zero-filled: ty__grad_overwrites */
    memset(dx, 0, (size_t)j->isz * sizeof *dx);
    ty__col2im_add(col, &j->g, dx);
  }
}

/* dB: item = output channel; the sum of its planes of dY, BatchNorm's
 * vectorised sweep (kernels/bn_sweep.c). */
static void conv_db_items(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const conv_grad_job *j = arg;
  for (int64_t oc = begin; oc < end; oc++) {
    ty__bn_sums s;
    ty__bn_sweep(NULL, j->dy, j->batch, j->m, j->osz, oc, TY__BN_DY, &s);
    j->dx[oc] = (float)s.sdy;
  }
}

/* dW as the sum, in block order, of per-block partials (blocks of
 * CONV_DW_BLOCK images in conv_dw, of TY__DNNL_BLOCK through oneDNN): the
 * same sum whatever the thread count. */
static void conv_dw_sum(const float *part, int64_t blocks, int64_t nw, float *dw) {
  for (int64_t i = 0; i < nw; i++)
    dw[i] = part[i]; /* dW is not zero-filled: ty__grad_overwrites */
  for (int64_t blk = 1; blk < blocks; blk++)
    for (int64_t i = 0; i < nw; i++)
      dw[i] += part[blk * nw + i];
}

static int conv_dw(conv_grad_job *j, ty_workers *w, float *dw) {
  int64_t blocks = (j->batch + CONV_DW_BLOCK - 1) / CONV_DW_BLOCK;
  size_t n_part; /* blocks x the filter: no larger than the batch's column matrices */
  if (ty_mul_overflow((size_t)blocks, (size_t)(j->m * j->kdim), &n_part) ||
      ty_mul_overflow(n_part, sizeof(float), &n_part))
    return TY_ETOOBIG;
  if (!(j->dx = malloc(n_part))) return TY_ENOMEM;
  ty__parallel_for(w, blocks * j->group, 1, conv_dw_items, j);
  conv_dw_sum(j->dx, blocks, j->m * j->kdim, dw);
  free(j->dx);
  return 0;
}

#if TY_HAVE_DNNL
/* dX or dW through oneDNN (kernels/conv_dnnl.c); TY_EUNSUPPORTED: use im2col. */
static int conv_dnnl(const conv_grad_job *j, ty__gctx *c) {
  ty__conv_dnnl_call d = {.g = j->g,
                          .batch = j->batch,
                          .m = j->m,
                          .x = j->x,
                          .w = j->w,
                          .y = j->dy,
                          .out = c->dx->data};
  if (c->wrt == 0) {
    d.kind = TY__DNNL_BWD_DATA;
    return ty__conv_dnnl_run(&d, c->workers);
  }
  int64_t blocks = (j->batch + TY__DNNL_BLOCK - 1) / TY__DNNL_BLOCK, nw = j->m * j->kdim;
  size_t n_part;
  if (ty_mul_overflow((size_t)blocks, (size_t)nw, &n_part) ||
      ty_mul_overflow(n_part, sizeof(float), &n_part))
    return TY_ETOOBIG;
  float *part = malloc(n_part);
  if (!part) return TY_ENOMEM;
  d.kind = TY__DNNL_BWD_WEIGHTS;
  d.w = NULL;
  d.out = part;
  int rc = ty__conv_dnnl_run(&d, c->workers);
  if (rc == 0) conv_dw_sum(part, blocks, nw, c->dx->data);
  free(part);
  return rc;
}
#endif

int ty__g_conv(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *wt = c->x[1];
  conv_grad_job j = {.batch = x->shape.dims[0],
                     .group = ty_graph_node_attr_int(c->n, "group", 1),
                     .m = wt->shape.dims[0],
                     .x = x->data,
                     .w = wt->data,
                     .dy = c->dy->data,
                     .dx = c->dx->data};
  int rc = ty__conv_geom_init(c->n, &x->shape, &wt->shape, &c->dy->shape, &j.g);
  if (rc != 0) return rc;
  j.mg = j.m / j.group;
  j.kdim = ty__conv_kdim(&j.g);
  j.osz = ty__conv_osz(&j.g);
  j.isz = ty__conv_isz(&j.g);
  if (c->wrt == 2) {
    ty__parallel_for(c->workers, j.m, 8, conv_db_items, &j);
    return 0;
  }
  if (j.osz == 0 || j.kdim == 0 || j.batch == 0) { /* a zero gradient (dX is not zero-filled) */
    memset(c->dx->data, 0, c->dx->nbytes);
    return 0;
  }
#if TY_HAVE_DNNL
  if (j.group == 1 && (rc = conv_dnnl(&j, c)) != TY_EUNSUPPORTED) return rc;
#endif
  if ((rc = ty__conv_cols(&j.g, c->workers, true, &j.cols, &j.ncol)) != 0) return rc;
  if (c->wrt == 1)
    rc = conv_dw(&j, c->workers, c->dx->data);
  else
    ty__parallel_for(c->workers, j.batch * j.group, 1, conv_dx_items, &j);
  free(j.cols);
  return rc;
}

/* ---- pooling ------------------------------------------------------------- */
typedef struct pool_grad_job {
  const ty__pool3 *p;
  const ty__pool3_span *sp;
  bool is_max, incl_pad;
  const float *x, *dy;
  float *dx;
  int64_t isz, osz;
} pool_grad_job;

static void pool_grad_planes(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const pool_grad_job *j = arg;
  bool overwrites = ty__pool3_back_overwrites(j->p, j->is_max);
  for (int64_t pl = begin; pl < end; pl++) {
    if (!overwrites) /* dX is not zero-filled: ty__grad_overwrites */
      memset(j->dx + pl * j->isz, 0, (size_t)j->isz * sizeof *j->dx);
    ty__pool3_plane_back(j->p, j->sp, j->x + pl * j->isz, j->dy + pl * j->osz, j->is_max,
                         j->incl_pad, j->dx + pl * j->isz);
  }
}

int ty__g_pool(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  ty__window w;
  if (ty__window_read(c->n, x->shape.rank - 2, NULL, x->shape.dims + 2, &w, NULL, 0) != 0)
    return TY_EINTERNAL;
  ty__pool3 p;
  ty__pool3_init(&w, &x->shape, &c->dy->shape, &p);
  ty__pool3_span *sp;
  int rc = ty__pool3_spans(&p, &sp);
  if (rc != 0) return rc;
  pool_grad_job j = {.p = &p,
                     .sp = sp,
                     .is_max = c->op == TY_OP_MAX_POOL,
                     .incl_pad = w.count_include_pad,
                     .x = x->data,
                     .dy = c->dy->data,
                     .dx = c->dx->data,
                     .isz = p.in[0] * p.in[1] * p.in[2],
                     .osz = p.out[0] * p.out[1] * p.out[2]};
  ty__parallel_for(c->workers, x->shape.dims[0] * x->shape.dims[1], 16384 / (j.isz + 1) + 1,
                   pool_grad_planes, &j);
  free(sp);
  return 0;
}

int ty__g_global_pool(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int64_t planes = x->shape.dims[0] * x->shape.dims[1],
          sz = ty_shape_span(&x->shape, 2, x->shape.rank);
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < sz; i++)
      dx[pl * sz + i] = dy[pl] / (float)sz;
  return 0;
}

/* ---- normalisation ------------------------------------------------------- */
/* Per channel: xhat = (x - mean) * inv; with batch statistics
 * dX = scale * inv / M * (M * dy - sum dy - xhat * sum(dy * xhat)). */
typedef struct bn_grad_job {
  const ty__gctx *c;
  const float *x, *scale, *rmean, *rvar, *dy;
  float *dx;
  int64_t nb, ch, sp;
  float eps;
  bool training;
} bn_grad_job;

/* Each of the three TyGrad nodes (dX, dScale, dB) takes only the sums it
 * needs from one sweep (kernels/bn_sweep.c): dB sum(dy) alone, dScale and
 * dX the statistics and sum(dy * (x - mean)) together; the batch
 * statistics are the forward's, bit for bit. dX is then one float pass:
 * dX = (A dy + C) + Bx (x - mean). */
static void bn_grad_channels(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const bn_grad_job *j = arg;
  int wrt = j->c->wrt;
  int64_t nb = j->nb, ch = j->ch, sp = j->sp;
  unsigned what = wrt == 2 ? TY__BN_DY : TY__BN_DYX;
  for (int64_t k = lo; k < hi; k++) {
    ty__bn_sums s;
    ty__bn_sweep(j->x, j->dy, nb, ch, sp, k, what, &s);
    double cnt = s.count, mean = j->rmean[k], var = j->rvar[k];
    if (j->training && cnt > 0) {
      mean = (float)s.mean; /* as the forward stored them */
      var = (float)s.var;
    }
    double inv = 1.0 / sqrt(var + j->eps);
    double sdyx = (s.sdyx - (mean - s.mean) * s.sdy) * inv; /* about the mean used */
    if (wrt == 1) j->dx[k] = (float)sdyx;
    if (wrt == 2) j->dx[k] = (float)s.sdy;
    if (wrt != 0) continue;
    bool batch = j->training && cnt > 0;
    double a = batch ? j->scale[k] * inv / cnt : j->scale[k] * inv;
    float fa = (float)(batch ? a * cnt : a), fc = batch ? (float)(-a * s.sdy) : 0.0f,
          fb = batch ? (float)(-a * inv * sdyx) : 0.0f;
    for (int64_t n = 0; n < nb; n++) {
      const float *px = j->x + (n * ch + k) * sp, *pd = j->dy + (n * ch + k) * sp;
      float *pdx = j->dx + (n * ch + k) * sp;
      if (batch)
        ty__bn_dx(px, pd, pdx, sp, fa, fc, (float)mean, fb);
      else
        ty__bn_affine(pd, pdx, sp, fa, 0.0f);
    }
  }
}

int ty__g_batch_norm(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  bn_grad_job j = {.c = c,
                   .x = x->data,
                   .scale = c->x[1]->data,
                   .rmean = c->x[3]->data,
                   .rvar = c->x[4]->data,
                   .dy = c->dy->data,
                   .dx = c->dx->data,
                   .nb = x->shape.dims[0],
                   .ch = x->shape.dims[1],
                   .sp = ty_shape_span(&x->shape, 2, x->shape.rank),
                   .eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f),
                   .training =
                       ty_graph_node_attr_int(c->n, "training_mode", 0) != 0 || c->training};
  ty__parallel_for(c->workers, j.ch, TY__PAR_GRAIN / (j.nb * j.sp + 1) + 1, bn_grad_channels, &j);
  return 0;
}

typedef struct ln_grad_job {
  const float *x, *scale, *dy;
  float *dx;
  double *mean, *inv; /* per row */
  double *acc;        /* per column: dScale or dB */
  int64_t rows, cols, ns, nd;
  float eps;
  int wrt;
} ln_grad_job;

/* sum g and sum g xh over a row (g = dY scale, xh the normalised x), in
 * eight lanes each (two vectors, added in a fixed order): in double the
 * order moves the sums far below a float's rounding, and eight chains
 * pipeline where one waits on every add. The
 * scale is read at sc[i * ss]: ss is a constant 1 or 0 (a scalar scale) at
 * each call, so each copy vectorises. */
static inline __attribute__((always_inline)) void ln_sums4(const float *px, const float *pg,
                                                           const float *sc, int64_t ss,
                                                           int64_t cols, double mean, double inv,
                                                           double *out_sg, double *out_sgx) {
  ty_v4d sg = {0, 0, 0, 0}, sgx = {0, 0, 0, 0}, s1 = {0, 0, 0, 0}, sg2 = sg, sgx2 = sg;
  s1 += (double)sc[0]; /* the scalar scale, used when ss is 0 */
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) { /* two chains per sum: each add waits on the last */
    ty_v4d xh = (ty_v4d_load(px + i) - mean) * inv,
           gi = ty_v4d_load(pg + i) * (ss ? ty_v4d_load(sc + i) : s1);
    ty_v4d xh2 = (ty_v4d_load(px + i + 4) - mean) * inv,
           gi2 = ty_v4d_load(pg + i + 4) * (ss ? ty_v4d_load(sc + i + 4) : s1);
    sg += gi;
    sgx += gi * xh;
    sg2 += gi2;
    sgx2 += gi2 * xh2;
  }
  sg += sg2;
  sgx += sgx2;
  for (; i + 4 <= cols; i += 4) {
    ty_v4d xh = (ty_v4d_load(px + i) - mean) * inv,
           gi = ty_v4d_load(pg + i) * (ss ? ty_v4d_load(sc + i) : s1);
    sg += gi;
    sgx += gi * xh;
  }
  double sg0 = sg[0], sgx0 = sgx[0];
  for (; i < cols; i++) {
    double xh = (px[i] - mean) * inv, gi = pg[i] * (double)sc[i * ss];
    sg0 += gi;
    sgx0 += gi * xh;
  }
  *out_sg = (sg0 + sg[1]) + (sg[2] + sg[3]);
  *out_sgx = (sgx0 + sgx[1]) + (sgx[2] + sgx[3]);
}

TY_VMATH_CLONES static void ln_row_sums(const ln_grad_job *j, const float *px, const float *pg,
                                        double mean, double inv, double *out_sg, double *out_sgx) {
  if (j->ns == 1)
    ln_sums4(px, pg, j->scale, 0, j->cols, mean, inv, out_sg, out_sgx);
  else
    ln_sums4(px, pg, j->scale, 1, j->cols, mean, inv, out_sg, out_sgx);
}

/* dX of a row (pdx) from its moments and sums; the scale as in ln_sums4. */
static inline __attribute__((always_inline)) void ln_dx_row(const float *px, const float *pg,
                                                            const float *sc, int64_t ss, float *pdx,
                                                            int64_t cols, double mean, double inv,
                                                            double sg, double sgx) {
  for (int64_t i = 0; i < cols; i++) {
    double xh = (px[i] - mean) * inv, gi = pg[i] * (double)sc[i * ss];
    pdx[i] = (float)(inv / (double)cols * ((double)cols * gi - sg - xh * sgx));
  }
}

/* dX of row r, given its moments and its sums (ln_row_sums). */
TY_VMATH_CLONES static void ln_row_dx(const ln_grad_job *j, int64_t r, double mean, double inv,
                                      double sg, double sgx) {
  int64_t cols = j->cols;
  const float *px = j->x + r * cols, *pg = j->dy + r * cols;
  if (j->ns == 1)
    ln_dx_row(px, pg, j->scale, 0, j->dx + r * cols, cols, mean, inv, sg, sgx);
  else
    ln_dx_row(px, pg, j->scale, 1, j->dx + r * cols, cols, mean, inv, sg, sgx);
}

/* Rows [lo, hi): their moments (which dB does not need), and dX when wrt
 * is 0. */
static void ln_grad_rows(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const ln_grad_job *j = arg;
  int64_t cols = j->cols;
  for (int64_t r = lo; r < hi; r++) {
    const float *px = j->x + r * cols, *pg = j->dy + r * cols;
    double mean, inv, sg = 0, sgx = 0;
    ty__moments(px, cols, j->eps, &mean, &inv);
    j->mean[r] = mean;
    j->inv[r] = inv;
    if (j->wrt != 0) continue;
    ln_row_sums(j, px, pg, mean, inv, &sg, &sgx);
    ln_row_dx(j, r, mean, inv, sg, sgx);
  }
}

/* Columns [lo, hi) of dScale (wrt 1) or dB (wrt 2), rows in order. */
static void ln_grad_cols(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const ln_grad_job *j = arg;
  for (int64_t r = 0; r < j->rows; r++) {
    const float *px = j->x + r * j->cols, *pg = j->dy + r * j->cols;
    for (int64_t i = lo; i < hi; i++)
      j->acc[i] += j->wrt == 1 ? pg[i] * ((px[i] - j->mean[r]) * j->inv[r]) : pg[i];
  }
  for (int64_t i = lo; i < hi; i++)
    j->dx[i] = (float)j->acc[i];
}

/* ---- dX, dScale and dB from one node (ty__grad_all_inputs_node) ---- */

/* Rows per block: each block sums its rows' dScale and dB terms per column,
 * in row order, into its own partials; the partials are then added in
 * block order. The blocks do not depend on the thread count, so neither
 * do the sums. */
#define LN_BLOCK 32

typedef struct ln_one_job {
  ln_grad_job j;   /* dx NULL when X wants no gradient */
  double *ds, *db; /* per block, cols each; NULL when not wanted */
} ln_one_job;

/* A row's dScale (ds) and dB (db) terms added per column; either NULL. */
TY_VMATH_CLONES static void ln_row_partials(double *ds, double *db, const float *px,
                                            const float *pg, int64_t cols, double mean,
                                            double inv) {
  for (int64_t i = 0; ds && i < cols; i++)
    ds[i] += pg[i] * ((px[i] - mean) * inv);
  for (int64_t i = 0; db && i < cols; i++)
    db[i] += pg[i];
}

/* Doubles at any 8-byte alignment, for the partials' rows. */
typedef double ln_v4d_u __attribute__((vector_size(32), aligned(8), may_alias));

/* ln_row_partials and ln_sums4 in one sweep over a row, for the usual case
 * that wants dX, dScale and dB: the same per-element terms and the same
 * lanes as the two, so the same bits, with x and dY read and xh computed
 * once instead of twice. */
static inline __attribute__((always_inline)) void
ln_partials_sums(double *ds, double *db, const float *px, const float *pg, const float *sc,
                 int64_t ss, int64_t cols, double mean, double inv, double *out_sg,
                 double *out_sgx) {
  ty_v4d sg = {0, 0, 0, 0}, sgx = sg, sg2 = sg, sgx2 = sg, s1 = sg;
  s1 += (double)sc[0];
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    ty_v4d g = ty_v4d_load(pg + i), g2 = ty_v4d_load(pg + i + 4);
    ty_v4d xh = (ty_v4d_load(px + i) - mean) * inv, xh2 = (ty_v4d_load(px + i + 4) - mean) * inv;
    *(ln_v4d_u *)(ds + i) += g * xh;
    *(ln_v4d_u *)(ds + i + 4) += g2 * xh2;
    *(ln_v4d_u *)(db + i) += g;
    *(ln_v4d_u *)(db + i + 4) += g2;
    ty_v4d gi = g * (ss ? ty_v4d_load(sc + i) : s1), gi2 = g2 * (ss ? ty_v4d_load(sc + i + 4) : s1);
    sg += gi;
    sgx += gi * xh;
    sg2 += gi2;
    sgx2 += gi2 * xh2;
  }
  sg += sg2;
  sgx += sgx2;
  for (; i + 4 <= cols; i += 4) {
    ty_v4d g = ty_v4d_load(pg + i), xh = (ty_v4d_load(px + i) - mean) * inv;
    *(ln_v4d_u *)(ds + i) += g * xh;
    *(ln_v4d_u *)(db + i) += g;
    ty_v4d gi = g * (ss ? ty_v4d_load(sc + i) : s1);
    sg += gi;
    sgx += gi * xh;
  }
  double sg0 = sg[0], sgx0 = sgx[0];
  for (; i < cols; i++) {
    double xh = (px[i] - mean) * inv, gi = pg[i] * (double)sc[i * ss];
    ds[i] += pg[i] * xh;
    db[i] += pg[i];
    sg0 += gi;
    sgx0 += gi * xh;
  }
  *out_sg = (sg0 + sg[1]) + (sg[2] + sg[3]);
  *out_sgx = (sgx0 + sgx[1]) + (sgx[2] + sgx[3]);
}

TY_VMATH_CLONES static void ln_row_partials_sums(const ln_grad_job *j, double *ds, double *db,
                                                 const float *px, const float *pg, double mean,
                                                 double inv, double *out_sg, double *out_sgx) {
  if (j->ns == 1)
    ln_partials_sums(ds, db, px, pg, j->scale, 0, j->cols, mean, inv, out_sg, out_sgx);
  else
    ln_partials_sums(ds, db, px, pg, j->scale, 1, j->cols, mean, inv, out_sg, out_sgx);
}

static void ln_one_blocks(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const ln_one_job *f = arg;
  const ln_grad_job *j = &f->j;
  int64_t cols = j->cols;
  for (int64_t b = lo; b < hi; b++) {
    double *ds = f->ds ? f->ds + b * cols : NULL, *db = f->db ? f->db + b * cols : NULL;
    if (ds) memset(ds, 0, (size_t)cols * sizeof *ds);
    if (db) memset(db, 0, (size_t)cols * sizeof *db);
    int64_t end = (b + 1) * LN_BLOCK < j->rows ? (b + 1) * LN_BLOCK : j->rows;
    for (int64_t r = b * LN_BLOCK; r < end; r++) {
      const float *px = j->x + r * cols, *pg = j->dy + r * cols;
      double mean, inv, sg = 0, sgx = 0;
      ty__moments(px, cols, j->eps, &mean, &inv);
      if (ds && db && j->dx) {
        ln_row_partials_sums(j, ds, db, px, pg, mean, inv, &sg, &sgx);
        ln_row_dx(j, r, mean, inv, sg, sgx);
        continue;
      }
      ln_row_partials(ds, db, px, pg, cols, mean, inv);
      if (!j->dx) continue;
      ln_row_sums(j, px, pg, mean, inv, &sg, &sgx);
      ln_row_dx(j, r, mean, inv, sg, sgx);
    }
  }
}

/* out (cols values, or one: a scalar scale or bias) from the blocks'
 * partials: per column in block order, a scalar then over the columns. */
static int ln_one_reduce(const double *part, int64_t nblocks, int64_t cols, ty_tensor *out) {
  int64_t n = ty_tensor_numel(out);
  if (n != cols && n != 1) return TY_EINVAL;
  float *o = ty_tensor_f32(out);
  double all = 0;
  for (int64_t i = 0; i < cols; i++) {
    double s = 0;
    for (int64_t b = 0; b < nblocks; b++)
      s += part[b * cols + i];
    if (n == cols) o[i] = (float)s;
    all += s;
  }
  if (n == 1) o[0] = (float)all;
  return 0;
}

static int ln_grad_one(ty__gctx *c, const ln_grad_job *base) {
  ty_tensor *dsc = c->ndx > 1 ? c->dxs[1] : NULL, *dbi = c->ndx > 2 ? c->dxs[2] : NULL;
  ln_one_job f = {.j = *base};
  f.j.dx = c->dxs[0] ? c->dxs[0]->data : NULL;
  int64_t nblocks = (base->rows + LN_BLOCK - 1) / LN_BLOCK, cols = base->cols;
  if (base->ns != cols && base->ns != 1) return TY_EINVAL; /* as the forward kernel */
  size_t per = (size_t)(nblocks ? nblocks : 1) * (size_t)(cols ? cols : 1);
  double *buf = malloc(2 * per * sizeof *buf);
  if (!buf) return TY_ENOMEM;
  f.ds = dsc ? buf : NULL;
  f.db = dbi ? buf + per : NULL;
  ty__parallel_for(c->workers, nblocks, TY__PAR_GRAIN / (8 * LN_BLOCK * cols + 1) + 1,
                   ln_one_blocks, &f);
  int rc = dsc ? ln_one_reduce(f.ds, nblocks, cols, dsc) : 0;
  if (rc == 0 && dbi) rc = ln_one_reduce(f.db, nblocks, cols, dbi);
  free(buf);
  return rc;
}

int ty__g_layer_norm(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", -1), x->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  ln_grad_job j = {.x = x->data,
                   .scale = c->x[1]->data,
                   .dy = c->dy->data,
                   .dx = c->dx ? c->dx->data : NULL,
                   .rows = ty_shape_span(&x->shape, 0, axis),
                   .cols = ty_shape_span(&x->shape, axis, x->shape.rank),
                   .ns = ty_tensor_numel(c->x[1]),
                   .nd = c->dx ? ty_tensor_numel(c->dx) : 0,
                   .eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f),
                   .wrt = c->wrt};
  if (c->ndx > 1) return ln_grad_one(c, &j);
  size_t nr = (size_t)(j.rows ? j.rows : 1), na = c->wrt != 0 ? (size_t)(j.nd ? j.nd : 1) : 0;
  double *buf = calloc(2 * nr + na, sizeof *buf);
  if (!buf) return TY_ENOMEM;
  j.mean = buf;
  j.inv = buf + nr;
  j.acc = c->wrt != 0 ? buf + 2 * nr : NULL;
  if (c->wrt != 2)
    ty__parallel_for(c->workers, j.rows, TY__PAR_GRAIN / (4 * j.cols + 1) + 1, ln_grad_rows, &j);
  if (c->wrt != 0 && j.nd == 1) { /* a scalar scale or bias: one sum, rows then columns in order */
    for (int64_t r = 0; r < j.rows; r++)
      for (int64_t i = 0; i < j.cols; i++)
        j.acc[0] += c->wrt == 1
                        ? j.dy[r * j.cols + i] * ((j.x[r * j.cols + i] - j.mean[r]) * j.inv[r])
                        : j.dy[r * j.cols + i];
    j.dx[0] = (float)j.acc[0];
  } else if (c->wrt != 0) {
    ty__parallel_for(c->workers, j.nd, TY__PAR_GRAIN / (j.rows + 1) + 16, ln_grad_cols, &j);
  }
  free(buf);
  return 0;
}
