/* SPDX-License-Identifier: Apache-2.0 */
/* The finite-difference gradient check (see gradcheck.h). */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double urand(gb *b) {
  b->rng = b->rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(b->rng >> 11) / 9007199254740992.0;
}

void gb_init(gb *b, int opset) {
  memset(b, 0, sizeof *b);
  b->rng = 12345;
  cr_assert_eq(ty_graph_create(&b->g), 0);
  ty_graph_set_opset(b->g, opset);
}

/* A float initializer with values in [lo, hi); a parameter if param. When
 * away_from_zero, |v| >= 0.1 (kinks). */
int gb_float(gb *b, bool param, int rank, const int64_t *dims, double lo, double hi, bool away) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
  float *d = ty_tensor_f32(t);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++) {
    double v = lo + (hi - lo) * urand(b);
    if (away && fabs(v) < 0.1) v = v < 0 ? v - 0.1 : v + 0.1;
    d[i] = (float)v;
  }
  cr_assert_eq(ty_graph_add_value(b->g, NULL, TY_DTYPE_F32, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(b->g, id, t), 0);
  if (param) b->params[b->np++] = id;
  return id;
}

int gb_ints(gb *b, int rank, const int64_t *dims, const int64_t *vals) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_I64, &s, vals, (size_t)ty_shape_numel(&s) * 8, &t),
               0);
  cr_assert_eq(ty_graph_add_value(b->g, NULL, TY_DTYPE_I64, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(b->g, id, t), 0);
  return id;
}

/* Adds op(in) with n_out outputs; returns the node index, output 0 in *y. */
size_t gb_node(gb *b, ty_op op, const int *in, int n_in, int n_out, int *y) {
  int outs[4], idx;
  for (int i = 0; i < n_out; i++)
    cr_assert_eq(ty_graph_add_value(b->g, NULL, TY_DTYPE_INVALID, NULL, &outs[i]), 0);
  cr_assert_eq(ty_graph_add_node(b->g, op, NULL, in, n_in, outs, n_out, &idx), 0);
  *y = outs[0];
  return (size_t)idx;
}

static double run_loss(ty_graph *g, int loss, const int *ids, ty_tensor **vals, int n) {
  ty_exec_opts o = {.training = true, .seed = 7};
  ty_exec *e;
  char err[256] = "";
  cr_assert_eq(ty_exec_create(g, &o, &e), 0);
  for (int i = 0; i < n; i++)
    cr_assert_eq(ty_exec_bind_id(e, ids[i], vals[i], err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  double l = ty_tensor_f32(ty_exec_value(e, loss))[0];
  ty_exec_destroy(e);
  return l;
}

/* loss = sum_k ReduceSum(ys[k] * R_k). */
static int head(gb *b, const int *ys, int n_ys) {
  int loss = TY_NO_VALUE;
  for (int k = 0; k < n_ys; k++) {
    const ty_graph_value *yv = ty_graph_value_at(b->g, ys[k]);
    int r = gb_float(b, false, yv->shape.rank, yv->shape.dims, -1, 1, false), m, part;
    gb_node(b, TY_OP_MUL, (int[]){ys[k], r}, 2, 1, &m);
    size_t rs = gb_node(b, TY_OP_REDUCE_SUM, &m, 1, 1, &part);
    cr_assert_eq(ty_graph_node_set_int(b->g, rs, "keepdims", 0), 0);
    if (loss != TY_NO_VALUE) gb_node(b, TY_OP_ADD, (int[]){loss, part}, 2, 1, &part);
    loss = part;
  }
  return loss;
}

void check(gb *b, int y, double eps, double tol) {
  check_outputs(b, &y, 1, eps, tol);
}

void check_outputs(gb *b, const int *ys, int n_ys, double eps, double tol) {
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  int loss = head(b, ys, n_ys);
  cr_assert_eq(ty_graph_mark_output(b->g, loss),
               0); /* memory planning keeps only outputs readable */
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  int grads[16];
  cr_assert_eq(ty_autodiff(b->g, loss, b->params, (size_t)b->np, grads, err, sizeof err), 0, "%s",
               err);
  ty_tensor *vals[16];
  for (int p = 0; p < b->np; p++)
    cr_assert_eq(ty_tensor_clone(ty_graph_value_at(b->g, b->params[p])->init, &vals[p]), 0);
  ty_exec_opts o = {.training = true, .seed = 7};
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b->g, &o, &e), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  for (int p = 0; p < b->np; p++) {
    cr_assert_neq(grads[p], TY_NO_VALUE, "param %d has no gradient", p);
    const ty_tensor *gt = ty_exec_value(e, grads[p]);
    cr_assert(ty_shape_equal(&gt->shape, &vals[p]->shape), "param %d: gradient shape differs", p);
    float *w = ty_tensor_f32(vals[p]);
    for (int64_t j = 0; j < ty_tensor_numel(vals[p]); j++) {
      float keep = w[j];
      w[j] = keep + (float)eps;
      double lp = run_loss(b->g, loss, b->params, vals, b->np);
      w[j] = keep - (float)eps;
      double lm = run_loss(b->g, loss, b->params, vals, b->np);
      w[j] = keep;
      double fd = (lp - lm) / (2 * eps), an = ty_tensor_f32(gt)[j];
      cr_expect(fabs(fd - an) <= tol * (1 + fabs(fd)),
                "param %d element %lld: analytic %.6f vs numeric %.6f", p, (long long)j, an, fd);
    }
  }
  ty_exec_destroy(e);
  for (int p = 0; p < b->np; p++)
    ty_tensor_destroy(vals[p]);
  ty_graph_destroy(b->g);
}

void run_and_copy(gb *b, int y, int n_grads, int threads, float **out_v, int64_t *out_n) {
  char err[256] = "";
  int loss = head(b, &y, 1), outs[16];
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  cr_assert(n_grads < 16);
  cr_assert_eq(ty_autodiff(b->g, loss, b->params, (size_t)n_grads, outs + 1, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(ty_graph_mark_output(b->g, y), 0);
  outs[0] = y;
  ty_workers *w = NULL;
  cr_assert_eq(ty_workers_create(threads, &w), 0);
  ty_exec_opts o = {.training = true, .seed = 7, .workers = w};
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b->g, &o, &e), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  for (int i = 0; i <= n_grads; i++) {
    const ty_tensor *t = ty_exec_value(e, outs[i]);
    out_n[i] = ty_tensor_numel(t);
    out_v[i] = malloc((size_t)out_n[i] * sizeof(float));
    cr_assert(out_v[i]);
    memcpy(out_v[i], ty_tensor_f32(t), (size_t)out_n[i] * sizeof(float));
  }
  ty_exec_destroy(e);
  ty_workers_destroy(w);
  ty_graph_destroy(b->g);
}
