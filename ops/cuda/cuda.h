/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/cuda: the CUDA backend's compiler side. Built only when meson finds
 * cudart, NVRTC and the driver header (TY_HAVE_CUDA_OPS); nothing here
 * needs a GPU to run except ty_cuda_device_*.
 *
 * ty_cuda_rtc turns CUDA C (ops/fusion's generated regions and optimizer
 * updates, and the hand-written kernels below) into PTX for compute_<arch>
 * or a cubin for sm_<arch> with NVRTC, and caches the result on disk. The
 * cache key is the source, the entry's architecture, the output kind, the
 * NVRTC version and the options: sizes are never part of a kernel's source
 * (they are arguments), so a new batch size never compiles. The directory
 * follows ops/fusion's CPU kernel cache rules (private 0700 directory of
 * the effective user, files written to a unique name and renamed, every
 * file carrying its key, checked before use, so a stale, foreign or
 * truncated file is compiled again, never used); GPU images live in its
 * "cuda" subdirectory.
 *
 * A ty_cuda_rtc is not thread-safe; use one per thread.
 */
#ifndef TY_OPS_CUDA_CUDA_H
#define TY_OPS_CUDA_CUDA_H

#include "ops/fusion/fusion.h"
#include "ops/graph.h"
#include "ops/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ty_cuda_rtc ty_cuda_rtc;

typedef struct ty_cuda_rtc_opts {
  int arch;              /* SM version, e.g. 90 for H100/H200; 0: 90 */
  bool ptx;              /* PTX for compute_<arch> instead of a cubin for sm_<arch> */
  bool no_cache;         /* compile every time (benchmarks of the compiler) */
  const char *cache_dir; /* NULL: ops/fusion's default directory + "/cuda"; copied */
} ty_cuda_rtc_opts;

typedef struct ty_cuda_rtc_stats {
  uint64_t compiles;  /* NVRTC runs that succeeded */
  uint64_t failures;  /* NVRTC runs that failed (the log is in the error) */
  uint64_t disk_hits; /* images read from the cache without compiling */
  uint64_t rejected;  /* cache files whose key did not match (compiled again) */
  double compile_s;   /* seconds spent in NVRTC */
} ty_cuda_rtc_stats;

/* opts may be NULL. TY_EINVAL for an arch outside [50, 200). Without a
 * usable cache directory the compiler still works, uncached, and
 * ty_cuda_rtc_cache_dir says NULL. The caller owns *out_rtc. */
int ty_cuda_rtc_create(const ty_cuda_rtc_opts *opts, ty_cuda_rtc **out_rtc, char *err,
                       size_t err_len);
void ty_cuda_rtc_destroy(ty_cuda_rtc *r); /* NULL is fine */
const char *ty_cuda_rtc_cache_dir(const ty_cuda_rtc *r);
void ty_cuda_rtc_get_stats(const ty_cuda_rtc *r, ty_cuda_rtc_stats *out_stats);

/* Compiles src (what names it in errors, e.g. the kernel's entry) into
 * *out_image (malloc'd, owned by the caller; PTX is NUL-terminated and
 * *out_len counts the NUL). A compile error is TY_EINVAL with the start
 * of NVRTC's log in err. */
int ty_cuda_rtc_compile(ty_cuda_rtc *r, const char *src, const char *what, void **out_image,
                        size_t *out_len, char *err, size_t err_len);

/* ---- hand-written kernels (ops/cuda/kernels/ *.cu, embedded at build) ----
 * softmax, log-softmax, layer normalisation (forward, backward), softmax
 * cross-entropy (forward, backward), embedding gather / scatter-add, an
 * N-D strided copy (Transpose, Slice, Concat, Split, broadcasts), sums
 * over dims (reductions, broadcast gradients) and Where, each a file of extern "C" kernels compiled
 * by NVRTC like the generated ones, so the build needs no nvcc. */
typedef struct ty_cuda_source {
  const char *name; /* the file's name without .cu */
  const char *src;
} ty_cuda_source;
/* The table of them (static storage). */
const ty_cuda_source *ty_cuda_kernel_sources(size_t *out_n);

/* ---- modules: images loaded with the driver API (module.c) ---------------- */
typedef struct ty_cuda_module ty_cuda_module;
/* Loads a PTX or cubin image into the current device's primary context.
 * TY_EUNSUPPORTED without a device; the driver's error otherwise. */
int ty_cuda_module_load(const void *image, ty_cuda_module **out_module, char *err, size_t err_len);
void ty_cuda_module_unload(ty_cuda_module *m); /* NULL is fine */
/* Launches entry on stream (a cudaStream_t; NULL: the legacy default)
 * with a 1-D grid; args as cuLaunchKernel's kernelParams. Asynchronous. */
int ty_cuda_module_launch(ty_cuda_module *m, const char *entry, unsigned grid, unsigned block,
                          unsigned shmem, void *stream, void **args, char *err, size_t err_len);

/* One fused region launch (a kernel of ty_fusion_cuda_sources): device
 * pointers, the classes the kernel was generated for, the concrete loop
 * shape and each input's shape (used for strided inputs). */
typedef struct ty_cuda_fused_call {
  const char *entry;
  int n_in, n_out, n_params;
  const int *cls;            /* n_in TY_FUSE_CUDA_* */
  const ty_shape *in_shapes; /* n_in */
  const ty_shape *loop;
  const float *const *in; /* device */
  float *const *out;      /* device, loop-shaped */
  const float *params;    /* host, n_params */
  void *stream;
} ty_cuda_fused_call;
/* TY_EINVAL names what does not fit (arity, a symbolic loop, an input whose
 * shape does not match the class its kernel was generated for); needs no
 * device. ty_cuda_fused_launch checks first, then launches asynchronously
 * on c->stream. */
int ty_cuda_fused_check(const ty_cuda_fused_call *c, char *err, size_t err_len);
int ty_cuda_fused_launch(ty_cuda_module *m, const ty_cuda_fused_call *c, char *err, size_t err_len);

/* ---- the caching device allocator (alloc.c: its rules) ------------------- */
typedef struct ty_cuda_alloc ty_cuda_alloc;
/* Where blocks come from: cudaMalloc/cudaFree unless given (tests use the
 * host heap). raw_alloc returns 0 or TY_ENOMEM. */
typedef struct ty_cuda_alloc_backend {
  int (*raw_alloc)(size_t bytes, void **out_ptr, void *user);
  void (*raw_free)(void *ptr, void *user);
  void *user;
} ty_cuda_alloc_backend;
typedef struct ty_cuda_alloc_stats {
  size_t in_use, peak_in_use;     /* bytes of blocks handed out (rounded) */
  size_t reserved, peak_reserved; /* bytes held from the backend */
  size_t requested;               /* bytes asked for by live blocks */
  double fragmentation;           /* 1 - requested / reserved (0 when empty) */
  uint64_t allocs, cache_hits, raw_allocs, raw_frees, oom_flushes;
} ty_cuda_alloc_stats;
/* be may be NULL (the device). The caller owns *out_alloc. */
int ty_cuda_alloc_create(const ty_cuda_alloc_backend *be, ty_cuda_alloc **out_alloc);
/* Returns every block to the backend, live or cached. NULL is fine. */
void ty_cuda_alloc_destroy(ty_cuda_alloc *a);
/* The size class of a request (see alloc.c). */
size_t ty_cuda_alloc_round(size_t bytes);
/* A block of at least bytes for use on stream (a cudaStream_t, NULL the
 * default stream); TY_ENOMEM when the backend has none even after
 * releasing the cache. */
int ty_cuda_alloc_get(ty_cuda_alloc *a, size_t bytes, void *stream, void **out_ptr);
/* Caches ptr for its stream. TY_EINVAL: not from a; TY_ESTATE: already
 * free. NULL is fine. */
int ty_cuda_alloc_put(ty_cuda_alloc *a, void *ptr);
/* Returns the cached free blocks to the backend. */
void ty_cuda_alloc_trim(ty_cuda_alloc *a);
void ty_cuda_alloc_get_stats(const ty_cuda_alloc *a, ty_cuda_alloc_stats *out_stats);

/* ---- GEMM through cuBLAS (blas.c; built when meson finds cuBLAS, which
 * cuda_dep then announces with TY_HAVE_CUBLAS) ---------------------------- */
typedef struct ty_cuda_blas ty_cuda_blas;
/* Row-major C = alpha * op(A) op(B) + beta * C for batch matrices at the
 * given element strides; op(A) is m x k, op(B) k x n; ld* are row lengths
 * of the stored matrices. Pointers are device memory. */
typedef struct ty_cuda_gemm_args {
  bool trans_a, trans_b;
  int64_t m, n, k, batch;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
} ty_cuda_gemm_args;
/* TY_EINVAL naming the field that is wrong; needs no device. */
int ty_cuda_gemm_check(const ty_cuda_gemm_args *g, char *err, size_t err_len);
/* A cuBLAS handle on stream (cudaStream_t; NULL: the default); tf32 lets
 * it use TF32 tensor cores (results change at the 1e-3 level). */
int ty_cuda_blas_create(void *stream, bool tf32, ty_cuda_blas **out_blas, char *err,
                        size_t err_len);
void ty_cuda_blas_destroy(ty_cuda_blas *b); /* NULL is fine */
/* Asynchronous on the handle's stream. */
int ty_cuda_gemm(ty_cuda_blas *b, const ty_cuda_gemm_args *g, char *err, size_t err_len);
/* The same plus bias[j] added to every row's column j (ONNX Gemm with a
 * [N] bias), one cuBLASLt call with the bias epilogue; batch must be 1. */
int ty_cuda_gemm_bias(ty_cuda_blas *b, const ty_cuda_gemm_args *g, const float *bias, char *err,
                      size_t err_len);

/* ---- cuDNN 9 (dnn.c; built when meson finds cuDNN, which cuda_dep then
 * announces with TY_HAVE_CUDNN) --------------------------------------------
 * 2-D convolution, pooling and training-mode batch normalisation, NCHW
 * float32, device pointers, asynchronous on the handle's stream. */
typedef struct ty_cuda_dnn ty_cuda_dnn;
/* A handle on stream; workspaces come from alloc (borrowed). */
int ty_cuda_dnn_create(void *stream, ty_cuda_alloc *alloc, ty_cuda_dnn **out_dnn, char *err,
                       size_t err_len);
void ty_cuda_dnn_destroy(ty_cuda_dnn *d); /* NULL is fine */
/* x [n, c, h, w], w [k, c / groups, r, s], y [n, k, p, q]; symmetric pads. */
typedef struct ty_cuda_conv {
  int64_t n, c, h, w, k, r, s, p, q;
  int64_t groups, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
} ty_cuda_conv;
/* TY_EINVAL naming what does not fit (p, q against the window, groups,
 * a size beyond cuDNN's int); needs no device. */
int ty_cuda_conv_check(const ty_cuda_conv *c, char *err, size_t err_len);
/* bias ([k]) may be NULL. */
int ty_cuda_conv_fwd(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *x, const float *w,
                     const float *bias, float *y, char *err, size_t err_len);
int ty_cuda_conv_bwd_data(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *w, const float *dy,
                          float *dx, char *err, size_t err_len);
int ty_cuda_conv_bwd_filter(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *x, const float *dy,
                            float *dw, char *err, size_t err_len);
int ty_cuda_conv_bwd_bias(ty_cuda_dnn *d, const ty_cuda_conv *c, const float *dy, float *db,
                          char *err, size_t err_len);
/* x [n, c, h, w] -> y [n, c, p, q]; max or average (count_pad: padding
 * counts in the divisor, ONNX count_include_pad). */
typedef struct ty_cuda_pool {
  int64_t n, c, h, w, p, q, kh, kw, pad_h, pad_w, stride_h, stride_w;
  bool max, count_pad;
} ty_cuda_pool;
int ty_cuda_pool_check(const ty_cuda_pool *p, char *err, size_t err_len); /* needs no device */
int ty_cuda_pool_fwd(ty_cuda_dnn *d, const ty_cuda_pool *p, const float *x, float *y, char *err,
                     size_t err_len);
int ty_cuda_pool_bwd(ty_cuda_dnn *d, const ty_cuda_pool *p, const float *x, const float *y,
                     const float *dy, float *dx, char *err, size_t err_len);
/* Per-channel batch statistics over n, h, w (a 2-D input is h = w = 1). */
typedef struct ty_cuda_bn {
  int64_t n, c, h, w;
  double eps;
} ty_cuda_bn;
int ty_cuda_bn_fwd_train(ty_cuda_dnn *d, const ty_cuda_bn *b, const float *x, const float *scale,
                         const float *bias, float *y, char *err, size_t err_len);
/* dx, dscale, dbias all written (each [n, c, h, w] / [c] / [c]). */
int ty_cuda_bn_bwd(ty_cuda_dnn *d, const ty_cuda_bn *b, const float *x, const float *dy,
                   const float *scale, float *dx, float *dscale, float *dbias, char *err,
                   size_t err_len);

/* ---- launching the hand-written kernels (launch.c) ------------------------
 * Device pointers; asynchronous on the given stream; sizes checked first
 * (TY_EINVAL naming the kernel and the size). */
typedef struct ty_cuda_kernels ty_cuda_kernels;
/* Compiles (through rtc's cache, for rtc's arch) and loads every source. */
int ty_cuda_kernels_create(ty_cuda_rtc *rtc, ty_cuda_kernels **out_kernels, char *err,
                           size_t err_len);
void ty_cuda_kernels_destroy(ty_cuda_kernels *k); /* NULL is fine */
/* A [rows, cols] row-major view and the stream to run on. */
typedef struct ty_cuda_rows {
  int64_t rows, cols;
  void *stream;
} ty_cuda_rows;
int ty_cuda_softmax(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x, float *y, bool log,
                    char *err, size_t err_len);
int ty_cuda_softmax_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *y, const float *dy,
                        float *dx, bool log, char *err, size_t err_len);
/* gamma, beta, mean, rstd may be NULL. */
int ty_cuda_layer_norm(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x,
                       const float *gamma, const float *beta, float eps, float *y, float *mean,
                       float *rstd, char *err, size_t err_len);
/* dx per row (always written); dgamma and dbeta (may be NULL) are added
 * into with atomics, zeroed by the caller. mean and rstd as the forward's. */
int ty_cuda_layer_norm_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *x,
                           const float *gamma, const float *mean, const float *rstd,
                           const float *dy, float *dx, float *dgamma, float *dbeta, char *err,
                           size_t err_len);
/* Per-row loss and softmax; *bad (zeroed by the caller) gets the first
 * row + 1 whose label is outside [0, cols). */
int ty_cuda_xent(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *logits,
                 const int64_t *labels, float *loss, float *prob, int64_t *bad, char *err,
                 size_t err_len);
int ty_cuda_xent_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, const float *prob,
                     const int64_t *labels, float scale, float *dlogits, char *err, size_t err_len);
/* rows indices into a [vocab, cols] table; *bad as for ty_cuda_xent. The
 * backward adds into dtable (zeroed by the caller). */
int ty_cuda_embedding(ty_cuda_kernels *k, const ty_cuda_rows *r, int64_t vocab, const float *table,
                      const int64_t *idx, float *out, int64_t *bad, char *err, size_t err_len);
int ty_cuda_embedding_bwd(ty_cuda_kernels *k, const ty_cuda_rows *r, int64_t vocab,
                          const float *dout, const int64_t *idx, float *dtable, char *err,
                          size_t err_len);
/* out[sum(i_d * out_strides[d])] = in[sum(i_d * in_strides[d])] over dims. */
typedef struct ty_cuda_copy {
  int rank;
  int64_t dims[8], in_strides[8], out_strides[8];
} ty_cuda_copy;
int ty_cuda_strided_copy(ty_cuda_kernels *k, const ty_cuda_copy *c, const float *in, float *out,
                         void *stream, char *err, size_t err_len);
/* out (the kept dims, row-major) = scale * the sum over the reduced dims. */
typedef struct ty_cuda_reduce {
  int n_keep, n_red;
  int64_t keep_dims[8], keep_strides[8], red_dims[8], red_strides[8];
} ty_cuda_reduce;
int ty_cuda_reduce_sum(ty_cuda_kernels *k, const ty_cuda_reduce *r, float scale, const float *in,
                       float *out, void *stream, char *err, size_t err_len);

/* out = cond ? x : y over the dims (the output's), each operand at its
 * strides (0 where broadcast); cond holds bytes (ONNX bool). The backward
 * writes dx (shaped like dy): dy where cond == take_true, else 0. */
typedef struct ty_cuda_where_shape {
  int rank;
  int64_t dims[8], cond_strides[8], x_strides[8], y_strides[8];
} ty_cuda_where_shape;
int ty_cuda_where(ty_cuda_kernels *k, const ty_cuda_where_shape *w, const uint8_t *cond,
                  const float *x, const float *y, float *out, void *stream, char *err,
                  size_t err_len);
int ty_cuda_where_bwd(ty_cuda_kernels *k, const ty_cuda_where_shape *w, const uint8_t *cond,
                      const float *dy, bool take_true, float *dx, void *stream, char *err,
                      size_t err_len);

/* ---- input staging (stage.c): pinned buffers, a copy stream ------------- */
typedef struct ty_cuda_stage ty_cuda_stage;
/* Two pinned slots of max_bytes and a copy stream; compute_stream (a
 * cudaStream_t, NULL the default) is the one that will read the batches. */
int ty_cuda_stage_create(size_t max_bytes, void *compute_stream, ty_cuda_stage **out_stage,
                         char *err, size_t err_len);
void ty_cuda_stage_destroy(ty_cuda_stage *s); /* NULL is fine; waits for its copies */
/* Copies bytes of host src (the loader's buffer, reusable on return) to
 * device dst asynchronously; work queued on the compute stream afterwards
 * sees it. Blocks only while the slot's copy of two uploads ago runs. */
int ty_cuda_stage_upload(ty_cuda_stage *s, const void *src, size_t bytes, void *dst, char *err,
                         size_t err_len);

/* ---- the optimizer on the device (optim.c) -------------------------------
 * ops/fusion's SGD / Adam / AdamW kernels over device parameters, with each
 * parameter's state in device buffers owned here, loaded from and stored
 * back to ops/optim's host state. Asynchronous on stream. */
typedef struct ty_cuda_optim ty_cuda_optim;
/* rtc (borrowed) compiles the variants on first use. */
int ty_cuda_optim_create(ty_cuda_rtc *rtc, void *stream, size_t n_params,
                         ty_cuda_optim **out_optim);
void ty_cuda_optim_destroy(ty_cuda_optim *o); /* NULL is fine */
/* Parameter p: n elements, n_bufs (0: SGD without momentum, 1: SGD with,
 * 2: Adam) state buffers copied from host[0 .. n_bufs). */
int ty_cuda_optim_load(ty_cuda_optim *o, size_t p, size_t n, int n_bufs, float *const *host,
                       char *err, size_t err_len);
bool ty_cuda_optim_loaded(const ty_cuda_optim *o, size_t p);
/* Copies parameter p's state back into host[] (returns when done). */
int ty_cuda_optim_store(ty_cuda_optim *o, size_t p, float *const *host, char *err, size_t err_len);
/* One update of parameter p in place from grad (device pointers); the
 * scalars as ty_jit_sgd_step / ty_jit_adam_step compute them. */
int ty_cuda_optim_sgd(ty_cuda_optim *o, size_t p, const ty_fused_sgd *h, float *param,
                      const float *grad, char *err, size_t err_len);
int ty_cuda_optim_adam(ty_cuda_optim *o, size_t p, const ty_fused_adam *h, float *param,
                       const float *grad, char *err, size_t err_len);

/* ---- gradient buckets on the device (buckets.c) ---------------------------
 * One device buffer of floats for n_buckets buckets; packing and the
 * per-bucket ready events are on stream (the compute stream). */
typedef struct ty_cuda_buckets ty_cuda_buckets;
int ty_cuda_buckets_create(size_t floats, size_t n_buckets, void *stream,
                           ty_cuda_buckets **out_buckets, char *err, size_t err_len);
void ty_cuda_buckets_destroy(ty_cuda_buckets *b); /* NULL is fine */
float *ty_cuda_buckets_data(const ty_cuda_buckets *b);
/* Copies n floats of device src to the buffer at float offset off. */
int ty_cuda_buckets_pack(ty_cuda_buckets *b, size_t off, const float *src, size_t n, char *err,
                         size_t err_len);
/* Records bucket k's event on the stream after what is queued there and
 * returns it (a cudaEvent_t owned by b); NULL with err on failure. */
void *ty_cuda_buckets_ready(ty_cuda_buckets *b, size_t k, char *err, size_t err_len);

/* ---- placement (place.c): which nodes have CUDA kernels ------------------- */
typedef struct ty_cuda_place {
  bool gpu;
  const char *how; /* on the GPU: the kernel family ("cuBLAS", "softmax.cu", ...) */
  char why[160];   /* on the CPU: why, naming the op and what is missing */
} ty_cuda_place;
/* One entry per node of g (node order) in *out_places (malloc'd, the
 * caller frees). Pure: needs no device. */
int ty_cuda_placement(const ty_graph *g, ty_cuda_place **out_places, size_t *out_n);
/* "N of M nodes have CUDA kernels; CPU: 3 x <why>; ..." (most frequent
 * reason first), truncated with "..." to len. */
int ty_cuda_placement_summary(const ty_cuda_place *p, size_t n, char *out, size_t len);

/* ---- the device ------------------------------------------------------------ */
/* CUDA devices visible to this process: 0 (not an error) without a driver
 * or a GPU. */
int ty_cuda_device_count(void);
/* The SM version of device dev (e.g. 90); TY_ENOTFOUND without it. */
int ty_cuda_device_arch(int dev, int *out_arch);

#endif
