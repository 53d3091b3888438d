/* SPDX-License-Identifier: Apache-2.0 */
/*
 * 2-D convolution, pooling and batch normalisation (training statistics)
 * forward and backward through cuDNN 9's legacy API (cudnnConvolution*,
 * cudnnPooling*, cudnnBatchNormalization*, still in cuDNN 9), NCHW float32,
 * on one handle bound to the caller's stream.
 *
 * Arithmetic matches the CPU kernels: convolutions use CUDNN_FMA_MATH (no
 * TF32 tensor cores), the algorithm is cuDNN's first heuristic choice, its
 * workspace a block of the caller's caching allocator. Descriptors are made
 * per call: simple, and small next to the kernels at these sizes.
 * Batch normalisation normalises with the batch's mean and biased variance
 * (ONNX training mode); the running statistics are the trainer's (host) and
 * cuDNN is not asked to update them.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <cudnn.h>
#include <stdlib.h>

struct ty_cuda_dnn {
  cudnnHandle_t h;
  void *stream;
  ty_cuda_alloc *alloc;
};

static int dnn_err(char *err, size_t err_len, cudnnStatus_t s, const char *what) {
  return ty_errf(err, err_len, TY_EIO, "cuDNN %s: %s", what, cudnnGetErrorString(s));
}

int ty_cuda_dnn_create(void *stream, ty_cuda_alloc *alloc, ty_cuda_dnn **out, char *err,
                       size_t err_len) {
  ty_cuda_dnn *d = calloc(1, sizeof *d);
  if (!d) return TY_ENOMEM;
  cudnnStatus_t s = cudnnCreate(&d->h);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(d->h, (cudaStream_t)stream);
  if (s != CUDNN_STATUS_SUCCESS) {
    if (d->h) cudnnDestroy(d->h);
    free(d);
    return dnn_err(err, err_len, s, "handle");
  }
  d->stream = stream;
  d->alloc = alloc;
  *out = d;
  return 0;
}

void ty_cuda_dnn_destroy(ty_cuda_dnn *d) {
  if (!d) return;
  cudnnDestroy(d->h);
  free(d);
}

/* ---- checks (pure) -------------------------------------------------------- */
static bool fits_int(int64_t v) {
  return v >= 0 && v <= INT32_MAX;
}

int ty_cuda_conv_check(const ty_cuda_conv *c, char *err, size_t err_len) {
  const int64_t all[] = {c->n,        c->c,        c->h,     c->w,      c->k,     c->r,
                         c->s,        c->p,        c->q,     c->groups, c->pad_h, c->pad_w,
                         c->stride_h, c->stride_w, c->dil_h, c->dil_w};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (!fits_int(all[i]))
      return ty_errf(err, err_len, TY_EINVAL, "conv: a size or attribute outside [0, 2^31)");
  if (c->groups < 1 || c->c % c->groups || c->k % c->groups)
    return ty_errf(err, err_len, TY_EINVAL, "conv: %lld groups do not divide %lld in, %lld out",
                   (long long)c->groups, (long long)c->c, (long long)c->k);
  if (c->stride_h < 1 || c->stride_w < 1 || c->dil_h < 1 || c->dil_w < 1)
    return ty_errf(err, err_len, TY_EINVAL, "conv: strides and dilations must be >= 1");
  int64_t p = (c->h + 2 * c->pad_h - c->dil_h * (c->r - 1) - 1) / c->stride_h + 1;
  int64_t q = (c->w + 2 * c->pad_w - c->dil_w * (c->s - 1) - 1) / c->stride_w + 1;
  if (p != c->p || q != c->q)
    return ty_errf(err, err_len, TY_EINVAL,
                   "conv: output %lld x %lld, the window gives %lld x %lld", (long long)c->p,
                   (long long)c->q, (long long)p, (long long)q);
  return 0;
}

int ty_cuda_pool_check(const ty_cuda_pool *p, char *err, size_t err_len) {
  const int64_t all[] = {p->n,  p->c,  p->h,     p->w,     p->p,        p->q,
                         p->kh, p->kw, p->pad_h, p->pad_w, p->stride_h, p->stride_w};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (!fits_int(all[i]))
      return ty_errf(err, err_len, TY_EINVAL, "pool: a size or attribute outside [0, 2^31)");
  if (p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1)
    return ty_errf(err, err_len, TY_EINVAL, "pool: window and strides must be >= 1");
  if (p->pad_h >= p->kh || p->pad_w >= p->kw)
    return ty_errf(err, err_len, TY_EINVAL, "pool: padding %lld x %lld reaches a whole window",
                   (long long)p->pad_h, (long long)p->pad_w);
  int64_t oh = (p->h + 2 * p->pad_h - p->kh) / p->stride_h + 1;
  int64_t ow = (p->w + 2 * p->pad_w - p->kw) / p->stride_w + 1;
  if (oh != p->p || ow != p->q)
    return ty_errf(err, err_len, TY_EINVAL,
                   "pool: output %lld x %lld, the window gives %lld x %lld", (long long)p->p,
                   (long long)p->q, (long long)oh, (long long)ow);
  return 0;
}

/* ---- descriptors -------------------------------------------------------------- */
typedef struct conv_desc {
  cudnnTensorDescriptor_t x, y, b;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
} conv_desc;

static void conv_desc_free(conv_desc *d) {
  if (d->x) cudnnDestroyTensorDescriptor(d->x);
  if (d->y) cudnnDestroyTensorDescriptor(d->y);
  if (d->b) cudnnDestroyTensorDescriptor(d->b);
  if (d->w) cudnnDestroyFilterDescriptor(d->w);
  if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

static cudnnStatus_t nchw(cudnnTensorDescriptor_t *t, int64_t n, int64_t c, int64_t h, int64_t w) {
  cudnnStatus_t s = cudnnCreateTensorDescriptor(t);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetTensor4dDescriptor(*t, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, (int)c, (int)h,
                                   (int)w);
  return s;
}

static int conv_desc_make(const ty_cuda_conv *c, conv_desc *d, char *err, size_t err_len) {
  int rc = ty_cuda_conv_check(c, err, err_len);
  if (rc != 0) return rc;
  cudnnStatus_t s = nchw(&d->x, c->n, c->c, c->h, c->w);
  if (s == CUDNN_STATUS_SUCCESS) s = nchw(&d->y, c->n, c->k, c->p, c->q);
  if (s == CUDNN_STATUS_SUCCESS) s = nchw(&d->b, 1, c->k, 1, 1);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateFilterDescriptor(&d->w);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)c->k,
                                   (int)(c->c / c->groups), (int)c->r, (int)c->s);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateConvolutionDescriptor(&d->conv);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetConvolution2dDescriptor(d->conv, (int)c->pad_h, (int)c->pad_w, (int)c->stride_h,
                                        (int)c->stride_w, (int)c->dil_h, (int)c->dil_w,
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionGroupCount(d->conv, (int)c->groups);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionMathType(d->conv, CUDNN_FMA_MATH);
  return s == CUDNN_STATUS_SUCCESS ? 0 : dnn_err(err, err_len, s, "convolution descriptors");
}

/* A workspace block of bytes (NULL for 0), returned with ws_put. */
static int ws_get(ty_cuda_dnn *d, size_t bytes, void **out, char *err, size_t err_len) {
  *out = NULL;
  if (bytes == 0) return 0;
  int rc = ty_cuda_alloc_get(d->alloc, bytes, d->stream, out);
  return rc ? ty_errf(err, err_len, rc, "cuDNN workspace of %zu bytes", bytes) : 0;
}

static void ws_put(ty_cuda_dnn *d, void *ws) {
  if (ws) ty_cuda_alloc_put(d->alloc, ws);
}

/* ---- convolution -------------------------------------------------------------- */
static const float one = 1.0f, zero = 0.0f;

static int conv_fwd_run(ty_cuda_dnn *d, conv_desc *cd, const float *x, const float *w, float *y,
                        char *err, size_t err_len) {
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int got = 0;
  size_t bytes = 0;
  void *ws = NULL;
  cudnnStatus_t s =
      cudnnGetConvolutionForwardAlgorithm_v7(d->h, cd->x, cd->w, cd->conv, cd->y, 8, &got, perf);
  if (s == CUDNN_STATUS_SUCCESS && (got < 1 || perf[0].status != CUDNN_STATUS_SUCCESS))
    s = CUDNN_STATUS_NOT_SUPPORTED;
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnGetConvolutionForwardWorkspaceSize(d->h, cd->x, cd->w, cd->conv, cd->y, perf[0].algo,
                                                &bytes);
  if (s != CUDNN_STATUS_SUCCESS) return dnn_err(err, err_len, s, "convolution forward algorithm");
  int rc = ws_get(d, bytes, &ws, err, err_len);
  if (rc != 0) return rc;
  s = cudnnConvolutionForward(d->h, &one, cd->x, x, cd->w, w, cd->conv, perf[0].algo, ws, bytes,
                              &zero, cd->y, y);
  ws_put(d, ws);
  return s == CUDNN_STATUS_SUCCESS ? 0 : dnn_err(err, err_len, s, "convolution forward");
}

int ty_cuda_conv_fwd(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *x, const float *w,
                     const float *bias, float *y, char *err, size_t err_len) {
  conv_desc cd = {0};
  int rc = conv_desc_make(c, &cd, err, err_len);
  if (rc == 0) rc = conv_fwd_run(d, &cd, x, w, y, err, err_len);
  if (rc == 0 && bias) {
    cudnnStatus_t s = cudnnAddTensor(d->h, &one, cd.b, bias, &one, cd.y, y);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution bias");
  }
  conv_desc_free(&cd);
  return rc;
}

int ty_cuda_conv_bwd_data(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *w, const float *dy,
                          float *dx, char *err, size_t err_len) {
  conv_desc cd = {0};
  cudnnConvolutionBwdDataAlgoPerf_t perf[8];
  int got = 0, rc = conv_desc_make(c, &cd, err, err_len);
  size_t bytes = 0;
  void *ws = NULL;
  cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
  if (rc == 0) {
    s = cudnnGetConvolutionBackwardDataAlgorithm_v7(d->h, cd.w, cd.y, cd.conv, cd.x, 8, &got, perf);
    if (s == CUDNN_STATUS_SUCCESS && (got < 1 || perf[0].status != CUDNN_STATUS_SUCCESS))
      s = CUDNN_STATUS_NOT_SUPPORTED;
    if (s == CUDNN_STATUS_SUCCESS)
      s = cudnnGetConvolutionBackwardDataWorkspaceSize(d->h, cd.w, cd.y, cd.conv, cd.x,
                                                       perf[0].algo, &bytes);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution data gradient");
  }
  if (rc == 0) rc = ws_get(d, bytes, &ws, err, err_len);
  if (rc == 0) {
    s = cudnnConvolutionBackwardData(d->h, &one, cd.w, w, cd.y, dy, cd.conv, perf[0].algo, ws,
                                     bytes, &zero, cd.x, dx);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution data gradient");
  }
  ws_put(d, ws);
  conv_desc_free(&cd);
  return rc;
}

int ty_cuda_conv_bwd_filter(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *x, const float *dy,
                            float *dw, char *err, size_t err_len) {
  conv_desc cd = {0};
  cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
  int got = 0, rc = conv_desc_make(c, &cd, err, err_len);
  size_t bytes = 0;
  void *ws = NULL;
  cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
  if (rc == 0) {
    s = cudnnGetConvolutionBackwardFilterAlgorithm_v7(d->h, cd.x, cd.y, cd.conv, cd.w, 8, &got,
                                                      perf);
    if (s == CUDNN_STATUS_SUCCESS && (got < 1 || perf[0].status != CUDNN_STATUS_SUCCESS))
      s = CUDNN_STATUS_NOT_SUPPORTED;
    if (s == CUDNN_STATUS_SUCCESS)
      s = cudnnGetConvolutionBackwardFilterWorkspaceSize(d->h, cd.x, cd.y, cd.conv, cd.w,
                                                         perf[0].algo, &bytes);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution filter gradient");
  }
  if (rc == 0) rc = ws_get(d, bytes, &ws, err, err_len);
  if (rc == 0) {
    s = cudnnConvolutionBackwardFilter(d->h, &one, cd.x, x, cd.y, dy, cd.conv, perf[0].algo, ws,
                                       bytes, &zero, cd.w, dw);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution filter gradient");
  }
  ws_put(d, ws);
  conv_desc_free(&cd);
  return rc;
}

int ty_cuda_conv_bwd_bias(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *dy, float *db,
                          char *err, size_t err_len) {
  conv_desc cd = {0};
  int rc = conv_desc_make(c, &cd, err, err_len);
  if (rc == 0) {
    cudnnStatus_t s = cudnnConvolutionBackwardBias(d->h, &one, cd.y, dy, &zero, cd.b, db);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "convolution bias gradient");
  }
  conv_desc_free(&cd);
  return rc;
}

/* ---- pooling ------------------------------------------------------------------ */
typedef struct pool_desc {
  cudnnTensorDescriptor_t x, y;
  cudnnPoolingDescriptor_t pool;
} pool_desc;

static void pool_desc_free(pool_desc *d) {
  if (d->x) cudnnDestroyTensorDescriptor(d->x);
  if (d->y) cudnnDestroyTensorDescriptor(d->y);
  if (d->pool) cudnnDestroyPoolingDescriptor(d->pool);
}

static int pool_desc_make(const ty_cuda_pool *p, pool_desc *d, char *err, size_t err_len) {
  int rc = ty_cuda_pool_check(p, err, err_len);
  if (rc != 0) return rc;
  /* Deterministic max: the gradient goes to one element per window. */
  cudnnPoolingMode_t mode = p->max         ? CUDNN_POOLING_MAX_DETERMINISTIC
                            : p->count_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                           : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  cudnnStatus_t s = nchw(&d->x, p->n, p->c, p->h, p->w);
  if (s == CUDNN_STATUS_SUCCESS) s = nchw(&d->y, p->n, p->c, p->p, p->q);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreatePoolingDescriptor(&d->pool);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetPooling2dDescriptor(d->pool, mode, CUDNN_PROPAGATE_NAN, (int)p->kh, (int)p->kw,
                                    (int)p->pad_h, (int)p->pad_w, (int)p->stride_h,
                                    (int)p->stride_w);
  return s == CUDNN_STATUS_SUCCESS ? 0 : dnn_err(err, err_len, s, "pooling descriptors");
}

int ty_cuda_pool_fwd(ty_cuda_dnn *d, const ty_cuda_pool *p, const float *x, float *y, char *err,
                     size_t err_len) {
  pool_desc pd = {0};
  int rc = pool_desc_make(p, &pd, err, err_len);
  if (rc == 0) {
    cudnnStatus_t s = cudnnPoolingForward(d->h, pd.pool, &one, pd.x, x, &zero, pd.y, y);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "pooling forward");
  }
  pool_desc_free(&pd);
  return rc;
}

int ty_cuda_pool_bwd(ty_cuda_dnn *d, const ty_cuda_pool *p, const float *x, const float *y,
                     const float *dy, float *dx, char *err, size_t err_len) {
  pool_desc pd = {0};
  int rc = pool_desc_make(p, &pd, err, err_len);
  if (rc == 0) {
    cudnnStatus_t s =
        cudnnPoolingBackward(d->h, pd.pool, &one, pd.y, y, pd.y, dy, pd.x, x, &zero, pd.x, dx);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "pooling backward");
  }
  pool_desc_free(&pd);
  return rc;
}

/* ---- batch normalisation ------------------------------------------------------- */
static int bn_descs(const ty_cuda_bn *b, cudnnTensorDescriptor_t *x, cudnnTensorDescriptor_t *c,
                    char *err, size_t err_len) {
  if (!fits_int(b->n) || !fits_int(b->c) || !fits_int(b->h) || !fits_int(b->w) || b->c < 1 ||
      b->eps < CUDNN_BN_MIN_EPSILON)
    return ty_errf(err, err_len, TY_EINVAL, "batch norm: sizes or epsilon out of range");
  cudnnStatus_t s = nchw(x, b->n, b->c, b->h, b->w);
  if (s == CUDNN_STATUS_SUCCESS) s = nchw(c, 1, b->c, 1, 1);
  return s == CUDNN_STATUS_SUCCESS ? 0 : dnn_err(err, err_len, s, "batch norm descriptors");
}

int ty_cuda_bn_fwd_train(ty_cuda_dnn *d, const ty_cuda_bn *b, const float *x, const float *scale,
                         const float *bias, float *y, char *err, size_t err_len) {
  cudnnTensorDescriptor_t xd = NULL, cd = NULL;
  int rc = bn_descs(b, &xd, &cd, err, err_len);
  if (rc == 0) {
    cudnnStatus_t s = cudnnBatchNormalizationForwardTraining(d->h, CUDNN_BATCHNORM_SPATIAL, &one,
                                                             &zero, xd, x, xd, y, cd, scale, bias,
                                                             0.0, NULL, NULL, b->eps, NULL, NULL);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "batch norm forward");
  }
  if (xd) cudnnDestroyTensorDescriptor(xd);
  if (cd) cudnnDestroyTensorDescriptor(cd);
  return rc;
}

int ty_cuda_bn_bwd(ty_cuda_dnn *d, const ty_cuda_bn *b, const float *x, const float *dy,
                   const float *scale, float *dx, float *dscale, float *dbias, char *err,
                   size_t err_len) {
  cudnnTensorDescriptor_t xd = NULL, cd = NULL;
  int rc = bn_descs(b, &xd, &cd, err, err_len);
  if (rc == 0) {
    cudnnStatus_t s = cudnnBatchNormalizationBackward(d->h, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                      &one, &zero, xd, x, xd, dy, xd, dx, cd, scale,
                                                      dscale, dbias, b->eps, NULL, NULL);
    if (s != CUDNN_STATUS_SUCCESS) rc = dnn_err(err, err_len, s, "batch norm backward");
  }
  if (xd) cudnnDestroyTensorDescriptor(xd);
  if (cd) cudnnDestroyTensorDescriptor(cd);
  return rc;
}
