/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evaluation on the test split: the plain model (no loss, no backward) in
 * inference mode with the current weights, in batches of 1000. Accuracy is
 * the argmax of the logits against the labels; the loss is the mean softmax
 * cross-entropy (or the model's own loss output).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BATCH 1000

static double batch_ce(const float *logits, const int64_t *y, uint32_t n, int64_t classes, uint64_t *correct) {
  double total = 0;
  for (uint32_t i = 0; i < n; i++) {
    const float *r = logits + (int64_t)i * classes;
    int64_t best = 0;
    double mx = r[0], s = 0;
    for (int64_t k = 1; k < classes; k++)
      if (r[k] > r[best]) best = k;
    mx = r[best];
    for (int64_t k = 0; k < classes; k++) s += exp((double)r[k] - mx);
    total += log(s) + mx - r[y[i]];
    *correct += best == y[i];
  }
  return total;
}

static int eval_setup(ty_train *t, ty_exec **out_e, ty_loader **out_l, char *err, size_t err_len) {
  int rc = ty_exec_create(t->model, &(ty_exec_opts){.no_fusion = t->opts.no_fusion, .jit = t->jit}, out_e);
  for (size_t i = 0; rc == 0 && i < t->np; i++)
    rc = ty_exec_bind(*out_e, ty_graph_value_at(t->g, t->param_ids[i])->name, t->params[i], err, err_len);
  for (size_t i = 0; rc == 0 && i < t->n_bn; i++) /* inference uses the running statistics */
    for (int k = 0; rc == 0 && k < 2; k++)
      rc = ty_exec_bind(*out_e, ty_graph_value_at(t->g, t->bn[i].ids[k])->name, t->bn[i].stat[k], err, err_len);
  ty_loader_opts lo = {.batch_size = EVAL_BATCH, .world_size = 1};
  if (rc == 0) rc = ty_loader_create(t->test_ds, &lo, out_l, err, err_len);
  if (rc == 0) rc = ty_loader_start_epoch(*out_l, 0, 0);
  return rc;
}

static int eval_batch(ty_train *t, ty_exec *e, const ty_batch *b, uint64_t *correct, double *loss, char *err,
                      size_t err_len) {
  ty_shape xs = ty_shape_with_batch(&t->sample_shape, b->n), ys = ty_shape_make(1, (int64_t[]){b->n});
  ty_tensor *x = NULL, *y = NULL;
  const char *dname = ty_graph_value_at(t->g, t->data_id)->name, *lname = t->cfg->label_input;
  int rc = ty_tensor_create_from(TY_DTYPE_F32, &xs, b->x, (size_t)b->n * ty_dataset_sample_size(t->test_ds) * 4, &x);
  if (rc == 0) rc = ty_tensor_create_from(TY_DTYPE_I64, &ys, b->y, (size_t)b->n * 8, &y);
  if (rc == 0) rc = ty_exec_bind(e, dname, x, err, err_len);
  if (rc == 0 && t->cfg->loss_output) rc = ty_exec_bind(e, lname, y, err, err_len);
  if (rc == 0) rc = ty_exec_run(e, err, err_len);
  if (rc == 0) {
    const char *out = t->cfg->loss_output ? t->cfg->loss_output : t->cfg->logits_output;
    const ty_tensor *o = ty_exec_output(e, out);
    if (!o || o->dtype != TY_DTYPE_F32) rc = TY_EINTERNAL;
    else if (t->cfg->loss_output) *loss += ty_tensor_f32(o)[0] * (double)b->n;
    else if (o->shape.rank != 2 || o->shape.dims[0] != b->n) rc = TY_EINVAL;
    else *loss += batch_ce(o->data, b->y, b->n, o->shape.dims[1], correct);
    if (rc != 0)
      ty_errf(err, err_len, rc, "evaluate: output \"%s\" is not [N, classes] float", out);
  }
  ty_tensor_destroy(x);
  ty_tensor_destroy(y);
  return rc;
}

int ty_train_evaluate(ty_train *t, double *out_accuracy, double *out_loss, char *err, size_t err_len) {
  ty_exec *e = NULL;
  ty_loader *l = NULL;
  uint64_t correct = 0, seen = 0;
  double loss = 0;
  int rc = eval_setup(t, &e, &l, err, err_len);
  ty_batch b;
  while (rc == 0 && (rc = ty_loader_next(l, &b)) == 1) {
    rc = eval_batch(t, e, &b, &correct, &loss, err, err_len);
    seen += b.n;
  }
  ty_loader_destroy(l);
  ty_exec_destroy(e);
  if (rc != 0) return rc;
  *out_accuracy = t->cfg->loss_output || !seen ? -1 : (double)correct / (double)seen;
  *out_loss = seen ? loss / (double)seen : 0;
  return 0;
}
