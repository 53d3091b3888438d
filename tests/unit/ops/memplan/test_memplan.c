/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/memplan: liveness over the step order, planned runs equal unplanned
 * ones (also across batch sizes), in-place writes only where legal,
 * Reshape-like outputs sharing their input's buffer only where safe, and the
 * report's peak is lower with planning, on small graphs, on an MLP with its
 * backward pass (ops/autodiff), and on the example MLP and CNN when the
 * build generated them (TY_EXAMPLE_MODEL_DIR).
 */
#include "ops/autodiff/autodiff.h"
#include "ops/memplan/memplan.h"
#include "tests/unit/ops/fusion/gtest.h"

#include <math.h>
#include <stdio.h>

#define D 16

static float f_x(int64_t i) {
  return sinf((float)i * 0.37f) * 3.0f;
}
static float f_w(int64_t i) {
  return cosf((float)i * 0.11f) * 0.2f;
}

/* a = relu(x); b = exp(a); c = neg(a); out = b + c. */
static ty_graph *diamond(int *ids) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, D};
  int x = gt_input(g, "x", 2, xd);
  int a = gt_op(g, TY_OP_RELU, x, -1), b = gt_op(g, TY_OP_EXP, a, -1),
      c = gt_op(g, TY_OP_NEG, a, -1);
  int o = gt_op(g, TY_OP_ADD, b, c);
  cr_assert_eq(ty_graph_mark_output(g, o), 0);
  gt_infer(g);
  int v[5] = {x, a, b, c, o};
  memcpy(ids, v, sizeof v);
  return g;
}

Test(memplan, liveness_over_steps) {
  int id[5];
  ty_graph *g = diamond(id);
  ty_memplan_live live[16];
  size_t n_steps;
  ty_memplan_opts o = {.no_fusion = true};
  cr_assert_eq(ty_memplan_liveness(g, &o, live, &n_steps), 0);
  cr_assert_eq(n_steps, 4);
  cr_assert(live[id[0]].def == -1 && live[id[0]].last_use == 0 && !live[id[0]].kept, "x");
  cr_assert(live[id[1]].def == 0 && live[id[1]].last_use == 2, "a dies at neg");
  cr_assert(live[id[2]].def == 1 && live[id[2]].last_use == 3, "b");
  cr_assert(live[id[3]].def == 2 && live[id[3]].last_use == 3, "c");
  cr_assert(live[id[4]].def == 3 && live[id[4]].last_use == -1 && live[id[4]].kept, "output");
  /* Fused, the whole diamond is one step and a, b, c are never written. */
  cr_assert_eq(ty_memplan_liveness(g, NULL, live, &n_steps), 0);
  cr_assert_eq(n_steps, 1);
  cr_assert_eq(live[id[1]].def, -1);
  ty_graph_destroy(g);
}

Test(memplan, inplace_only_where_legal) {
  int id[5];
  ty_graph *g = diamond(id);
  int64_t dims[2] = {4, D};
  ty_tensor *x = gt_tensor(2, dims, f_x), *copy;
  cr_assert_eq(ty_tensor_clone(x, &copy), 0);
  const char *names[1] = {"x"};
  ty_exec_opts planned = {.no_fusion = true}, plain = {.no_fusion = true, .no_memplan = true};
  ty_exec *e = gt_run(g, &planned, 1, names, &x), *r = gt_run(g, &plain, 1, names, &x);
  gt_assert_same(ty_exec_value(e, id[4]), ty_exec_value(r, id[4]));
  gt_assert_same(x, copy); /* the graph input was not written over */
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  /* relu may not overwrite x (an input); exp may not overwrite a (neg reads
   * it later); neg may, and add over b or c. */
  cr_assert_eq(st.inplace, 2);
  cr_assert_null(ty_exec_value(e, id[1]), "a dead value reads as NULL");
  cr_assert_not_null(ty_exec_value(r, id[1]), "kept without planning");
  ty_exec_destroy(e);
  ty_exec_destroy(r);
  ty_tensor_destroy(x);
  ty_tensor_destroy(copy);
  ty_graph_destroy(g);
}

Test(memplan, keep_values_stay_readable) {
  int id[5];
  ty_graph *g = diamond(id);
  int64_t dims[2] = {3, D};
  ty_tensor *x = gt_tensor(2, dims, f_x);
  const char *names[1] = {"x"};
  ty_exec_opts planned = {.keep_values = &id[1], .n_keep_values = 1},
               plain = {.no_memplan = true, .no_fusion = true};
  ty_exec *e = gt_run(g, &planned, 1, names, &x), *r = gt_run(g, &plain, 1, names, &x);
  gt_assert_same(ty_exec_value(e, id[1]), ty_exec_value(r, id[1]));
  gt_assert_same(ty_exec_value(e, id[4]), ty_exec_value(r, id[4]));
  ty_exec_destroy(e);
  ty_exec_destroy(r);
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
}

/* a = relu(x); v = flatten(a); c = neg(a); w = exp(v); outputs c and w.
 * v shares a's buffer; a dies at neg, which would write c over it in place
 * if nothing else used the buffer, and exp reads v after that. */
static ty_graph *view_then_inplace(int *ids) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[3] = {TY_DIM_BATCH, 2, D / 2};
  int x = gt_input(g, "x", 3, xd);
  int a = gt_op(g, TY_OP_RELU, x, -1), v = gt_op(g, TY_OP_FLATTEN, a, -1);
  int c = gt_op(g, TY_OP_NEG, a, -1), w = gt_op(g, TY_OP_EXP, v, -1);
  cr_assert_eq(ty_graph_mark_output(g, c), 0);
  cr_assert_eq(ty_graph_mark_output(g, w), 0);
  gt_infer(g);
  int ids_[5] = {x, a, v, c, w};
  memcpy(ids, ids_, sizeof ids_);
  return g;
}

Test(memplan, reshape_output_shares_its_input_buffer) {
  int id[5];
  ty_graph *g = view_then_inplace(id);
  int64_t dims[3] = {5, 2, D / 2};
  ty_tensor *x = gt_tensor(3, dims, f_x);
  const char *names[1] = {"x"};
  ty_exec_opts planned = {.no_fusion = true}, plain = {.no_fusion = true, .no_memplan = true};
  ty_exec *e = gt_run(g, &planned, 1, names, &x), *r = gt_run(g, &plain, 1, names, &x);
  gt_assert_same(ty_exec_value(e, id[3]), ty_exec_value(r, id[3]));
  gt_assert_same(ty_exec_value(e, id[4]), ty_exec_value(r, id[4]));
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  cr_assert_eq(st.views, 1, "flatten copies nothing");
  /* neg may not write over a (v still reads its buffer); exp may over v. */
  cr_assert_eq(st.inplace, 1);
  ty_exec_destroy(e);
  ty_exec_destroy(r);
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
}

/* A kept value is never a view or viewed: the caller may write to it. */
Test(memplan, kept_values_are_not_shared) {
  int id[5];
  ty_graph *g = view_then_inplace(id);
  int64_t dims[3] = {3, 2, D / 2};
  ty_tensor *x = gt_tensor(3, dims, f_x);
  const char *names[1] = {"x"};
  ty_exec_opts planned = {.no_fusion = true, .keep_values = &id[2], .n_keep_values = 1},
               plain = {.no_fusion = true, .no_memplan = true};
  ty_exec *e = gt_run(g, &planned, 1, names, &x), *r = gt_run(g, &plain, 1, names, &x);
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  cr_assert_eq(st.views, 0);
  gt_assert_same(ty_exec_value(e, id[2]), ty_exec_value(r, id[2]));
  gt_assert_same(ty_exec_value(e, id[4]), ty_exec_value(r, id[4]));
  cr_assert_neq(ty_exec_value(e, id[2])->data, ty_exec_value(e, id[4])->data);
  ty_exec_destroy(e);
  ty_exec_destroy(r);
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
}

/* loss = ReduceSum(exp(flatten(x * w))), differentiated for w: the
 * Flatten's gradient (a TyGrad node that copies dY) shares dY's buffer as
 * the Flatten shares its input's. */
Test(memplan, reshape_gradient_shares_dy_buffer) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[3] = {TY_DIM_BATCH, 2, D / 2}, wd[2] = {2, D / 2};
  int x = gt_input(g, "x", 3, xd), w = gt_init(g, "w", 2, wd, f_w);
  int v = gt_op(g, TY_OP_FLATTEN, gt_op(g, TY_OP_MUL, x, w), -1);
  int loss = gt_op(g, TY_OP_REDUCE_SUM, gt_op(g, TY_OP_EXP, v, -1), -1), grad;
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, &w, 1, &grad, err, sizeof err), 0, "%s", err);
  int64_t dims[3] = {3, 2, D / 2};
  ty_tensor *t = gt_tensor(3, dims, f_x);
  const char *names[1] = {"x"};
  ty_exec_opts planned = {.no_fusion = true}, plain = {.no_fusion = true, .no_memplan = true};
  ty_exec *e = gt_run(g, &planned, 1, names, &t), *r = gt_run(g, &plain, 1, names, &t);
  gt_assert_same(ty_exec_value(e, grad), ty_exec_value(r, grad));
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  cr_assert_eq(st.views, 2, "the Flatten and its gradient copy nothing (%zu views)",
               (size_t)st.views);
  ty_exec_destroy(e);
  ty_exec_destroy(r);
  ty_tensor_destroy(t);
  ty_graph_destroy(g);
}

/* An MLP with softmax cross-entropy and its backward pass. */
static ty_graph *mlp_train(int depth, int *out_loss, int *grads, int *n_grads) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, D}, ld[1] = {TY_DIM_BATCH}, wd[2] = {D, D}, bd[1] = {D};
  int h = gt_input(g, "x", 2, xd), lab;
  ty_shape ls = ty_shape_make(1, ld);
  cr_assert_eq(ty_graph_add_value(g, "label", TY_DTYPE_I64, &ls, &lab), 0);
  cr_assert_eq(ty_graph_mark_input(g, lab), 0);
  int params[16], np = 0;
  for (int l = 0; l < depth; l++) {
    char wn[16], bn[16];
    snprintf(wn, sizeof wn, "w%d", l);
    snprintf(bn, sizeof bn, "b%d", l);
    int w = gt_init(g, wn, 2, wd, f_w), b = gt_init(g, bn, 1, bd, f_w);
    params[np++] = w;
    params[np++] = b;
    h = gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MATMUL, h, w), b);
    if (l + 1 < depth) h = gt_op(g, TY_OP_RELU, h, -1);
  }
  int in[2] = {h, lab}, loss;
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, &loss), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, NULL, in, 2, &loss, 1, NULL), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, params, (size_t)np, grads, err, sizeof err), 0, "%s", err);
  *out_loss = loss;
  *n_grads = np;
  return g;
}

Test(memplan, training_graph_planned_equals_unplanned) {
  int loss, grads[16], ng;
  ty_graph *g = mlp_train(4, &loss, grads, &ng);
  for (int64_t n = 2; n <= 9; n += 7) {
    int64_t xd[2] = {n, D}, ld[1] = {n};
    ty_tensor *x = gt_tensor(2, xd, f_x), *lab;
    ty_shape ls = ty_shape_make(1, ld);
    cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &ls, &lab), 0);
    for (int64_t i = 0; i < n; i++)
      ty_tensor_i64(lab)[i] = i % D;
    ty_tensor *ts[2] = {x, lab};
    const char *names[2] = {"x", "label"};
    ty_exec_opts plain = {.no_memplan = true, .no_fusion = true, .training = true},
                 planned = {.training = true};
    ty_exec *a = gt_run(g, &plain, 2, names, ts), *b = gt_run(g, &planned, 2, names, ts);
    gt_assert_same(ty_exec_value(a, loss), ty_exec_value(b, loss));
    for (int i = 0; i < ng; i++)
      gt_assert_same(ty_exec_value(a, grads[i]), ty_exec_value(b, grads[i]));
    ty_exec_stats st;
    ty_exec_get_stats(b, &st);
    cr_assert_lt(st.pool_bytes, st.unplanned_bytes);
    ty_exec_destroy(a);
    ty_exec_destroy(b);
    ty_tensor_destroy(x);
    ty_tensor_destroy(lab);
  }
  ty_graph_destroy(g);
}

Test(memplan, report_peak_lower_with_planning) {
  int loss, grads[16], ng;
  ty_graph *g = mlp_train(6, &loss, grads, &ng);
  ty_memplan_report r;
  char err[256] = "";
  cr_assert_eq(ty_memplan_report_graph(g, 128, NULL, err, sizeof err, &r), 0, "%s", err);
  cr_assert_lt(r.planned_bytes, r.unplanned_bytes);
  cr_assert_lt(r.n_buffers, r.n_activations);
  ty_memplan_report r2;
  cr_assert_eq(ty_memplan_report_graph(g, 256, NULL, err, sizeof err, &r2), 0, "%s", err);
  cr_assert_gt(r2.unplanned_bytes, r.unplanned_bytes, "activations scale with the batch");
  ty_graph_destroy(g);
}

/* Appends softmax cross-entropy on g's first output (labels "label") and
 * the backward pass for every float initializer. */
static void add_training(ty_graph *g) {
  int64_t ld[1] = {TY_DIM_BATCH};
  ty_shape ls = ty_shape_make(1, ld);
  int lab, loss, params[256];
  size_t np = 0;
  for (size_t v = 0; v < ty_graph_n_values(g) && np < 256; v++) {
    const ty_graph_value *gv = ty_graph_value_at(g, v);
    if (gv->init && gv->dtype == TY_DTYPE_F32) params[np++] = (int)v;
  }
  cr_assert_eq(ty_graph_add_value(g, "label", TY_DTYPE_I64, &ls, &lab), 0);
  cr_assert_eq(ty_graph_mark_input(g, lab), 0);
  int in[2] = {ty_graph_output(g, 0), lab};
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, &loss), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, NULL, in, 2, &loss, 1, NULL), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  int grads[256];
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, params, np, grads, err, sizeof err), 0, "%s", err);
}

/* The build's example model `file` (the test is skipped without it). */
static ty_graph *example_model(const char *file) {
  const char *dir = getenv("TY_EXAMPLE_MODEL_DIR");
  char path[512], err[256] = "";
  if (!dir) cr_skip_test("TY_EXAMPLE_MODEL_DIR not set (examples not generated)");
  snprintf(path, sizeof path, "%s/%s", dir, file);
  ty_graph *g;
  if (ty_graph_load_file(path, err, sizeof err, &g) != 0) cr_skip_test("%s: %s", path, err);
  return g;
}

/* An example model's planned activations, forward only (unfused) and with
 * its backward pass (fused, as trainrun runs it): below the unplanned sum
 * in the steady state the report simulates. */
static void report_model(const char *file) {
  ty_graph *g = example_model(file);
  char err[256] = "";
  ty_memplan_report r;
  ty_memplan_opts o = {.no_fusion = true};
  for (int train = 0; train < 2; train++) {
    if (train) add_training(g);
    cr_assert_eq(ty_memplan_report_graph(g, 64, train ? NULL : &o, err, sizeof err, &r), 0, "%s",
                 err);
    cr_assert_lt(r.planned_bytes, r.unplanned_bytes, "%s%s: %llu >= %llu", file,
                 train ? " (training)" : "", (unsigned long long)r.planned_bytes,
                 (unsigned long long)r.unplanned_bytes);
  }
  ty_graph_destroy(g);
}

/* Buffers persist across runs and a run only reassigns them: each value
 * takes the buffer it had last run when that one is free and large enough,
 * so the second run repeats the first and training allocates nothing more.
 * Reassigned by best fit instead, small values came to squat on the large
 * buffers of the run before, the large values grew others, and a training
 * step's pool kept growing past its first run's: the example MLP's to 2.5
 * times the sum of its activations, the ResNet's to 1.3 times. */
Test(memplan, later_runs_hold_what_the_first_run_held) {
  ty_graph *g = example_model("mlp.onnx");
  char err[256] = "";
  add_training(g);
  int64_t xd[2] = {64, 784}, ld[1] = {64};
  ty_tensor *x = gt_tensor(2, xd, f_x), *lab;
  ty_shape ls = ty_shape_make(1, ld);
  cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &ls, &lab), 0);
  for (int64_t i = 0; i < 64; i++)
    ty_tensor_i64(lab)[i] = i % 10;
  ty_tensor *ts[2] = {x, lab};
  const char *names[2] = {ty_graph_value_at(g, (size_t)ty_graph_input(g, 0))->name, "label"};
  ty_exec_opts o = {.training = true};
  ty_exec *e = gt_run(g, &o, 2, names, ts);
  ty_exec_stats first, st;
  ty_exec_get_stats(e, &first);
  for (int run = 2; run <= 4; run++) {
    cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
    ty_exec_get_stats(e, &st);
    cr_assert_eq(st.pool_bytes, first.pool_bytes, "run %d holds %llu bytes, the first %llu", run,
                 (unsigned long long)st.pool_bytes, (unsigned long long)first.pool_bytes);
  }
  cr_assert_lt(st.pool_bytes, st.unplanned_bytes);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_tensor_destroy(lab);
  ty_graph_destroy(g);
}

Test(memplan, example_mlp_peak_lower) {
  report_model("mlp.onnx");
}
Test(memplan, example_cnn_peak_lower) {
  report_model("cnn.onnx");
}
Test(memplan, example_resnet_peak_lower) {
  report_model("resnet.onnx");
}

Test(memplan, report_rejects_bad_batch_and_unknown_shapes) {
  int id[5];
  ty_graph *g = diamond(id);
  ty_memplan_report r;
  char err[256] = "";
  cr_assert_eq(ty_memplan_report_graph(g, 0, NULL, err, sizeof err, &r), TY_EINVAL);
  cr_assert(strstr(err, "batch"), "%s", err);
  ty_graph_destroy(g);
  /* A value whose shape inference never ran. */
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[1] = {4};
  int x = gt_input(g, "x", 1, xd), y = gt_op(g, TY_OP_RELU, x, -1);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  cr_assert_eq(ty_memplan_report_graph(g, 1, NULL, err, sizeof err, &r), TY_EINVAL);
  cr_assert(strstr(err, ty_graph_value_at(g, y)->name) && strstr(err, "not known"), "%s", err);
  ty_graph_destroy(g);
}
