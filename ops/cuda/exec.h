/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/cuda's executor: runs a graph's steps (fused regions and nodes) on
 * one CUDA device, with the same contract as ops/exec's CPU executor
 * (concrete shapes inferred on the host before each step, so one executor
 * serves any batch size; bound tensors borrowed until the run returns).
 *
 * The plan (plan.c, pure: no device, no CUDA call) says where each step
 * runs: a generated region (NVRTC), a node with its CUDA launcher
 * (cuBLAS, the hand-written kernels, a device copy for views), host
 * metadata (Constant, Shape: no device work) or the CPU, with the reason
 * (ty_cuda_placement's, or "the executor has no launcher for it yet").
 * Integer tensors (shape arithmetic, labels, indices) stay on the host and
 * are copied up only when a device step reads them.
 *
 * Every value has a host side and a device side, each valid or not: a
 * device step makes its inputs' device sides valid (uploading what only
 * the host has), a CPU step its inputs' host sides (downloading), so a CPU
 * fallback costs exactly the copies of its own inputs and outputs. Device
 * memory comes from ops/cuda's caching allocator and goes back to it when
 * the last step reading a value is done (kept values stay until the next
 * run). A launcher that finds a concrete shape it does not handle (MatMul
 * with broadcast batch dims, say) declines before launching and the step
 * runs on the CPU; ty_cuda_exec_stats counts those.
 *
 * Not thread-safe. The graph must outlive the executor.
 */
#ifndef TY_OPS_CUDA_EXEC_H
#define TY_OPS_CUDA_EXEC_H

#include "ops/cuda/cuda.h"
#include "ops/exec.h"
#include "ops/fusion/fusion.h"
#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the plan (plan.c) ----------------------------------------------------- */
typedef enum ty_cuda_step_kind {
  TY_CUDA_STEP_REGION, /* a generated region (regions[region]) */
  TY_CUDA_STEP_GPU,    /* a node with its CUDA launcher (how) */
  TY_CUDA_STEP_HOST,   /* Constant / Shape: host metadata, no device work */
  TY_CUDA_STEP_CPU,    /* a node on the CPU (why) */
} ty_cuda_step_kind;

typedef struct ty_cuda_step {
  ty_cuda_step_kind kind;
  size_t node;     /* the graph node; a region: its first node */
  int region;      /* index into regions; -1 for a node */
  const char *how; /* GPU: the launcher ("cuBLAS", "softmax.cu", "copy"...) */
  char why[160];   /* CPU: why, naming the op */
} ty_cuda_step;

typedef struct ty_cuda_plan {
  ty_cuda_step *steps; /* in an order where every step's inputs come first */
  size_t n_steps;
  ty_fused_src *regions; /* ty_fusion_cuda_sources' (float32) */
  size_t n_regions;
  size_t n_nodes;               /* graph nodes */
  size_t gpu_nodes, host_nodes; /* nodes in regions or GPU steps; Constant/Shape */
  size_t cpu_nodes;             /* nodes on the CPU */
} ty_cuda_plan;

/* keep: values the caller reads after a run (as ty_exec_opts.keep_values;
 * they are materialised, never inside a region). The caller owns *out. */
int ty_cuda_plan_create(const ty_graph *g, const int *keep, size_t n_keep, ty_cuda_plan **out,
                        char *err, size_t err_len);
void ty_cuda_plan_destroy(ty_cuda_plan *p); /* NULL is fine */
/* "GPU: N nodes (R regions, S steps); host: H; CPU: C (3 x <why>; ...)",
 * most frequent reason first, truncated with "..." to len. */
int ty_cuda_plan_summary(const ty_cuda_plan *p, const ty_graph *g, char *out, size_t len);

/* ---- the executor (exec.c; built with cuBLAS) ------------------------------ */
typedef struct ty_cuda_exec ty_cuda_exec;

typedef struct ty_cuda_exec_opts {
  bool training; /* as ty_exec_opts (CPU steps: Dropout, BatchNormalization) */
  uint64_t seed;
  uint64_t noise_seed;      /* as ty_exec_opts (Dropout and the random ops run as CPU steps) */
  bool tf32;                /* cuBLAS may use TF32 tensor cores */
  const char *kernel_cache; /* NVRTC cache dir; NULL: ops/cuda's default */
  const int *keep_values;   /* borrowed during _create only */
  size_t n_keep_values;
  ty_workers *workers; /* threads of the CPU steps (borrowed); NULL: the caller's */
  int device;          /* the CUDA device (cudaSetDevice) */
  /* Called during ty_cuda_exec_run right after the step computing one of
   * watch_values (value ids, borrowed during _create only; kept like
   * keep_values) is queued, with its device block: work the hook queues
   * on the compute stream (ty_cuda_exec_stream) runs after it, so a
   * gradient bucket can be packed and its reduction started while the
   * backward pass goes on. A nonzero return aborts the run. */
  int (*on_device_ready)(int value_id, void *dev, void *user);
  void *on_device_ready_user;
  const int *watch_values;
  size_t n_watch_values;
} ty_cuda_exec_opts;

typedef struct ty_cuda_exec_stats {
  size_t steps, gpu_steps, cpu_steps, host_steps; /* of the plan */
  uint64_t declined;             /* GPU steps run on the CPU because a shape did not fit */
  uint64_t h2d_bytes, d2h_bytes; /* copies, all runs */
  size_t dev_peak_bytes;         /* the allocator's peak in use */
  char last_declined[160];       /* why the last declined step declined */
} ty_cuda_exec_stats;

/* Compiles every region and the hand-written kernels (NVRTC, through the
 * disk cache) for the device's architecture. TY_EUNSUPPORTED without a
 * CUDA device. The caller owns *out. */
int ty_cuda_exec_create(const ty_graph *g, const ty_cuda_exec_opts *opts, ty_cuda_exec **out,
                        char *err, size_t err_len);
void ty_cuda_exec_destroy(ty_cuda_exec *e); /* NULL is fine */
/* As ty_exec_bind_id: a graph input or an initializer's override. The
 * tensor is uploaded at the start of every run (the caller may change it
 * between runs, as a trainer does with its weights). */
int ty_cuda_exec_bind_id(ty_cuda_exec *e, int value_id, const ty_tensor *t, char *err,
                         size_t err_len);
/* A weight the device keeps across runs (a trainer's parameter): uploaded
 * at the first run, then kept on the device and updated there by the
 * caller (ty_cuda_exec_device_ptr with write); ty_cuda_exec_sync_host
 * copies it back into t, which the executor then writes: t stays the
 * caller's tensor and must outlive the executor. */
int ty_cuda_exec_bind_resident(ty_cuda_exec *e, int value_id, ty_tensor *t, char *err,
                               size_t err_len);
/* The device side of a kept, bound or resident value after a run (uploaded
 * when only the host has it); write: the caller is about to change it on
 * the device, so the host copy is stale until ty_cuda_exec_sync_host.
 * NULL with err set when the value has no side. */
void *ty_cuda_exec_device_ptr(ty_cuda_exec *e, int value_id, bool write, char *err, size_t err_len);
/* Brings value id's host side up to date (for a resident value: into the
 * caller's tensor). Returns when the copy is done. */
int ty_cuda_exec_sync_host(ty_cuda_exec *e, int value_id, char *err, size_t err_len);
/* The compute stream (a cudaStream_t), for work the caller queues after a
 * run (the optimizer on the device). */
void *ty_cuda_exec_stream(const ty_cuda_exec *e);
/* The NVRTC compiler of the executor (borrowed by ops/cuda's optimizer). */
ty_cuda_rtc *ty_cuda_exec_rtc(const ty_cuda_exec *e);
/* p[0 .. n) *= factor on the compute stream (device memory). */
int ty_cuda_exec_scale(ty_cuda_exec *e, float *p, size_t n, float factor, char *err,
                       size_t err_len);
/* Makes seed the executor's opts.seed (the random draws' key when
 * noise_seed is 0) and restarts the run count, as a new executor with
 * that seed would draw (a trainer reseeds per step). */
void ty_cuda_exec_set_seed(ty_cuda_exec *e, uint64_t seed);
/* Reseeds the random draws (opts.noise_seed: Dropout and the random ops)
 * and restarts their run count, as a new executor with that noise_seed
 * would draw. */
void ty_cuda_exec_set_noise_seed(ty_cuda_exec *e, uint64_t noise_seed);
/* Runs every step; returns when the device is done. Errors name the node. */
int ty_cuda_exec_run(ty_cuda_exec *e, char *err, size_t err_len);
/* A kept value (or graph output) of the last run, copied to the host on
 * the first call after a run; NULL when the run did not keep it. Owned by
 * the executor, valid until the next run or destroy. */
const ty_tensor *ty_cuda_exec_value(ty_cuda_exec *e, int value_id);
const ty_cuda_plan *ty_cuda_exec_get_plan(const ty_cuda_exec *e);
void ty_cuda_exec_get_stats(const ty_cuda_exec *e, ty_cuda_exec_stats *out);

#endif
