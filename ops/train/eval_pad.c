/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether the rows padding a fixed-batch model's last, shorter test batch
 * change its real rows' predictions (eval.c pads that batch to the fixed
 * batch dim and counts only its real rows). A model that reduces over the
 * batch before its prediction mixes the padding into every row:
 * BatchNormalization fed the batch's own mean and variance (PyTorch's
 * export of BatchNorm1d(track_running_stats=False)), x - x.mean(0). Its
 * shapes cannot tell: a fixed batch dim is a constant like any other,
 * where the planner's batch-reduction analysis (ops/plan/micro_loss.c)
 * follows the symbolic one. So the padded batch runs a second time with
 * copies of its first row as the padding, and its real rows' predictions
 * are compared bit for bit with the zero-padded run's: inference is
 * deterministic (eval.c), and a row of a model that keeps its rows apart
 * does not depend on the others' values. When they differ the batch is
 * not evaluated, and rank 0 says once how many rows that leaves out. A
 * model that draws random numbers in inference (Dropout does not) draws
 * others in the second run: it is not compared, and evaluates padded.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* Feed k's padding rows in x (those after b's) made copies of b's first. */
static void pad_with_first_row(const ty_train *t, size_t k, const ty_batch *b, ty_tensor *x) {
  ty_shape one = ty__train_feed_shape(t, k, 1);
  size_t row = (size_t)ty_shape_numel(&one) * ty_dtype_size(t->feeds[k].dtype);
  for (size_t off = row * b->n; off + row <= x->nbytes; off += row)
    memcpy((char *)x->data + off, x->data, row);
}

/* Whether g draws random numbers in inference (Dropout is the identity). */
static bool draws_random(const ty_graph *g) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++)
    if (ty_op_is_random(ty_graph_node_at(g, i)->op)) return true;
  return false;
}

static void say_left_out(ty_train *t, const ty_batch *b) {
  if (t->eval_pad_said) return;
  t->eval_pad_said = true;
  fprintf(ty__train_log(t),
          "evaluation: the last %u of the test split's %llu rows are not evaluated: the "
          "model's batch dim is fixed at %u and the rows padding them to it change their "
          "predictions (the model reduces over the batch before \"%s\": BatchNormalization "
          "with the batch's own statistics, x - x.mean(0))\n",
          b->n, (unsigned long long)ty_dataset_count(t->test_ds), t->fixed_batch,
          ty__train_prediction(t));
}

int ty__train_eval_pad_mixes(ty_train *t, ty_exec *e, const ty_batch *b, ty_tensor *const *in,
                             bool *out_mixes, char *err, size_t err_len) {
  *out_mixes = false;
  if (draws_random(t->eval_g)) return 0;
  const ty_tensor *o = ty_exec_output(e, ty__train_prediction(t));
  if (!o || o->dtype != TY_DTYPE_F32 || o->shape.rank < 1 || o->shape.dims[0] != t->fixed_batch)
    return 0; /* the tally refuses or trims it */
  size_t n = (size_t)(ty_tensor_numel(o) / t->fixed_batch) * b->n;
  float *zero_padded = malloc(n * sizeof *zero_padded + 1);
  if (!zero_padded) return TY_ENOMEM;
  memcpy(zero_padded, o->data, n * sizeof *zero_padded);
  for (size_t k = 0; k < t->n_feeds; k++)
    if (in[k]) pad_with_first_row(t, k, b, in[k]);
  int rc = ty_exec_run(e, err, err_len);
  o = rc == 0 ? ty_exec_output(e, ty__train_prediction(t)) : NULL;
  *out_mixes = o && memcmp(zero_padded, o->data, n * sizeof *zero_padded) != 0;
  free(zero_padded);
  if (*out_mixes && t->opts.rank == 0) say_left_out(t, b);
  return rc;
}
