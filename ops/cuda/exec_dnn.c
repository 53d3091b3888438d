/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's cuDNN launchers (built with cuDNN): 2-D Conv,
 * MaxPool / AveragePool / GlobalAveragePool and training-mode
 * BatchNormalization, forward and backward, through ops/cuda's dnn.c.
 * Window attributes come from ops/kernels' ty__window_read, so they mean
 * what they mean on the CPU; asymmetric pads, ceil_mode, dilated pooling
 * and the optional extra outputs decline (TY__CX_DECLINED, nothing queued).
 */
#include "ops/cuda/exec_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include <cuda_runtime_api.h>
#include <string.h>

/* The node's window over 2 spatial dims of x, symmetric pads only. */
static int window_2d(ty__cx_node *c, const ty_shape *x, const int64_t *w_spatial, ty__window *win) {
  if (x->rank != 4)
    return ty__cx_decline(c, "%s on a rank-%d input", ty_op_name(c->n->op), x->rank);
  if (ty__window_read(c->n, 2, w_spatial, x->dims + 2, win, NULL, 0) != 0)
    return ty__cx_decline(c, "%s: its window attributes", ty_op_name(c->n->op));
  if (win->pad_begin[0] != win->pad_end[0] || win->pad_begin[1] != win->pad_end[1])
    return ty__cx_decline(c, "%s with asymmetric pads (cuDNN pads both sides alike)",
                          ty_op_name(c->n->op));
  return 0;
}

/* x, w, y shapes of a Conv node (forward: inputs 0, 1, output 0). */
static int conv_of(ty__cx_node *c, const ty_shape *x, const ty_shape *w, const ty_shape *y,
                   ty_cuda_conv *cv) {
  ty__window win;
  if (w->rank != 4 || y->rank != 4) return ty__cx_decline(c, "Conv that is not 2-D");
  int rc = window_2d(c, x, w->dims + 2, &win);
  if (rc) return rc;
  *cv = (ty_cuda_conv){.n = x->dims[0],
                       .c = x->dims[1],
                       .h = x->dims[2],
                       .w = x->dims[3],
                       .k = w->dims[0],
                       .r = w->dims[2],
                       .s = w->dims[3],
                       .p = y->dims[2],
                       .q = y->dims[3],
                       .groups = ty_graph_node_attr_int(c->n, "group", 1),
                       .pad_h = win.pad_begin[0],
                       .pad_w = win.pad_begin[1],
                       .stride_h = win.stride[0],
                       .stride_w = win.stride[1],
                       .dil_h = win.dilation[0],
                       .dil_w = win.dilation[1]};
  char why[160];
  return ty_cuda_conv_check(cv, why, sizeof why) ? ty__cx_decline(c, "%s", why) : 0;
}

static int run_conv(ty__cx_node *c) {
  ty_cuda_conv cv;
  int rc = conv_of(c, &c->in_sh[0], &c->in_sh[1], &c->out_sh[0], &cv);
  if (rc) return rc;
  const float *x = ty__cx_din(c, 0), *w = ty__cx_din(c, 1),
              *b = ty__cx_has_in(c, 2) ? ty__cx_din(c, 2) : NULL;
  float *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_conv_fwd(c->e->dnn, &cv, x, w, b, y, c->err, c->err_len);
}

/* TyGrad of Conv: inputs dY, X, W, B. */
static int run_conv_grad(ty__cx_node *c, int wrt) {
  ty_cuda_conv cv;
  if (!ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "Conv gradient without its operands");
  int rc = conv_of(c, &c->in_sh[1], &c->in_sh[2], &c->in_sh[0], &cv);
  if (rc) return rc;
  const float *dy = ty__cx_din(c, 0);
  const float *x = wrt == 1 ? ty__cx_din(c, 1) : NULL, *w = wrt == 0 ? ty__cx_din(c, 2) : NULL;
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  ty_cuda_dnn *d = c->e->dnn;
  if (wrt == 0) return ty_cuda_conv_bwd_data(d, &cv, w, dy, dx, c->err, c->err_len);
  if (wrt == 1) return ty_cuda_conv_bwd_filter(d, &cv, x, dy, dx, c->err, c->err_len);
  return ty_cuda_conv_bwd_bias(d, &cv, dy, dx, c->err, c->err_len);
}

static int pool_of(ty__cx_node *c, int op, const ty_shape *x, const ty_shape *y, ty_cuda_pool *p) {
  if (x->rank != 4 || y->rank != 4) return ty__cx_decline(c, "pooling that is not 2-D");
  *p = (ty_cuda_pool){.n = x->dims[0],
                      .c = x->dims[1],
                      .h = x->dims[2],
                      .w = x->dims[3],
                      .p = y->dims[2],
                      .q = y->dims[3],
                      .max = op == TY_OP_MAX_POOL};
  if (op == TY_OP_GLOBAL_AVERAGE_POOL) {
    p->kh = p->h, p->kw = p->w, p->stride_h = p->stride_w = 1;
  } else {
    ty__window win;
    int rc = window_2d(c, x, NULL, &win);
    if (rc) return rc;
    if (win.ceil_mode) return ty__cx_decline(c, "pooling with ceil_mode");
    if (win.dilation[0] != 1 || win.dilation[1] != 1) return ty__cx_decline(c, "dilated pooling");
    p->kh = win.kernel[0], p->kw = win.kernel[1], p->stride_h = win.stride[0];
    p->stride_w = win.stride[1], p->pad_h = win.pad_begin[0], p->pad_w = win.pad_begin[1];
    p->count_pad = win.count_include_pad;
  }
  char why[160];
  return ty_cuda_pool_check(p, why, sizeof why) ? ty__cx_decline(c, "%s", why) : 0;
}

static int run_pool(ty__cx_node *c, int op) {
  ty_cuda_pool p;
  if (c->n->n_outputs > 1 && c->n->outputs[1] != TY_NO_VALUE)
    return ty__cx_decline(c, "MaxPool with its Indices output");
  int rc = pool_of(c, op, &c->in_sh[0], &c->out_sh[0], &p);
  if (rc) return rc;
  const float *x = ty__cx_din(c, 0);
  float *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_pool_fwd(c->e->dnn, &p, x, y, c->err, c->err_len);
}

/* TyGrad of a pool: inputs dY, X, Y (cuDNN's backward reads both). */
static int run_pool_grad(ty__cx_node *c, int op) {
  ty_cuda_pool p;
  if (!ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "pooling gradient without X and Y");
  int rc = pool_of(c, op, &c->in_sh[1], &c->in_sh[2], &p);
  if (rc) return rc;
  const float *dy = ty__cx_din(c, 0), *x = ty__cx_din(c, 1), *y = ty__cx_din(c, 2);
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_pool_bwd(c->e->dnn, &p, x, y, dy, dx, c->err, c->err_len);
}

static int bn_of(ty__cx_node *c, const ty_shape *x, ty_cuda_bn *b) {
  if (!c->e->o.training) return ty__cx_decline(c, "BatchNormalization with running statistics");
  if (x->rank != 4 && x->rank != 2)
    return ty__cx_decline(c, "BatchNormalization on rank %d", x->rank);
  *b = (ty_cuda_bn){.n = x->dims[0],
                    .c = x->dims[1],
                    .h = x->rank == 4 ? x->dims[2] : 1,
                    .w = x->rank == 4 ? x->dims[3] : 1,
                    .eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f)};
  return 0;
}

/* Forward in training mode: inputs X, scale, B, mean, var; output Y only. */
static int run_bn(ty__cx_node *c) {
  ty_cuda_bn b;
  for (int i = 1; i < c->n->n_outputs; i++)
    if (c->n->outputs[i] != TY_NO_VALUE)
      return ty__cx_decline(c, "BatchNormalization's statistics outputs");
  int rc = bn_of(c, &c->in_sh[0], &b);
  if (rc) return rc;
  const float *x = ty__cx_din(c, 0), *scale = ty__cx_din(c, 1), *bias = ty__cx_din(c, 2);
  float *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_bn_fwd_train(c->e->dnn, &b, x, scale, bias, y, c->err, c->err_len);
}

/* TyGrad of BatchNormalization: inputs dY, X, scale, B, ...; cuDNN
 * computes all three gradients, the two not asked for go to scratch. */
static int run_bn_grad(ty__cx_node *c, int wrt) {
  ty_cuda_bn b;
  if (wrt > 2 || !ty__cx_has_in(c, 1) || !ty__cx_has_in(c, 2))
    return ty__cx_decline(c, "BatchNormalization gradient");
  int rc = bn_of(c, &c->in_sh[1], &b);
  if (rc) return rc;
  const float *dy = ty__cx_din(c, 0), *x = ty__cx_din(c, 1), *scale = ty__cx_din(c, 2);
  float *out = ty__cx_dout(c, 0), *scratch = NULL;
  if (c->rc) return c->rc;
  size_t bytes = (size_t)(b.n * b.c * b.h * b.w + 2 * b.c) * sizeof(float);
  if ((rc = ty_cuda_alloc_get(c->e->alloc, bytes ? bytes : 4, c->e->stream, (void **)&scratch)))
    return ty_errf(c->err, c->err_len, rc, "no device memory for the BatchNormalization gradient");
  float *dx = wrt == 0 ? out : scratch, *ds = wrt == 1 ? out : scratch + b.n * b.c * b.h * b.w;
  float *db = wrt == 2 ? out : scratch + b.n * b.c * b.h * b.w + b.c;
  rc = ty_cuda_bn_bwd(c->e->dnn, &b, x, dy, scale, dx, ds, db, c->err, c->err_len);
  ty_cuda_alloc_put(c->e->alloc, scratch);
  return rc;
}

int ty__cx_launch_dnn(ty__cx_node *c, int op, bool grad, int wrt) {
  switch (op) {
  case TY_OP_CONV:
    return grad ? run_conv_grad(c, wrt) : run_conv(c);
  case TY_OP_BATCH_NORM:
    return grad ? run_bn_grad(c, wrt) : run_bn(c);
  default:
    return grad ? run_pool_grad(c, op) : run_pool(c, op);
  }
}
