/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's steps: a generated region, a node on the GPU (shapes
 * inferred on the host, then the launcher of its family: exec_math.c,
 * exec_layout.c, exec_dnn.c) and the CPU step every other node takes, with
 * ops/exec's kernels; plus the launchers' shared helpers.
 *
 * Output shapes are inferred on the host first (ty__infer_node, integer
 * inputs read from the host). A launcher that finds a concrete shape it
 * does not handle returns TY__CX_DECLINED before queuing anything; the
 * step then runs on the CPU and is counted (ty_cuda_exec_stats.declined).
 */
#include "ops/cuda/exec_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/ops_internal.h"

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ty__cx_decline(ty__cx_node *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->e->st.last_declined, sizeof c->e->st.last_declined, fmt, ap);
  va_end(ap);
  return TY__CX_DECLINED;
}

bool ty__cx_has_in(const ty__cx_node *c, int i) {
  return i < c->n->n_inputs && c->n->inputs[i] != TY_NO_VALUE;
}

const void *ty__cx_din(ty__cx_node *c, int i) {
  int rc = 0;
  void *p = c->rc ? NULL : ty__cx_dev(c->e, c->n->inputs[i], c->err, c->err_len, &rc);
  if (rc) c->rc = rc;
  return p;
}

void *ty__cx_dout(ty__cx_node *c, int i) {
  void *p = NULL;
  if (c->rc == 0)
    c->rc =
        ty__cx_out_dev(c->e, c->n->outputs[i], c->out_dt[i], &c->out_sh[i], &p, c->err, c->err_len);
  return p;
}

int ty__cx_cuda_rc(ty__cx_node *c, int ce, const char *what) {
  return ce ? ty__cx_cuda_err(c->err, c->err_len, ce, what) : 0;
}

/* A [rows, last dim] view of shape s. */
ty_cuda_rows ty__cx_rows_of(const ty__cx_node *c, const ty_shape *s) {
  int64_t cols = s->rank > 0 ? s->dims[s->rank - 1] : 1;
  return (ty_cuda_rows){cols ? ty_shape_numel(s) / cols : 0, cols, c->e->stream};
}

/* ---- dispatch ---------------------------------------------------------------- */
static int launch_node(ty__cx_node *c) {
  const ty_graph_node *n = c->n;
  for (int i = 0; i < n->n_outputs; i++)
    if (n->outputs[i] != TY_NO_VALUE && c->out_dt[i] != TY_DTYPE_F32)
      return ty__cx_decline(c, "%s: an output that is not float32", ty_op_name(n->op));
  bool grad = n->op == TY_OP_GRAD;
  int op = grad ? ty_autodiff_grad_forward_op(n) : (int)n->op;
  int wrt = (int)ty_graph_node_attr_int(n, "wrt", 0);
  switch (op) {
  case TY_OP_MATMUL:
  case TY_OP_GEMM:
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
  case TY_OP_SOFTMAX_CE_LOSS:
  case TY_OP_LAYER_NORM:
  case TY_OP_GATHER:
    return ty__cx_launch_math(c, op, grad, wrt);
#ifdef TY_HAVE_CUDNN
  case TY_OP_CONV:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_GLOBAL_AVERAGE_POOL:
  case TY_OP_BATCH_NORM:
    return ty__cx_launch_dnn(c, op, grad, wrt);
#endif
  default:
    return ty__cx_launch_layout(c, op, grad, wrt);
  }
}

/* Infers a node's output dtypes and shapes from its inputs' (data only
 * where the host has it: integer shape arithmetic). */
static int infer(ty_cuda_exec *e, const ty_graph_node *n, const ty_tensor **vals, ty_dtype *dts,
                 ty_shape *shs, char *err, size_t err_len) {
  int ni = n->n_inputs;
  for (int i = 0; i < ni; i++) {
    int id = n->inputs[i];
    const ty__cx_val *v = id == TY_NO_VALUE ? NULL : &e->v[id];
    bool have = v && v->known;
    dts[i] = have ? v->dt : TY_DTYPE_INVALID;
    shs[i] = have ? v->shape : ty_shape_unknown();
    vals[i] = have && v->host_ok ? v->host : NULL;
  }
  ty__infer ic = {.node = n,
                  .n_in = ni,
                  .in_dt = dts,
                  .in_shape = shs,
                  .in_val = vals,
                  .n_out = n->n_outputs,
                  .out_dt = dts + ni,
                  .out_shape = shs + ni,
                  .err = err,
                  .err_len = err_len};
  return ty__infer_node(&ic);
}

int ty__cx_cpu_node(ty_cuda_exec *e, const ty_cuda_step *s, bool host, char *err, size_t err_len) {
  const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
  int ni = n->n_inputs, no = n->n_outputs, rc = 0;
  const ty_tensor *in[64] = {NULL};
  ty_tensor *out[16] = {NULL}, shape_only[64];
  ty_dtype dts[80];
  ty_shape shs[80];
  if (ni > 64 || no > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  for (int i = 0; i < ni && rc == 0; i++)
    if (n->inputs[i] != TY_NO_VALUE && !host) rc = ty__cx_host(e, n->inputs[i], err, err_len);
  if (rc == 0) rc = infer(e, n, in, dts, shs, err, err_len);
  for (int i = 0; rc == 0 && host && i < ni; i++) /* Shape reads no data */
    if (!in[i] && n->inputs[i] != TY_NO_VALUE) {
      shape_only[i] = (ty_tensor){.dtype = dts[i], .shape = shs[i]};
      in[i] = &shape_only[i];
    }
  for (int i = 0; rc == 0 && i < no; i++)
    if (n->outputs[i] != TY_NO_VALUE && (rc = ty_tensor_create(dts[ni + i], &shs[ni + i], &out[i])))
      rc = ty__node_err(err, err_len, n, rc, "cannot allocate output %d", i);
  ty__kctx ctx = {.training = e->o.training, .noise = e->noise, .workers = e->o.workers};
  if (rc == 0 && (rc = ty__kernel_for(n->op)(n, in, out, &ctx)) != 0)
    rc = ty__node_err(err, err_len, n, rc, "kernel failed on the CPU: %s", ty_strerror(rc));
  for (int i = 0; i < no; i++) {
    if (rc == 0 && out[i])
      ty__cx_out_host(e, n->outputs[i], out[i]);
    else
      ty_tensor_destroy(out[i]);
  }
  return rc;
}

int ty__cx_gpu_node(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
  const ty_tensor *vals[64] = {NULL};
  ty_dtype dts[80];
  ty_shape shs[80];
  if (n->n_inputs > 64 || n->n_outputs > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  int rc = infer(e, n, vals, dts, shs, err, err_len);
  if (rc != 0) return rc;
  ty__cx_node c = {e, n, shs, dts, shs + n->n_inputs, dts + n->n_inputs, err, err_len, 0};
  rc = launch_node(&c);
  if (rc == TY__CX_DECLINED) {
    for (int i = 0; i < n->n_outputs; i++)
      if (n->outputs[i] != TY_NO_VALUE) ty__cx_forget(e, n->outputs[i]);
    e->st.declined++;
    return ty__cx_cpu_node(e, s, false, err, err_len);
  }
  if (rc != 0 && err[0] && !strstr(err, ty_op_name(n->op))) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err);
    return ty__node_err(err, err_len, n, rc, "on the GPU: %s", inner);
  }
  return rc;
}

/* ---- a generated region --------------------------------------------------------- */
int ty__cx_region(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  const ty_fused_src *r = &e->plan->regions[s->region];
  const ty_graph_node *first = ty_graph_node_at(e->g, s->node);
  const float *in[TY_FUSE_MAX_IO];
  float *out[TY_FUSE_MAX_IO];
  ty_shape shapes[TY_FUSE_MAX_IO], loop = ty_shape_make(0, NULL);
  int rc = 0;
  for (int i = 0; i < r->n_in; i++) {
    const ty__cx_val *v = &e->v[r->in_ids[i]];
    const char *vn = ty_graph_value_at(e->g, r->in_ids[i])->name;
    if (!v->known || v->dt != TY_DTYPE_F32)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" missing or not float", vn);
    shapes[i] = v->shape;
    if (ty_shape_broadcast(&loop, &v->shape, &loop) != 0)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" does not broadcast", vn);
    if (!(in[i] = ty__cx_dev(e, r->in_ids[i], err, err_len, &rc))) return rc;
  }
  for (int j = 0; j < r->n_out; j++)
    if ((rc = ty__cx_out_dev(e, r->out_ids[j], TY_DTYPE_F32, &loop, (void **)&out[j], err,
                             err_len)) != 0)
      return rc;
  ty_cuda_fused_call call = {r->name, r->n_in, r->n_out, r->n_params, r->cls,   shapes,
                             &loop,   in,      out,      r->params,   e->stream};
  rc = ty_cuda_fused_launch(e->mods[s->region], &call, err, err_len);
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err);
    return ty__node_err(err, err_len, first, rc, "fused region on the GPU: %s", inner);
  }
  return 0;
}
