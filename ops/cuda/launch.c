/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host side of the hand-written kernels (kernels/NAME.cu): each source is
 * compiled once for the device (through the NVRTC cache) and loaded as a
 * module when ty_cuda_kernels_create runs, and one function per kernel
 * checks its sizes and launches it. Row kernels get one 256-thread block
 * per row (grid-stride over rows beyond the grid); element kernels 256
 * threads per block, enough blocks to cover the device a few times.
 * Everything is asynchronous on the caller's stream; pointers are device
 * memory.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK 256u
#define MAX_GRID 65536

struct ty_cuda_kernels {
  const ty_cuda_source *src;
  ty_cuda_module **mod; /* per source */
  size_t n;
};

int ty_cuda_kernels_create(ty_cuda_rtc *rtc, ty_cuda_kernels **out_kernels, char *err,
                           size_t err_len) {
  ty_cuda_kernels *k = calloc(1, sizeof *k);
  if (!k) return TY_ENOMEM;
  k->src = ty_cuda_kernel_sources(&k->n);
  k->mod = calloc(k->n, sizeof *k->mod);
  int rc = k->mod ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < k->n; i++) {
    void *img = NULL;
    size_t len = 0;
    rc = ty_cuda_rtc_compile(rtc, k->src[i].src, k->src[i].name, &img, &len, err, err_len);
    if (rc == 0) rc = ty_cuda_module_load(img, &k->mod[i], err, err_len);
    free(img);
  }
  if (rc != 0) {
    ty_cuda_kernels_destroy(k);
    return rc;
  }
  *out_kernels = k;
  return 0;
}

void ty_cuda_kernels_destroy(ty_cuda_kernels *k) {
  if (!k) return;
  for (size_t i = 0; k->mod && i < k->n; i++)
    ty_cuda_module_unload(k->mod[i]);
  free(k->mod);
  free(k);
}

static int launch(ty_cuda_kernels *k, const char *file, const char *entry, int64_t work, bool rows,
                  void *stream, void **args, char *err, size_t err_len) {
  for (size_t i = 0; i < k->n; i++) {
    if (strcmp(k->src[i].name, file) != 0) continue;
    int64_t blocks = rows ? work : (work + BLOCK - 1) / BLOCK;
    unsigned grid = (unsigned)(blocks < 1 ? 1 : blocks < MAX_GRID ? blocks : MAX_GRID);
    return ty_cuda_module_launch(k->mod[i], entry, grid, BLOCK, 0, stream, args, err, err_len);
  }
  return ty_errf(err, err_len, TY_EINTERNAL, "cuda: no kernel source %s", file);
}

static int check_rows(const char *what, int64_t rows, int64_t cols, char *err, size_t err_len) {
  if (rows < 0 || cols < 1)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %lld rows of %lld columns", what, (long long)rows,
                   (long long)cols);
  return 0;
}

int ty_cuda_softmax(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x, float *y, bool log,
                    char *err, size_t err_len) {
  int rc = check_rows("softmax", r->rows, r->cols, err, err_len), lg = log;
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &x, &y, &lg};
  return rc ? rc : launch(k, "softmax", "ty_softmax", r->rows, true, r->stream, args, err, err_len);
}

int ty_cuda_softmax_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *y, const float *dy,
                        float *dx, bool log, char *err, size_t err_len) {
  int rc = check_rows("softmax backward", r->rows, r->cols, err, err_len), lg = log;
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &y, &dy, &dx, &lg};
  return rc ? rc
            : launch(k, "softmax", "ty_softmax_bwd", r->rows, true, r->stream, args, err, err_len);
}

int ty_cuda_layer_norm(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x,
                       const float *gamma, const float *beta, float eps, float *y, float *mean,
                       float *rstd, char *err, size_t err_len) {
  int rc = check_rows("layer norm", r->rows, r->cols, err, err_len);
  if (rc == 0 && !(eps > 0.0f))
    rc = ty_errf(err, err_len, TY_EINVAL, "layer norm: epsilon %g must be > 0", (double)eps);
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &x, &gamma, &beta, &eps, &y, &mean, &rstd};
  return rc ? rc
            : launch(k, "layer_norm", "ty_layer_norm", r->rows, true, r->stream, args, err,
                     err_len);
}

int ty_cuda_layer_norm_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x,
                           const float *gamma, const float *mean, const float *rstd,
                           const float *dy, float *dx, float *dgamma, float *dbeta, char *err,
                           size_t err_len) {
  int rc = check_rows("layer norm backward", r->rows, r->cols, err, err_len);
  void *args[] = {
      (void *)&r->rows, (void *)&r->cols, &x, &gamma, &mean, &rstd, &dy, &dx, &dgamma, &dbeta};
  return rc ? rc
            : launch(k, "layer_norm", "ty_layer_norm_bwd", r->rows, true, r->stream, args, err,
                     err_len);
}

int ty_cuda_xent(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *logits,
                 const int64_t *labels, float *loss, float *prob, int64_t *bad, char *err,
                 size_t err_len) {
  int rc = check_rows("cross-entropy", r->rows, r->cols, err, err_len);
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &logits, &labels, &loss, &prob, &bad};
  return rc ? rc
            : launch(k, "cross_entropy", "ty_xent", r->rows, true, r->stream, args, err, err_len);
}

int ty_cuda_xent_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *prob,
                     const int64_t *labels, float scale, float *dlogits, char *err,
                     size_t err_len) {
  int rc = check_rows("cross-entropy backward", r->rows, r->cols, err, err_len);
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &prob, &labels, &scale, &dlogits};
  return rc ? rc
            : launch(k, "cross_entropy", "ty_xent_bwd", r->rows * r->cols, false, r->stream, args,
                     err, err_len);
}

/* rows: the indices; cols: the embedding width. */
int ty_cuda_embedding(ty_cuda_kernels *k, const ty_cuda_rows *r, int64_t vocab, const float *table,
                      const int64_t *idx, float *out, int64_t *bad, char *err, size_t err_len) {
  int rc = check_rows("embedding", r->rows, r->cols, err, err_len);
  if (rc == 0 && vocab < 1)
    rc = ty_errf(err, err_len, TY_EINVAL, "embedding: vocabulary of %lld", (long long)vocab);
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &vocab, &table, &idx, &out, &bad};
  return rc ? rc
            : launch(k, "embedding", "ty_embedding_gather", r->rows * r->cols, false, r->stream,
                     args, err, err_len);
}

int ty_cuda_embedding_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, int64_t vocab,
                          const float *dout, const int64_t *idx, float *dtable, char *err,
                          size_t err_len) {
  int rc = check_rows("embedding backward", r->rows, r->cols, err, err_len);
  void *args[] = {(void *)&r->rows, (void *)&r->cols, &vocab, &dout, &idx, &dtable};
  return rc ? rc
            : launch(k, "embedding", "ty_embedding_scatter_add", r->rows * r->cols, false,
                     r->stream, args, err, err_len);
}

/* The index space of a copy or a reduction: at most 8 dims, each > 0. */
static int check_dims(const char *what, int rank, const int64_t *dims, int64_t *out_n, char *err,
                      size_t err_len) {
  if (rank < 0 || rank > 8)
    return ty_errf(err, err_len, TY_EINVAL, "%s: rank %d (at most 8)", what, rank);
  size_t n = 1;
  for (int d = 0; d < rank; d++) {
    if (dims[d] < 1 || ty_mul_overflow(n, (size_t)dims[d], &n) || n > (size_t)INT64_MAX)
      return ty_errf(err, err_len, TY_EINVAL, "%s: dim %d is %lld", what, d, (long long)dims[d]);
  }
  *out_n = (int64_t)n;
  return 0;
}

int ty_cuda_strided_copy(ty_cuda_kernels *k, const ty_cuda_copy *c, const float *in, float *out,
                         void *stream, char *err, size_t err_len) {
  int64_t n = 0, s[1 + 3 * 8] = {c->rank};
  int rc = check_dims("strided copy", c->rank, c->dims, &n, err, err_len);
  for (int d = 0; rc == 0 && d < c->rank; d++) {
    s[1 + d] = c->dims[d];
    s[9 + d] = c->in_strides[d];
    s[17 + d] = c->out_strides[d];
  }
  void *args[] = {&n, s, &in, &out};
  return rc ? rc : launch(k, "copy", "ty_strided_copy", n, false, stream, args, err, err_len);
}

int ty_cuda_reduce_sum(ty_cuda_kernels *k, const ty_cuda_reduce *r, float scale, const float *in,
                       float *out, void *stream, char *err, size_t err_len) {
  int64_t n_out = 0, n_red = 0, s[2 + 4 * 8] = {r->n_keep};
  int rc = check_dims("reduce (kept dims)", r->n_keep, r->keep_dims, &n_out, err, err_len);
  if (rc == 0) rc = check_dims("reduce (summed dims)", r->n_red, r->red_dims, &n_red, err, err_len);
  s[17] = r->n_red;
  for (int d = 0; rc == 0 && d < 8; d++) {
    s[1 + d] = d < r->n_keep ? r->keep_dims[d] : 1;
    s[9 + d] = d < r->n_keep ? r->keep_strides[d] : 0;
    s[18 + d] = d < r->n_red ? r->red_dims[d] : 1;
    s[26 + d] = d < r->n_red ? r->red_strides[d] : 0;
  }
  void *args[] = {&n_out, &n_red, s, &scale, &in, &out};
  return rc ? rc : launch(k, "reduce", "ty_reduce_sum", n_out, true, stream, args, err, err_len);
}

/* The Where shape argument: rank, dims, then the three operands' strides. */
static int where_shape(const ty_cuda_where_shape *w, int64_t *s, int64_t *out_n, char *err,
                       size_t err_len) {
  int rc = check_dims("where", w->rank, w->dims, out_n, err, err_len);
  s[0] = w->rank;
  for (int d = 0; rc == 0 && d < w->rank; d++) {
    s[1 + d] = w->dims[d];
    s[9 + d] = w->cond_strides[d];
    s[17 + d] = w->x_strides[d];
    s[25 + d] = w->y_strides[d];
  }
  return rc;
}

int ty_cuda_where(ty_cuda_kernels *k, const ty_cuda_where_shape *w, const uint8_t *cond,
                  const float *x, const float *y, float *out, void *stream, char *err,
                  size_t err_len) {
  int64_t n = 0, s[1 + 4 * 8] = {0};
  int rc = where_shape(w, s, &n, err, err_len);
  void *args[] = {&n, s, &cond, &x, &y, &out};
  return rc ? rc : launch(k, "where", "ty_where", n, false, stream, args, err, err_len);
}

int ty_cuda_where_bwd(ty_cuda_kernels *k, const ty_cuda_where_shape *w, const uint8_t *cond,
                      const float *dy, bool take_true, float *dx, void *stream, char *err,
                      size_t err_len) {
  int64_t n = 0, s[1 + 4 * 8] = {0};
  int rc = where_shape(w, s, &n, err, err_len);
  int take = take_true ? 1 : 0;
  void *args[] = {&n, s, &cond, &dy, &take, &dx};
  return rc ? rc : launch(k, "where", "ty_where_bwd", n, false, stream, args, err, err_len);
}
