/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: the rows of an evaluation batch (eval.c). Left to the
 * trainer, a model whose activations at 1000 rows outgrow a training
 * step's (or the 64 MiB floor) evaluates in smaller batches and says so;
 * config.eval_batch_size sets the rows; the numbers are the same either
 * way, also with a partial last batch; a size other than a fixed batch
 * dim is refused. A fixed batch dim evaluates its last, shorter batch
 * padded (the numbers of a dynamic one); with the model's own loss, a mean
 * over the padded batch, or a model whose rows mix (the padding would
 * change theirs), that batch is left out and the log says so, and
 * a test split shorter than the batch is refused. A test split whose
 * labels are all ignored reports a NaN loss and says why.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void setup(void) {
  synth_blob_files("", 256, 1);
  synth_blob_files("t", 1000, 2);
  synth_blob_files("s", 20, 4); /* shorter than a batch of 32 */
}

TestSuite(eval_batch, .init = setup, .fini = synth_cleanup);

/* 40,000 hidden units: 160 KB of activations per row, 160 MB at 1000
 * rows, where a training step of 32 rows holds a few MB. */
static synth_mlp wide_mlp(void) {
  return (synth_mlp){.in = 8, .hidden = 40000, .out = 4, .seed = 3};
}

typedef struct evaluated {
  double acc, loss;
  char *log; /* the whole log (malloc'd) */
} evaluated;

/* Trains 4 steps with eval_batch_size `rows` (0: the trainer's choice),
 * then evaluates. */
static evaluated train_and_evaluate(const ty_graph *g, uint32_t rows) {
  ty_train_config c;
  synth_config(&c, 4, true);
  c.eval_each_epoch = false;
  c.eval_batch_size = rows;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  evaluated e;
  cr_assert_eq(ty_train_steps(t, 4, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(t, &e.acc, &e.loss, err, sizeof err), 0, "%s", err);
  e.log = synth_log_text(log);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return e;
}

/* The same numbers up to float32's summation order: OpenBLAS picks its
 * GEMM kernel and blocking by the batch's row count (and by the CPU), so
 * a 40,000-wide hidden layer's logits differ in their last bits between
 * batch sizes, and a loss this small (about 0.01) carries that: 4e-6
 * relative on an EPYC with AVX-512, under 1e-6 on other machines. */
static void assert_same(const evaluated *a, const evaluated *b) {
  cr_assert_eq(a->acc, b->acc, "accuracy %.6f against %.6f", a->acc, b->acc);
  cr_assert(fabs(a->loss - b->loss) <= 2e-5 * fabs(b->loss), "loss %.9g against %.9g", a->loss,
            b->loss);
}

Test(eval_batch, follows_memory_and_gives_the_same_numbers, .timeout = 120) {
  synth_mlp o = wide_mlp();
  ty_graph *g = synth_mlp_build(&o);
  evaluated chosen = train_and_evaluate(g, 0), whole = train_and_evaluate(g, 1000),
            odd = train_and_evaluate(g, 7); /* 142 batches and one of 6 rows */
  const char *line = strstr(chosen.log, "evaluation: batches of ");
  cr_assert(line, "%s", chosen.log);
  unsigned rows = 0;
  cr_assert_eq(sscanf(line, "evaluation: batches of %u rows", &rows), 1, "%s", line);
  cr_assert(rows > 100 && rows < 1000, "%s", line);
  cr_assert(strstr(line, "within 64.0 MiB, the floor; config.eval_batch_size sets it"), "%s", line);
  cr_assert_null(strstr(whole.log, "evaluation: batches of"), "%s", whole.log);
  cr_assert_null(strstr(odd.log, "evaluation: batches of"), "%s", odd.log);
  cr_assert(chosen.acc > 0.5, "%.4f", chosen.acc);
  assert_same(&chosen, &whole);
  assert_same(&odd, &whole);
  free(chosen.log);
  free(whole.log);
  free(odd.log);
  ty_graph_destroy(g);
}

/* Shapes known only at run time (PyTorch's head split: a Reshape to a
 * shape computed from Shape(h)) are computed at each batch the rule
 * tries (ops/memplan's report runs the shape arithmetic there), also on
 * the inference copy whose weights were dropped: the same choice as the
 * plain model's, not the fallback to the training rows. */
Test(eval_batch, follows_memory_through_shape_arithmetic, .timeout = 120) {
  synth_mlp o = wide_mlp();
  ty_graph *plain = synth_mlp_build(&o);
  o.shape_arith = true;
  ty_graph *g = synth_mlp_build(&o);
  evaluated a = train_and_evaluate(plain, 0), b = train_and_evaluate(g, 0);
  const char *line = strstr(b.log, "evaluation: batches of ");
  cr_assert(line, "%s", b.log);
  cr_assert(strstr(line, "MiB of activations (within 64.0 MiB, the floor"), "%s", line);
  unsigned ra = 0, rb = 0;
  sscanf(strstr(a.log, "evaluation: batches of "), "evaluation: batches of %u", &ra);
  sscanf(line, "evaluation: batches of %u", &rb);
  cr_assert(rb > 100 && rb <= ra, "%u rows with shape arithmetic, %u without", rb, ra);
  assert_same(&a, &b);
  free(a.log);
  free(b.log);
  ty_graph_destroy(plain);
  ty_graph_destroy(g);
}

/* A small model keeps 1000 rows and says nothing. */
Test(eval_batch, small_models_keep_a_thousand_rows_silently, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  evaluated e = train_and_evaluate(g, 0);
  cr_assert_null(strstr(e.log, "evaluation: batches of"), "%s", e.log);
  free(e.log);
  ty_graph_destroy(g);
}

Test(eval_batch, refuses_a_size_other_than_a_fixed_batch_dim, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .batch = 32};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 4, true);
  c.eval_batch_size = 16;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *const[]){"config.eval_batch_size: 16, but model input \"x\" has "
                                      "its batch dim fixed at 32 (leave it 0, or export with a "
                                      "dynamic batch dim)",
                                      NULL});
  /* The controller's check of a job (no data) refuses it too. */
  ty_graph *pg = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_plan_graph(g, &c, false, &pg, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.eval_batch_size: 16"), "%s", err);
  c.eval_batch_size = 32; /* the fixed size itself is fine */
  ty_train_destroy(synth_trainer(g, &c, NULL));
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* 1000 test rows in batches of a fixed 32: the last 8 run padded to 32
 * and count alone, so the numbers are those of the dynamic batch dim. */
Test(eval_batch, a_fixed_batch_dim_evaluates_every_row, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *dynamic = synth_mlp_build(&o);
  o.batch = 32;
  ty_graph *fixed = synth_mlp_build(&o);
  evaluated a = train_and_evaluate(dynamic, 0), b = train_and_evaluate(fixed, 0);
  assert_same(&b, &a);
  free(a.log);
  free(b.log);
  ty_graph_destroy(dynamic);
  ty_graph_destroy(fixed);
}

/* A fixed batch whose rows mix (each row of h h^T h a mix of every row's,
 * as a BatchNormalization on the batch's own statistics mixes them): the
 * zero rows padding the last 8 would change their predictions, so they
 * are left out, and said to be. Before, they were evaluated padded, the
 * padding in their logits. */
Test(eval_batch, a_fixed_batch_whose_rows_mix_leaves_the_padded_batch_out, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .batch = 32, .batch_mix = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 4, true);
  c.eval_each_epoch = false;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  double acc, loss; /* untrained: trained, h h^T h outgrows the ReLUs, whose rows all die */
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert(acc >= 0 && acc <= 1 && isfinite(loss), "%g %g", acc, loss);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "evaluation: the last 8 of the test split's 1000 rows are not "
                         "evaluated: the model's batch dim is fixed at 32 and the rows padding "
                         "them to it change their predictions"),
            "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static void own_loss_config(ty_train_config *c) {
  synth_config(c, 4, true);
  synth_own_loss(c);
}

/* The model's own loss is a mean over its fixed batch, padding included:
 * the last 8 rows are left out, and said to be. */
Test(eval_batch, a_fixed_batch_with_its_own_loss_says_what_it_leaves_out, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .own_loss = true, .batch = 32};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  own_loss_config(&c);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  double acc, loss;
  cr_assert_eq(ty_train_steps(t, 4, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert(isfinite(loss) && loss > 0, "%g", loss);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "evaluation: the last 8 of the test split's 1000 rows are not evaluated: "
                         "the model's batch dim is fixed at 32 and its own loss \"loss\" is a "
                         "mean over every row of a batch"),
            "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(eval_batch, refuses_a_test_split_shorter_than_a_fixed_batch_with_its_own_loss, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .own_loss = true, .batch = 32};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  own_loss_config(&c);
  free(c.test_arrays[0].path);
  free(c.test_arrays[1].path);
  c.test_arrays[0].path = ty_strdup(synth_path("sx.npy"));
  c.test_arrays[1].path = ty_strdup(synth_path("sy.npy"));
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *const[]){"config.dataset.test: 20 rows, fewer than the model's fixed "
                                      "batch of 32, over every row of which its own loss \"loss\" "
                                      "is a mean: no test batch could be evaluated",
                                      NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* The model's own loss o over the test split (labels from `labels`, as
 * synth_path names them), untrained, in batches of `rows`; *out_log the
 * log (malloc'd) when not NULL. */
static double own_test_eval(const synth_mlp *o, const char *labels, uint32_t rows, char **out_log) {
  ty_graph *g = synth_mlp_build(o);
  ty_train_config c;
  own_loss_config(&c);
  c.eval_batch_size = rows;
  free(c.test_arrays[1].path);
  c.test_arrays[1].path = ty_strdup(synth_path(labels));
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  if (out_log) *out_log = synth_log_text(log);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return loss;
}

static double own_test_loss(const synth_mlp *o, const char *labels, uint32_t rows) {
  return own_test_eval(o, labels, rows, NULL);
}

/* One batch of the whole test split against batches of 7 (142 and one of
 * 6 rows): the same loss up to float32 rounding. */
static double same_in_batches(const synth_mlp *o, const char *labels) {
  double whole = own_test_loss(o, labels, 1000), odd = own_test_loss(o, labels, 7);
  cr_assert(isfinite(whole) && whole > 0, "%g", whole);
  cr_assert(fabs(odd - whole) <= 1e-5 * whole, "batches of 7 give %.9g, the whole split %.9g", odd,
            whole);
  return whole;
}

/* Whatever the model's own loss adds up (a plain mean, a class-weighted
 * mean, an ignore_index mean, a sum), the test loss is its value over the
 * whole test split, not a mean of the batches' values: the sum is the
 * split's total, which is the ignore_index mean times the 666 labels it
 * counts (every third of the 1000 is ignored). */
Test(eval_batch, own_loss_of_every_kind_is_over_the_whole_split, .timeout = 60) {
  synth_ignored_test_labels(1000, 2);
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .own_loss = true};
  same_in_batches(&o, "ty.npy");
  o.own_weights = true;
  same_in_batches(&o, "ty.npy");
  o.own_weights = false, o.own_ignore = true;
  double mean = same_in_batches(&o, "tiy.npy");
  o.own_sum = true;
  double sum = same_in_batches(&o, "tiy.npy");
  cr_assert(fabs(sum - 666 * mean) <= 1e-5 * sum, "sum %.9g, mean %.9g", sum, mean);
}

/* A loss that adds a mean over the batch to sums over it (synth_mlp's
 * summed_losses: three sums and a sum over Size) has no one denominator:
 * the batches' values are averaged over the test rows and the log says
 * so. Adding each batch's whole value, as a sum alone is added, would
 * count the mean once per batch: batches of 7 would then report more than
 * the whole split's sums, not less. */
Test(eval_batch, own_loss_of_a_sum_beside_a_mean_averages_the_batches, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .summed_losses = true};
  char *log = NULL;
  double whole = own_test_loss(&o, "ty.npy", 1000), odd = own_test_eval(&o, "ty.npy", 7, &log);
  cr_assert(isfinite(whole) && whole > 0 && isfinite(odd) && odd > 0, "%g %g", whole, odd);
  cr_assert_lt(odd, whole / 10, "batches of 7 give %.9g, the whole split %.9g", odd, whole);
  cr_assert(strstr(log, "evaluation: test_loss is the mean over the test rows of the batches' "
                        "values: the model's loss \"loss\" adds up terms that reduce the batch "
                        "in different ways"),
            "%s", log);
  free(log);
}

/* The final evaluation's log line of model o (the builtin loss or its
 * own) on a test split whose 1000 labels are all -100. */
static char *all_ignored_line(const synth_mlp *o) {
  int64_t *y = malloc(sizeof(int64_t) * 1000);
  for (size_t i = 0; i < 1000; i++)
    y[i] = -100;
  npy_write(synth_path("tall.npy"), "<i8", "(1000,)", y, sizeof(int64_t) * 1000);
  free(y);
  ty_graph *g = synth_mlp_build(o);
  ty_train_config c;
  synth_config(&c, 2, true);
  if (o->own_loss) synth_own_loss(&c);
  free(c.test_arrays[1].path);
  c.test_arrays[1].path = ty_strdup(synth_path("tall.npy"));
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  bool stopped;
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return text;
}

/* Every test label ignored: the builtin loss and a model's own
 * ignore_index loss both report test_loss nan (as PyTorch's mean over no
 * label is) and say why, not that no batch was evaluated. */
Test(eval_batch, a_test_split_of_ignored_labels_says_so, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  char *log = all_ignored_line(&o);
  cr_assert(strstr(log, "final test_loss nan: all 1000 test labels equal ignore_index -100"), "%s",
            log);
  free(log);
  o.own_loss = o.own_ignore = true;
  log = all_ignored_line(&o);
  cr_assert(strstr(log, "final test_loss nan: the weights of the test labels the model's loss "
                        "\"loss\" counts add up to 0"),
            "%s", log);
  free(log);
}
