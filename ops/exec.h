/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/exec: a simple CPU executor for a ty_graph. It runs the nodes in
 * topological order; before each node it infers the concrete output shapes
 * from the actual inputs (so one executor serves any batch size), allocates
 * the outputs and calls the op's kernel.
 *
 * Values of the last run stay readable until the next run or destroy; with
 * memory planning on (the default, ops/memplan) that holds for graph
 * outputs, values no node reads, one-element values (a loss) and
 * ty_exec_opts.keep_values, while other
 * values share buffers and read as NULL. Fusion (ops/fusion) runs regions
 * of elementwise nodes as one loop; values inside a region read as NULL.
 *
 * Bound tensors are borrowed: they must stay alive and unchanged until
 * ty_exec_run returns. Binding an initializer's name overrides the graph's
 * data (how a trainer feeds updated weights). The graph must outlive the
 * executor and must not change while it exists.
 *
 * A CUDA backend would plug in here: a per-device kernel table selected at
 * _create, with the same ty__infer contract; nothing in this header names
 * CUDA types.
 */
#ifndef TY_OPS_EXEC_H
#define TY_OPS_EXEC_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ty_exec ty_exec;

typedef struct ty_jit ty_jit; /* ops/fusion/fusion.h */

/* Threads that kernels split their loops over (ops/workers.c): convolution
 * and pooling by image, GEMMs by blocks of rows or columns, elementwise and
 * fused loops by ranges. Between jobs the threads sleep on a condition
 * variable. n_threads counts the caller, which always works too: a pool of
 * 1 starts no thread. Creating a pool sets OpenBLAS to one thread per call
 * (process-wide), since the pool does the splitting; without a pool
 * OpenBLAS keeps its own threading. One pool may serve several executors
 * that run one at a time (a trainer's training and evaluation graphs); a
 * call made while another runs on the pool runs on its caller's thread. */
typedef struct ty_workers ty_workers;
int ty_workers_create(int n_threads, ty_workers **out_workers); /* TY_EINVAL outside [1, 1024] */
void ty_workers_destroy(ty_workers *w);    /* NULL is fine; joins the threads */
int ty_workers_count(const ty_workers *w); /* threads incl. the caller; NULL: 1 */
/* Jobs split over the pool's threads so far (a loop run on its caller
 * alone, below its grain or nested, is not counted); NULL: 0. Tells a test
 * that an executor was really given the pool. */
int64_t ty_workers_jobs(ty_workers *w);

/* A TyExtern node is an op the executor's caller computes: the collectives
 * a rank of a parallel plan runs between its kernels (ops/shard). The node
 * reads one float input and writes one float output of the shape its ints
 * attribute "shape" gives; its int attribute "id" tells the caller which
 * op it is. ops/autodiff differentiates it into another TyExtern node with
 * the same id and "backward" = 1, shaped like the forward input, so the
 * caller also computes the gradient. The hook gets the id, that flag, the
 * input and the output (allocated, contents undefined) and returns 0 or a
 * TY_E* code, which fails the run naming the node. */
typedef int (*ty_exec_extern_fn)(int64_t id, bool backward, const ty_tensor *in, ty_tensor *out,
                                 void *user);

/* Zero-initialised options are the defaults: fusion and memory planning on. */
typedef struct ty_exec_opts {
  bool training; /* Dropout drops and BatchNormalization uses batch statistics */
  uint64_t seed; /* the random draws' seed when noise_seed is 0 */
  /* Seed of the random ops and Dropout masks without a seed attribute
   * (RandomNormal, ..., ops/kernels/random.c); 0: derived from seed. Run r
   * of the executor draws from (noise_seed, r, the node's name) and each
   * element's position, so a trainer that gives each data-parallel rank
   * and step its own noise_seed gets noise and masks of their own per rank
   * and step, the same again after a resume. */
  uint64_t noise_seed;
  /* ops/fusion: run regions of elementwise nodes as one JIT-compiled loop. */
  bool no_fusion;           /* one kernel per node (for comparison) */
  bool no_jit;              /* interpret fused regions (env TRAINYARD_NO_JIT=1 too) */
  const char *kernel_cache; /* kernel cache dir; NULL: ops/fusion's default; copied */
  ty_jit *jit;              /* shared JIT (borrowed, must outlive the executor); NULL: own one */
  ty_workers *workers; /* threads (borrowed, must outlive the executor); NULL: the caller's only */
  /* ops/memplan: reuse buffers of dead values, write elementwise outputs in
   * place. Then only graph outputs, values no node reads, one-element values
   * and keep_values stay readable after a run; ty_exec_value returns NULL
   * for the others. */
  bool no_memplan;
  const int *keep_values; /* value ids; borrowed during _create only */
  size_t n_keep_values;
  /* Called during ty_exec_run right after the step that computes one of
   * watch_values (value ids, borrowed during _create only; they are kept
   * like keep_values). The tensor is final: nothing writes it again in this
   * run. A nonzero return aborts the run with that code (how a trainer
   * starts a gradient's all-reduce while backward goes on). Values no node
   * computes (inputs, initializers) are never reported. */
  int (*on_value_ready)(int value_id, const ty_tensor *t, void *user);
  void *on_value_ready_user;
  const int *watch_values;
  size_t n_watch_values;
  /* TyExtern nodes (above); a graph with one fails to run without it. */
  ty_exec_extern_fn extern_op;
  void *extern_user;
  /* Why extern_op last failed (given extern_user), appended to the run's
   * error; NULL: the error names the node only. */
  const char *(*extern_error)(const void *user);
} ty_exec_opts;

/* opts may be NULL (inference, seed 0). */
int ty_exec_create(const ty_graph *g, const ty_exec_opts *opts, ty_exec **out_exec);
void ty_exec_destroy(ty_exec *e);
/* Binds a graph input or overrides an initializer, by name or value id.
 * TY_ENOTFOUND for an unknown name; TY_EINVAL for a dtype, rank or fixed
 * dim that does not match the declared one (the message names the input). */
int ty_exec_bind(ty_exec *e, const char *name, const ty_tensor *t, char *err, size_t err_len);
int ty_exec_bind_id(ty_exec *e, int value_id, const ty_tensor *t, char *err, size_t err_len);
/* Restarts the executor's random draws as ty_exec_create with these seeds
 * (opts.seed, opts.noise_seed) would: the run count from 0, so the next
 * run draws (Dropout masks, random ops) what the first run of a new
 * executor with these seeds draws, bit for bit. How a trainer
 * gives each step its own draws without rebuilding the schedule, the
 * buffer pool and the JIT lookups. Bindings and everything else stay. */
void ty_exec_reseed(ty_exec *e, uint64_t seed, uint64_t noise_seed);
/* Runs the graph. Every graph input must be bound. Errors name the node. */
int ty_exec_run(ty_exec *e, char *err, size_t err_len);
/* A value computed (or bound) in the last run; NULL if none. Owned by the
 * executor; valid until the next run, bind or destroy. */
const ty_tensor *ty_exec_value(const ty_exec *e, int value_id);
const ty_tensor *ty_exec_output(const ty_exec *e, const char *name);

typedef struct ty_exec_stats {
  size_t n_steps;           /* kernels per run: nodes plus fused regions */
  size_t fused_regions;     /* fused regions in the schedule */
  size_t fused_nodes;       /* graph nodes they contain */
  uint64_t jit_compiles;    /* compiler invocations of this executor's JIT */
  uint64_t jit_failures;    /* failed compiles (regions then interpreted) */
  uint64_t jit_disk_loads;  /* kernels loaded from the disk cache */
  uint64_t interp_runs;     /* region runs through the interpreter */
  uint64_t pool_bytes;      /* bytes of planned buffers (0 without planning) */
  uint64_t unplanned_bytes; /* what the last run would hold without planning */
  size_t inplace;           /* outputs written in place in the last run */
  size_t views;             /* Reshape-like outputs sharing their input's buffer (no copy) */
} ty_exec_stats;
void ty_exec_get_stats(const ty_exec *e, ty_exec_stats *out_stats);

#endif
