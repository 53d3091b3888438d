/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/fusion: fused elementwise kernels compiled at run time, in the spirit
 * of Jittor's meta-operators.
 *
 * The executor (ops/exec) groups maximal regions of float32 elementwise and
 * broadcast nodes (Add, Sub, Mul, Div, Pow, Neg, Relu, LeakyRelu, Sigmoid,
 * Tanh, Exp, Log, Sqrt, Erf, Identity) into one step that runs as a single
 * loop; values used only inside a region are never written to memory.
 * Backward nodes join too: ops/autodiff's TyGrad nodes of those ops whose
 * gradient has dY's shape (no broadcast to sum back), with the backward
 * kernels' formulas operation for operation, so fused gradients equal the
 * unfused ones bit for bit. Turn it off with ty_exec_opts.no_fusion.
 *
 * A region's loop body is generated as C and compiled with the system
 * compiler ($CC, else `cc`; -O3 -march=native -fPIC -shared, contraction
 * off so results match the unfused kernels bit for bit, no trapping math
 * and no errno so loops with selects and sqrtf vectorise), loaded with dlopen
 * and cached on disk, keyed by a hash of the generated source: the region's
 * structure, dtypes and broadcast pattern, never the sizes (which are loop
 * bounds at run time), so a new batch size reuses the kernel. Cache files
 * are written to a temporary name and renamed, so concurrent processes
 * never see a partial kernel. Without a working compiler, or with
 * TRAINYARD_NO_JIT=1 or no_jit, an interpreter runs the same program (a
 * register bytecode over blocks of a row) with identical results.
 *
 * The cache directory is, in order: ty_jit_opts.cache_dir,
 * $TRAINYARD_KERNEL_CACHE, $XDG_CACHE_HOME/trainyard/kernels,
 * ~/.cache/trainyard/kernels; never a fallback under /tmp. It must be
 * private: created 0700, refused (kernels are then interpreted) unless it
 * is a directory owned by the effective user, and made 0700 if it is open
 * to others. The cache key covers the source, the compiler's command,
 * flags and binary, and the CPU; every object carries its key as a symbol
 * (ty_kernel_key) that is checked after dlopen, before any of its code
 * runs, so a stale, foreign or corrupt file is recompiled, never used.
 *
 * The optimizer updates (SGD with momentum, Adam/AdamW) are fused kernels
 * too: one generated loop per parameter buffer, specialised on which terms
 * are present, computing exactly what ops/optim computes.
 *
 * A ty_jit is not thread-safe; use one per thread (executors create their
 * own unless given one).
 */
#ifndef TY_OPS_FUSION_FUSION_H
#define TY_OPS_FUSION_FUSION_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ty_jit ty_jit;

typedef struct ty_jit_opts {
  bool no_jit;           /* always interpret (env TRAINYARD_NO_JIT=1 does the same) */
  const char *cache_dir; /* NULL: see above; copied at create */
} ty_jit_opts;

typedef struct ty_jit_stats {
  uint64_t compiles;         /* successful compiler invocations */
  uint64_t compile_failures; /* compiler missing or failing (then interpreted) */
  uint64_t disk_loads;       /* kernels loaded from the disk cache without compiling */
  uint64_t interp_runs;      /* region or update runs through the interpreter */
  uint64_t rejected;         /* cached objects whose key did not match (recompiled) */
} ty_jit_stats;

/* opts may be NULL. The caller owns *out_jit. */
int ty_jit_create(const ty_jit_opts *opts, ty_jit **out_jit);
/* Unloads the kernels; functions obtained from it become invalid. */
void ty_jit_destroy(ty_jit *j);
void ty_jit_get_stats(const ty_jit *j, ty_jit_stats *out_stats);
/* The cache directory in use (owned by j), or NULL when there is none: then
 * ty_jit_status() says why and kernels are interpreted. */
const char *ty_jit_cache_dir(const ty_jit *j);
/* Why compiled kernels are off ("" while they are on). Owned by j. */
const char *ty_jit_status(const ty_jit *j);

/* ---- fused optimizer updates -------------------------------------------- */
/* SGD step over n elements, torch's rule as in ops/optim:
 *   d = g + wd*p; buf = first ? d : buf*momentum + (1-dampening)*d;
 *   d = nesterov ? d + momentum*buf : buf; p = p - lr*d
 * buf may be NULL when momentum is 0. */
typedef struct ty_fused_sgd {
  float lr, weight_decay, momentum, dampening;
  bool nesterov;
  bool first; /* the parameter's first step: buf = d */
} ty_fused_sgd;
int ty_jit_sgd_step(ty_jit *j, const ty_fused_sgd *h, size_t n, float *param, const float *grad,
                    float *buf);

/* Adam/AdamW step over n elements; step is the 1-based step count t. */
typedef struct ty_fused_adam {
  float lr, weight_decay, beta1, beta2, eps;
  bool adamw;
  uint64_t step;
} ty_fused_adam;
int ty_jit_adam_step(ty_jit *j, const ty_fused_adam *h, size_t n, float *param, const float *grad,
                     float *m, float *v);

/* ---- the kernel cache's rules (jit_cache.c), shared with ops/cuda's NVRTC
 * cache so GPU images are trusted exactly like CPU objects ---------------- */
/* A 128-bit cache key in two independent 64-bit lanes. */
typedef struct ty_kernel_key {
  uint64_t h[2];
} ty_kernel_key;
void ty_kernel_key_init(ty_kernel_key *k);
void ty_kernel_key_add(ty_kernel_key *k, const void *data, size_t n);
void ty_kernel_key_str(ty_kernel_key *k, const char *s);
/* $TRAINYARD_KERNEL_CACHE, $XDG_CACHE_HOME/trainyard/kernels or
 * ~/.cache/trainyard/kernels (home from $HOME or the password database);
 * TY_ENOTFOUND when there is no home. */
int ty_kernel_cache_default_dir(char *out, size_t len);
/* Creates (0700) and opens the cache directory, verified private to the
 * effective uid: 0 and *out_fd, or an error with the reason in why. */
int ty_kernel_cache_open(const char *path, int *out_fd, char *why, size_t why_len);
/* True when dirfd/name is a regular file of ours that nobody else can write. */
bool ty_kernel_cache_trusts(int dirfd, const char *name);

/* ---- the same kernels as CUDA C (ops/fusion/cuda_gen.c) ------------------
 * Text only: ops/cuda compiles it with NVRTC for the device's architecture
 * and caches it. How a region input broadcasts to the loop shape: */
enum { TY_FUSE_CUDA_FULL = 0, TY_FUSE_CUDA_SCALAR = 1, TY_FUSE_CUDA_STRIDED = 2 };
/* 64-bit words of a region kernel's shape argument with n strided inputs
 * (see cuda_gen.c): rank, the loop dims, one stride row per strided input. */
#define TY_FUSE_CUDA_BC_LEN(n) (1 + TY_MAX_RANK * (1 + (n)))

/* The kernel's entry name for n_in inputs of classes cls ("ty_fk_", one
 * letter per input: f full, s scalar, b strided, then "_bf16" or "_f16"
 * for those storage types). TY_EINVAL for another storage type or when
 * len is too small. */
int ty_fusion_cuda_name(const int *cls, int n_in, ty_dtype storage, char *out, size_t len);

/* One generated kernel: its entry point and CUDA C source (both malloc'd)
 * and what a launch binds: the region's external inputs and materialised
 * outputs (graph value ids, in argument order), the input classes the
 * kernel was generated for and the attribute scalars (malloc'd). */
#define TY_FUSE_MAX_IO 32
typedef struct ty_fused_src {
  char *name;
  char *src;
  int n_in, n_out, n_params;
  int in_ids[TY_FUSE_MAX_IO], out_ids[TY_FUSE_MAX_IO], cls[TY_FUSE_MAX_IO];
  float *params;
  size_t *nodes; /* the graph nodes it computes (malloc'd) */
  size_t n_nodes;
} ty_fused_src;
void ty_fused_srcs_free(ty_fused_src *s, size_t n);

/* The CUDA C of every fused region of g as the GPU path builds them (the
 * CPU's regions, and each fusible node outside them as a region of one;
 * keep as ty_exec_opts.keep_values), classes from the static shapes (an input
 * whose shape is not known to be the loop shape or one element counts as
 * strided, which is correct for any broadcast). storage is how tensors are
 * held: TY_DTYPE_F32, or TY_DTYPE_BF16 / TY_DTYPE_F16 for mixed precision
 * (arithmetic stays float32). *out_srcs (owned by the
 * caller, ty_fused_srcs_free) may be NULL when g has no region. */
int ty_fusion_cuda_sources(const ty_graph *g, const int *keep, size_t n_keep, ty_dtype storage,
                           ty_fused_src **out_srcs, size_t *out_n);

/* The optimizer updates' kernels (entry ty_sgd, ty_adam), specialised like
 * the CPU ones; the argument order is ops/optim's scalars' order after
 * (n, p, g, buf) or (n, p, g, m, v). *out_src is malloc'd. */
int ty_fusion_cuda_sgd_src(bool has_wd, bool has_mom, bool first, bool nesterov, char **out_src);
int ty_fusion_cuda_adam_src(bool adamw, bool has_wd, char **out_src);

#endif
