/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the GPU executor shared by exec.c (value state, the run
 * loop) and exec_nodes.c (the step launchers). CUDA handles are void *
 * here, as in ops/cuda/cuda.h.
 */
#ifndef TY_OPS_CUDA_EXEC_INTERNAL_H
#define TY_OPS_CUDA_EXEC_INTERNAL_H

#include "ops/cuda/cuda.h"
#include "ops/cuda/exec.h"

/* One value's two sides. */
typedef struct ty__cx_val {
  bool known; /* dt and shape are this run's */
  ty_dtype dt;
  ty_shape shape;
  ty_tensor *host; /* borrowed (bound, initializer) unless host_own */
  bool host_own, host_ok;
  void *dev; /* a block of alloc */
  bool dev_ok;
  bool resident; /* kept across runs (ty_cuda_exec_bind_resident) */
} ty__cx_val;

struct ty_cuda_exec {
  const ty_graph *g;
  ty_cuda_exec_opts o;
  uint64_t runs, noise; /* the random draws' run count and this run's key (ty__noise_run) */
  ty_cuda_plan *plan;
  void *stream; /* the compute stream (cudaStream_t) */
  ty_cuda_alloc *alloc;
  ty_cuda_rtc *rtc;
  ty_cuda_kernels *kern;
  ty_cuda_blas *blas;
  ty_cuda_dnn *dnn;      /* NULL in a build without cuDNN */
  ty_cuda_module **mods; /* per region */
  void *bad;             /* one int64 on the device: the kernels' bad-index flag */
  const ty_tensor **bound;
  ty__cx_val *v;
  size_t nv;
  bool *keep;     /* per value: readable after a run */
  bool *watched;  /* per value: reported through o.on_device_ready */
  long *last_use; /* per value: the last step reading it, -1: none */
  ty_cuda_exec_stats st;
};

/* The device side of value id, uploaded if only the host has it; NULL with
 * *rc set (and err) on failure. */
void *ty__cx_dev(ty_cuda_exec *e, int id, char *err, size_t err_len, int *rc);
/* Makes the host side of value id valid (downloads, synchronously). */
int ty__cx_host(ty_cuda_exec *e, int id, char *err, size_t err_len);
/* Value id becomes a fresh device block of dt, s (the host side invalid). */
int ty__cx_out_dev(ty_cuda_exec *e, int id, ty_dtype dt, const ty_shape *s, void **out, char *err,
                   size_t err_len);
/* Value id becomes host tensor t (owned from now on; the device side invalid). */
void ty__cx_out_host(ty_cuda_exec *e, int id, ty_tensor *t);
/* Value id has no side (a declined launch's outputs). */
void ty__cx_forget(ty_cuda_exec *e, int id);
/* TY_EIO naming what failed and the CUDA error e (a cudaError_t). */
int ty__cx_cuda_err(char *err, size_t err_len, int e, const char *what);

/* Step runners (exec_nodes.c). host: a HOST step (its inputs' data is not
 * needed, only their shapes). */
int ty__cx_region(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len);
int ty__cx_gpu_node(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len);
int ty__cx_cpu_node(ty_cuda_exec *e, const ty_cuda_step *s, bool host, char *err, size_t err_len);

/* ---- the node launchers (exec_nodes.c dispatches to the families) ------- */
/* A launcher's answer when a concrete shape or attribute is outside what it
 * handles; nothing was queued, the step runs on the CPU. */
#define TY__CX_DECLINED 1

/* One node being launched: its shapes and where a decline says why. */
typedef struct ty__cx_node {
  ty_cuda_exec *e;
  const ty_graph_node *n;
  const ty_shape *in_sh; /* n_inputs */
  const ty_dtype *in_dt;
  const ty_shape *out_sh; /* n_outputs */
  const ty_dtype *out_dt;
  char *err;
  size_t err_len;
  int rc; /* the first device error */
} ty__cx_node;

/* Records why (ty_cuda_exec_stats.last_declined); returns TY__CX_DECLINED. */
int ty__cx_decline(ty__cx_node *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ty__cx_has_in(const ty__cx_node *c, int i);
/* Input i's / output i's device block (the output allocated with its
 * inferred shape); NULL after the first failure, which c->rc keeps. */
const void *ty__cx_din(ty__cx_node *c, int i);
void *ty__cx_dout(ty__cx_node *c, int i);
/* 0, or TY_EIO naming what and the cudaError_t ce. */
int ty__cx_cuda_rc(ty__cx_node *c, int ce, const char *what);
/* A [rows, last dim] view of s on the compute stream. */
ty_cuda_rows ty__cx_rows_of(const ty__cx_node *c, const ty_shape *s);

/* The families: forward op (or, grad, its TyGrad w.r.t. input wrt). */
int ty__cx_launch_math(ty__cx_node *c, int op, bool grad, int wrt);   /* exec_math.c */
int ty__cx_launch_layout(ty__cx_node *c, int op, bool grad, int wrt); /* exec_layout.c */
int ty__cx_launch_dnn(ty__cx_node *c, int op, bool grad, int wrt);    /* exec_dnn.c (cuDNN) */

#endif
