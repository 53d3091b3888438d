/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.drop_last: what an epoch does with the samples past its last
 * whole global batch. A model whose weight i counts how often row i was
 * trained (loss = mean(x @ w) over one-hot rows x = e_i, SGD at lr =
 * batch size: each step lowers w[i] by 1 per occurrence of row i) shows
 * it: by default every row trains every epoch (the last batch completed
 * from the epoch's start), with drop_last ON the last rows of the order
 * never train when shuffle is off; one process and 2 data-parallel ranks
 * train the same weights, the log says what happens at start, and a
 * checkpoint of a padded epoch resumes with drop_last ON.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(drop_last, .fini = synth_cleanup);

enum { ROWS = 23, BATCH = 4, EPOCHS = 3 };

/* x [N, ROWS] -> MatMul(w [ROWS], zeros) -> ReduceMean -> "loss". */
static ty_graph *count_model(void) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 15);
  ty_shape xs = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, ROWS}),
           ws = ty_shape_make(1, (int64_t[]){ROWS});
  int x, w, xw, loss, idx;
  ty_tensor *wt;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &ws, &wt), 0);
  memset(wt->data, 0, wt->nbytes);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  ty_graph_mark_input(g, x);
  cr_assert_eq(ty_graph_add_value(g, "w", TY_DTYPE_F32, &ws, &w), 0);
  cr_assert_eq(ty_graph_set_initializer(g, w, wt), 0);
  cr_assert_eq(ty_graph_add_value(g, "xw", TY_DTYPE_INVALID, NULL, &xw), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MATMUL, "xw", (int[]){x, w}, 2, &xw, 1, &idx), 0);
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, &loss), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_REDUCE_MEAN, "loss", &xw, 1, &loss, 1, &idx), 0);
  ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0);
  ty_graph_mark_output(g, loss);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* DIR/onehot.npy: row i = e_i. */
static void onehot_file(void) {
  static float x[ROWS * ROWS];
  for (int i = 0; i < ROWS; i++)
    x[i * ROWS + i] = 1;
  char shape[32];
  snprintf(shape, sizeof shape, "(%d, %d)", ROWS, ROWS);
  npy_write(synth_path("onehot.npy"), "<f4", shape, x, sizeof x);
}

static void count_config(ty_train_config *c, bool drop_last, bool shuffle) {
  memset(c, 0, sizeof *c);
  c->loss_output = ty_strdup("loss");
  c->label_input = ty_strdup("labels");
  ty_optim_opts_default(TY_OPTIM_SGD, &c->optim);
  c->schedule = (ty_lr_schedule){.kind = TY_LR_CONSTANT, .base_lr = BATCH};
  c->batch_size = BATCH;
  c->epochs = EPOCHS;
  c->shuffle = shuffle;
  c->drop_last = drop_last;
  c->seed = 5;
  c->log_interval = 1000000;
  c->fusion = true;
  synth_add_array(c, false, synth_path("onehot.npy"), "x");
}

/* How often each row trained: -w. */
static void counts(const ty_train *t, double *out) {
  cr_assert_eq(ty_train_n_params(t), 1);
  const float *w = ty_tensor_f32(ty_train_param(t, 0));
  for (int i = 0; i < ROWS; i++)
    out[i] = -w[i];
}

/* One process's counts after the whole run, and its log. */
static char *run_single(bool drop_last, bool shuffle, double *out) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  count_config(&c, drop_last, shuffle);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, UINT64_MAX, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_step(t), drop_last ? 15u : 18u);
  counts(t, out);
  char *text = synth_log_text(log);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return text;
}

Test(drop_last, by_default_every_row_trains_every_epoch, .timeout = 60) {
  double n[ROWS];
  char *text = run_single(false, false, n);
  /* 6 batches of 4 = 24 rows: row 0 completes the last batch. */
  cr_assert_float_eq(n[0], 2 * EPOCHS, 1e-6, "row 0 trained %g times", n[0]);
  for (int i = 1; i < ROWS; i++)
    cr_assert_float_eq(n[i], EPOCHS, 1e-6, "row %d trained %g times", i, n[i]);
  cr_assert(strstr(text, "data: 23 samples, batches of 4: each epoch trains 6 batches, the last "
                         "completed with 1 sample from the epoch's start (config.drop_last: ON "
                         "drops it)"),
            "%s", text);
  free(text);
}

Test(drop_last, shuffled_every_row_trains_every_epoch, .timeout = 60) {
  double n[ROWS], sum = 0;
  free(run_single(false, true, n));
  for (int i = 0; i < ROWS; i++) {
    cr_assert_geq(n[i], EPOCHS - 1e-6, "row %d trained %g times", i, n[i]);
    sum += n[i];
  }
  cr_assert_float_eq(sum, 6 * BATCH * EPOCHS, 1e-4);
}

Test(drop_last, on_drops_the_last_rows_and_says_so, .timeout = 60) {
  double n[ROWS];
  char *text = run_single(true, false, n);
  for (int i = 0; i < ROWS; i++)
    cr_assert_float_eq(n[i], i < 20 ? EPOCHS : 0, 1e-6, "row %d trained %g times", i, n[i]);
  cr_assert(strstr(text, "data: 23 samples, batches of 4: each epoch trains 5 batches and drops "
                         "the last 3 samples of each epoch's order (with shuffle off, the same "
                         "ones every epoch)"),
            "%s", text);
  free(text);
}

/* A batch larger than the training set is refused either way (padding
 * would repeat samples within the batch). */
Test(drop_last, a_batch_above_the_samples_is_refused, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  for (int on = 0; on < 2; on++) {
    ty_train_config c;
    count_config(&c, on, false);
    c.batch_size = 24;
    ty_train *t = NULL;
    char err[TY_ERR_LEN] = "";
    FILE *log = tmpfile();
    cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
                 TY_EINVAL);
    cr_assert_str_eq(err, "config.batch_size: 24 is larger than the 23 training samples");
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
}

/* A checkpoint at a padded epoch's last batch (5 of 6) resumed with
 * drop_last ON, whose epochs have 5: that epoch is over, and the run
 * trains epochs 2 and 3 of 5 batches, rows 20-22 never. */
Test(drop_last, resumes_a_padded_epochs_last_batch_with_on, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  count_config(&c, false, false);
  c.checkpoint_path = ty_strdup(synth_path("count.onnx"));
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 5, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  c.drop_last = true;
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_steps(t, UINT64_MAX, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_step(t), 15u);
  double n[ROWS];
  counts(t, n);
  for (int i = 0; i < ROWS; i++)
    cr_assert_float_eq(n[i], i < 20 ? EPOCHS : 0, 1e-6, "row %d trained %g times", i, n[i]);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A run of `steps` steps with drop_last `first`, checkpointed at DIR/name;
 * c is left with the other drop_last, for the run that resumes it. */
static void run_then_toggle(const ty_graph *g, ty_train_config *c, const char *name, bool first,
                            uint64_t steps, FILE *log) {
  count_config(c, first, false);
  c->checkpoint_path = ty_strdup(synth_path(name));
  ty_train *t = synth_trainer(g, c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, steps, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  c->drop_last = !first;
}

/* Resumes c's checkpoint, trains to the end: the counts and the step. */
static uint64_t resume_to_end(const ty_graph *g, const ty_train_config *c, FILE *log, double *n) {
  ty_train *t = synth_trainer(g, c, &(ty_train_opts){.log = log});
  uint64_t total = ty_train_total_steps(t);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, UINT64_MAX, err, sizeof err), 0, "%s", err);
  uint64_t step = ty_train_step(t);
  cr_assert_eq(step, total);
  counts(t, n);
  ty_train_destroy(t);
  return step;
}

/* Epoch 1 padded (6 batches, row 0 twice), resumed with drop_last ON:
 * epochs 2 and 3 of 5 batches each, 16 steps; not 3 x 5 = 15, which
 * ended epoch 3 a batch early. */
Test(drop_last, resumed_with_on_trains_the_epochs_left_whole, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  FILE *log = tmpfile();
  run_then_toggle(g, &c, "on.onnx", false, 6, log);
  double n[ROWS];
  cr_assert_eq(resume_to_end(g, &c, log, n), 16u);
  for (int i = 0; i < ROWS; i++)
    cr_assert_float_eq(n[i], i == 0 ? 4 : i < 20 ? 3 : 1, 1e-6, "row %d trained %g times", i, n[i]);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Epoch 1 of 5 batches (drop_last ON), resumed with it OFF: epochs 2
 * and 3 padded, 6 batches each, 17 steps; not 3 x 6 = 18, whose last
 * step was the first batch of a fourth epoch. */
Test(drop_last, resumed_with_off_stops_at_the_last_epochs_end, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  FILE *log = tmpfile();
  run_then_toggle(g, &c, "off.onnx", true, 5, log);
  double n[ROWS];
  cr_assert_eq(resume_to_end(g, &c, log, n), 17u);
  for (int i = 0; i < ROWS; i++)
    cr_assert_float_eq(n[i], i == 0 ? 5 : i < 20 ? 3 : 2, 1e-6, "row %d trained %g times", i, n[i]);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A checkpoint past the new epochs' end (17 steps with drop_last OFF, 15
 * with it ON) trains nothing and ends where it is: at step 17, not at
 * 3 x 5 = 15, below the checkpoint's step. */
Test(drop_last, resumed_past_the_end_ends_at_the_checkpoints_step, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  FILE *log = tmpfile();
  run_then_toggle(g, &c, "past.onnx", false, 17, log);
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_total_steps(t), 17u);
  char err[TY_ERR_LEN] = "";
  bool stopped;
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_step(t), 17u);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "checkpoint is at step 17 and this run ends at step 17 (config.epochs)"),
            "in:\n%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A cosine schedule of the whole run spans the resumed run's length: its
 * last step (16 of 16, as above) has the learning rate of step 15 of 16. */
Test(drop_last, resumed_cosine_spans_the_new_length, .timeout = 60) {
  onehot_file();
  ty_graph *g = count_model();
  ty_train_config c;
  FILE *log = tmpfile();
  run_then_toggle(g, &c, "cos.onnx", false, 6, log);
  c.schedule = (ty_lr_schedule){.kind = TY_LR_COSINE, .base_lr = BATCH};
  c.log_interval = 1;
  double n[ROWS];
  cr_assert_eq(resume_to_end(g, &c, log, n), 16u);
  char *text = synth_log_text(log), *line = strstr(text, "step 16/16 loss ");
  cr_assert(line, "no step 16/16 in:\n%s", text);
  char want[64];
  snprintf(want, sizeof want, " lr %g ", (double)(float)(BATCH * (1 + cos(M_PI * 15 / 16)) / 2));
  cr_assert(strstr(line, want), "want%s(cosine over 16 steps) in:\n%s", want, line);
  free(text);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* ---- 2 data-parallel ranks as threads, their all-reduce a sum ------------------ */

typedef struct dp {
  pthread_barrier_t *bar;
  float **bufs;
  uint32_t rank;
  const ty_graph *g;
  double counts[ROWS];
  int rc;
  char err[TY_ERR_LEN];
} dp;

static int pair_sum(float *buf, size_t n, uint64_t seq, void *user) {
  (void)seq;
  dp *d = user;
  float *sum = malloc(n * sizeof *sum + 1);
  d->bufs[d->rank] = buf;
  pthread_barrier_wait(d->bar);
  for (size_t i = 0; sum && i < n; i++)
    sum[i] = d->bufs[0][i] + d->bufs[1][i];
  pthread_barrier_wait(d->bar);
  if (sum) memcpy(buf, sum, n * sizeof *sum);
  free(sum);
  return sum ? 0 : TY_ENOMEM;
}

static void *dp_main(void *arg) {
  dp *d = arg;
  ty_train_config c;
  count_config(&c, false, true);
  FILE *log = tmpfile();
  ty_train_opts o = {
      .rank = d->rank, .world_size = 2, .allreduce = pair_sum, .allreduce_user = d, .log = log};
  ty_train *t = NULL;
  d->rc = ty_train_create(d->g, &c, &o, &t, d->err, sizeof d->err);
  if (d->rc == 0) d->rc = ty_train_steps(t, UINT64_MAX, d->err, sizeof d->err);
  if (d->rc == 0) counts(t, d->counts);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

Test(drop_last, two_ranks_pad_as_one_process, .timeout = 60) {
  double one[ROWS];
  free(run_single(false, true, one));
  ty_graph *g = count_model();
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, 2);
  float *bufs[2];
  dp r[2];
  pthread_t th[2];
  for (uint32_t k = 0; k < 2; k++) {
    r[k] = (dp){.bar = &bar, .bufs = bufs, .rank = k, .g = g};
    cr_assert_eq(pthread_create(&th[k], NULL, dp_main, &r[k]), 0);
  }
  for (int k = 0; k < 2; k++)
    pthread_join(th[k], NULL);
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(r[k].rc, 0, "rank %d: %s", k, r[k].err);
    for (int i = 0; i < ROWS; i++)
      cr_assert_float_eq(r[k].counts[i], one[i], 1e-6, "rank %d, row %d: %g, one process %g", k, i,
                         r[k].counts[i], one[i]);
  }
  pthread_barrier_destroy(&bar);
  ty_graph_destroy(g);
}
