/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train semantics: which initializers train (the default rule, the
 * config's patterns, the log line), evaluation in inference mode for models
 * exported in training mode (Dropout, BatchNormalization), the warning for
 * a loss after a Softmax, and the cosine schedule's length under a step
 * limit. Checkpoint files, the run's length across resumes and the
 * cadences: test_checkpoint_files.c (the same suite).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void setup(void) {
  synth_blob_files("", 128, 1);
  synth_blob_files("t", 200, 2);
}

TestSuite(semantics, .init = setup, .fini = synth_cleanup);

static const ty_tensor *init_of(const ty_graph *g, const char *name) {
  int id = ty_graph_find_value(g, name);
  cr_assert_neq(id, TY_NO_VALUE, "%s", name);
  return ty_graph_value_at(g, id)->init;
}

/* The initializer name of the checkpoint t writes, compared with g's. */
static bool unchanged(ty_train *t, const ty_graph *g, const char *name) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_graph *ck;
  cr_assert_eq(ty_graph_load_file(synth_path("ck.onnx"), err, sizeof err, &ck), 0, "%s", err);
  const ty_tensor *a = init_of(ck, name), *b = init_of(g, name);
  bool same = a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
  ty_graph_destroy(ck);
  return same;
}

/* ---- trainable parameters ------------------------------------------------------- */
Test(semantics, scalars_and_unreachable_initializers_stay_frozen, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .scale = true, .unused = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("ck.onnx"));
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_n_params(t), 4);
  cr_assert_eq(ty_train_n_param_values(t), 8 * 16 + 16 + 16 * 4 + 4);
  cr_assert_eq(ty_train_n_frozen(t), 2);
  cr_assert_str_eq(ty_train_frozen_name(t, 0), "scale");
  cr_assert_str_eq(ty_train_frozen_name(t, 1), "unused");
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "parameters: 4 tensors, 212 values trained; 2 float initializers frozen: "
                         "scale (scalar constant), unused (no gradient)\n"),
            "%s", text);
  free(text);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 10, err, sizeof err), 0, "%s", err);
  cr_assert(unchanged(t, g, "scale"));
  cr_assert(unchanged(t, g, "unused"));
  cr_assert(!unchanged(t, g, "fc1.weight"));
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* An initializer holding -inf (an additive attention mask, a causal
 * buffer as nn.Transformer's generate_square_subsequent_mask makes it) is
 * no parameter: it stays frozen by default, the log says why, and SGD with
 * weight decay trains the rest to finite losses (training it made -inf
 * minus lr x decay x -inf, NaN, at the first step). */
Test(semantics, an_initializer_holding_minus_infinity_stays_frozen, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .neg_inf_mask = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.optim.weight_decay = 0.01f;
  c.checkpoint_path = ty_strdup(synth_path("ck.onnx"));
  c.log_interval = 1;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_n_params(t), 4);
  cr_assert_eq(ty_train_n_frozen(t), 1);
  cr_assert_str_eq(ty_train_frozen_name(t, 0), "mask");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 10, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  cr_assert(
      strstr(text, "1 float initializer frozen: mask (holds -inf: a mask, not a parameter)\n"),
      "%s", text);
  cr_assert(!strstr(text, "nan"), "%s", text);
  free(text);
  cr_assert(unchanged(t, g, "mask"));
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static char **patterns(const char *a, const char *b) {
  char **p = calloc(2, sizeof *p);
  p[0] = ty_strdup(a);
  p[1] = b ? ty_strdup(b) : NULL;
  return p;
}

Test(semantics, config_patterns_choose_the_parameters, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .scale = true};
  ty_graph *g = synth_mlp_build(&o);
  char err[TY_ERR_LEN] = "";
  for (int k = 0; k < 3; k++) {
    ty_train_config c;
    synth_config(&c, 5, false);
    c.checkpoint_path = ty_strdup(synth_path("ck.onnx"));
    if (k == 0) c.trainable = patterns("fc2.*", NULL), c.n_trainable = 1;
    if (k == 1) c.frozen = patterns("fc1.*", "scale"), c.n_frozen = 2;
    if (k == 2) c.trainable = patterns("fc[12].weight", "scale"), c.n_trainable = 2;
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
    cr_assert_eq(ty_train_n_params(t), k == 2 ? 3 : 2, "case %d: %zu parameters", k,
                 ty_train_n_params(t));
    cr_assert_eq(ty_train_steps(t, 5, err, sizeof err), 0, "%s", err);
    cr_assert_eq(unchanged(t, g, "fc1.weight"), k != 2, "case %d", k);
    cr_assert(!unchanged(t, g, "fc2.weight"), "case %d", k);
    cr_assert_eq(unchanged(t, g, "fc2.bias"), k == 2, "case %d", k);
    cr_assert_eq(unchanged(t, g, "scale"), k != 2, "case %d: an explicit pattern trains a scalar",
                 k);
    if (k == 0) {
      char *text = synth_log_text(log);
      cr_assert(strstr(text, "fc1.weight (not in config.trainable)"), "%s", text);
      free(text);
    }
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
    /* The next case must not resume from it: every step's checkpoint and
     * the links to the newest. */
    glob_t gl;
    if (glob(synth_path("ck.*"), 0, NULL, &gl) == 0)
      for (size_t i = 0; i < gl.gl_pathc; i++)
        remove(gl.gl_pathv[i]);
    globfree(&gl);
  }
  ty_graph_destroy(g);
}

/* synth_config checkpointing to name, with `frozen` (NULL: none) frozen. */
static void frozen_config(ty_train_config *c, const char *name, const char *frozen) {
  synth_config(c, 5, false);
  c->checkpoint_path = ty_strdup(synth_path(name));
  if (frozen) c->frozen = patterns(frozen, NULL), c->n_frozen = 1;
}

/* Two steps of g checkpointed at name, with `frozen` frozen. */
static void train_frozen(const ty_graph *g, const char *name, const char *frozen) {
  ty_train_config c;
  frozen_config(&c, name, frozen);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

/* ty_train_create's code resuming name with `frozen` frozen; the error in err. */
static int resume_frozen(const ty_graph *g, const char *name, const char *frozen, char *err,
                         size_t err_len) {
  ty_train_config c;
  frozen_config(&c, name, frozen);
  FILE *log = tmpfile();
  ty_train *t = NULL;
  int rc = ty_train_create(g, &c, &(ty_train_opts){.log = log, .resume = true}, &t, err, err_len);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return rc;
}

/* Checkpoints resumed with other config.frozen patterns on the same model
 * (its layers of one shape): refused naming config.frozen / trainable,
 * not "the model has" a count it does not have, nor only "another model". */
Test(semantics, a_resume_with_other_patterns_names_them, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 8, .out = 8, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  char err[TY_ERR_LEN] = "";
  train_frozen(g, "all.onnx", NULL);
  cr_assert_eq(resume_frozen(g, "all.onnx", "fc1.*", err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert(strstr(err, "optimizer state: the checkpoint trained 4 parameters, this run trains 2 "
                        "(config.frozen / config.trainable)"),
            "%s", err);
  train_frozen(g, "fc2.onnx", "fc1.*");
  cr_assert_eq(resume_frozen(g, "fc2.onnx", "fc2.*", err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert(strstr(err, "checkpoint was trained from another model (graph, frozen initializers, "
                        "or config.frozen / trainable differ)"),
            "%s", err);
  cr_assert_eq(resume_frozen(g, "fc2.onnx", "fc1.*", err, sizeof err), 0, "%s", err);
  ty_graph_destroy(g);
}

Test(semantics, patterns_that_match_nothing_are_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  const struct {
    int which;
    const char *pat, *want;
  } cases[] = {
      {0, "fc3.*", "config.trainable[0]: \"fc3.*\" matches no float initializer of the model"},
      {1, "emb*", "config.frozen[0]: \"emb*\" matches no float initializer of the model"},
      {1, "*",
       "model: the loss depends on no trainable float initializer (see config.trainable and "
       "config.frozen)"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_train_config c;
    synth_config(&c, 5, false);
    if (cases[i].which == 0)
      c.trainable = patterns(cases[i].pat, NULL), c.n_trainable = 1;
    else
      c.frozen = patterns(cases[i].pat, NULL), c.n_frozen = 1;
    ty_train *t = NULL;
    char err[TY_ERR_LEN] = "";
    FILE *log = tmpfile();
    cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
                 TY_EINVAL);
    cr_assert(strstr(err, cases[i].want), "\"%s\" lacks \"%s\"", err, cases[i].want);
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
}

/* ---- inference mode ----------------------------------------------------------- */
static void evaluate(ty_train *t, double *acc, double *loss) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_evaluate(t, acc, loss, err, sizeof err), 0, "%s", err);
}

/* Evaluating the model with the training-mode op equals evaluating it
 * without (bit for bit), before and after training, every time. */
static void check_inference(synth_mlp with, synth_mlp without) {
  ty_graph *g = synth_mlp_build(&with), *plain = synth_mlp_build(&without);
  ty_train_config c;
  synth_config(&c, 6, true);
  FILE *log = tmpfile();
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  ty_train *b = synth_trainer(plain, &c, &(ty_train_opts){.log = log});
  double acc1, loss1, acc2, loss2;
  evaluate(a, &acc1, &loss1);
  evaluate(b, &acc2, &loss2);
  cr_assert(acc1 == acc2 && loss1 == loss2, "untrained: %.6f/%.6f vs inference %.6f/%.6f", acc1,
            loss1, acc2, loss2);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 6, err, sizeof err), 0, "%s", err);
  evaluate(a, &acc1, &loss1);
  evaluate(a, &acc2, &loss2);
  cr_assert(acc1 == acc2 && loss1 == loss2, "two evaluations differ: %.6f vs %.6f", loss1, loss2);
  ty_graph *trained = synth_with_weights(plain, a);
  ty_train *ref = synth_trainer(trained, &c, &(ty_train_opts){.log = log});
  evaluate(ref, &acc2, &loss2);
  cr_assert(acc1 == acc2 && loss1 == loss2, "trained: %.6f/%.6f vs inference %.6f/%.6f", acc1,
            loss1, acc2, loss2);
  ty_train_destroy(ref);
  ty_train_destroy(a);
  ty_train_destroy(b);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(trained);
  ty_graph_destroy(g);
  ty_graph_destroy(plain);
}

Test(semantics, eval_turns_dropout_off_even_in_training_mode_exports, .timeout = 60) {
  synth_mlp with = {.in = 8, .hidden = 32, .out = 4, .seed = 3, .dropout = true}, without = with;
  without.dropout = false;
  check_inference(with, without);
}

Test(semantics, eval_uses_running_statistics_of_training_mode_batchnorm, .timeout = 60) {
  synth_mlp with = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .bn = true, .bn_train_mode = true},
            without = with;
  without.bn_train_mode = false;
  check_inference(with, without);
}

/* A stand-in for the other data-parallel rank: the sums stay this rank's. */
static int alone_hook(float *buf, size_t n, uint64_t seq, void *user) {
  (void)buf, (void)n, (void)seq, (void)user;
  return 0;
}

/* The first step's code and message of the BatchNormalization MLP in
 * batches of batch rows over world data-parallel ranks (this is rank
 * world - 1), and whether that step left the weights as they were. */
static int bn_first_step(uint32_t batch, uint32_t world, char *err, bool *out_untouched) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .bn = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 4, false);
  c.batch_size = batch;
  FILE *log = tmpfile();
  ty_train_opts opts = {.log = log, .rank = world - 1, .world_size = world};
  if (world > 1) opts.allreduce = alone_hook;
  ty_train *t = synth_trainer(g, &c, &opts);
  const ty_tensor *w = ty_train_param(t, 0);
  float *before = ty_xmalloc(w->nbytes);
  memcpy(before, w->data, w->nbytes);
  int rc = ty_train_steps(t, 1, err, TY_ERR_LEN);
  *out_untouched = memcmp(before, ty_train_param(t, 0)->data, w->nbytes) == 0;
  free(before);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return rc;
}

/* BatchNormalization normalising one value per channel (a batch of one
 * row after a Gemm) outputs its bias and trains nothing below it:
 * refused at the first step, before any weight moves, naming the node and
 * the batch, on one process and on a data-parallel rank that gets one
 * row, as PyTorch refuses it. Two rows train. */
Test(semantics, batch_norm_over_one_value_per_channel_is_refused, .timeout = 60) {
  char err[TY_ERR_LEN] = "";
  bool untouched;
  cr_assert_eq(bn_first_step(2, 1, err, &untouched), 0, "%s", err);
  cr_assert(!untouched);
  const struct {
    uint32_t batch, world;
    const char *rank;
  } cases[] = {{1, 1, NULL}, {2, 2, " on data-parallel rank 1 of 2"}};
  for (size_t k = 0; k < TY_ARRAY_LEN(cases); k++) {
    err[0] = '\0';
    cr_assert_eq(bn_first_step(cases[k].batch, cases[k].world, err, &untouched), TY_EINVAL,
                 "case %zu: %s", k, err);
    cr_assert(untouched, "case %zu: a weight moved", k);
    cr_assert(strstr(err, "BatchNormalization node \"bn\" (training mode): its input "
                          "\"fc1.out\" is [1,16]") &&
                  strstr(err, "one value per channel (batch 1 x 1 spatial)") &&
                  strstr(err, "Expected more than 1 value per channel when training") &&
                  strstr(err, "config.batch_size"),
              "case %zu: %s", k, err);
    if (cases[k].rank)
      cr_assert(strstr(err, cases[k].rank), "case %zu: %s", k, err);
    else
      cr_assert_null(strstr(err, " on data-parallel rank"), "case %zu: %s", k, err);
  }
}

/* ---- the Softmax warning ------------------------------------------------------- */
Test(semantics, loss_after_softmax_is_warned_once, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .softmax = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, true);
  c.epochs = 3;
  c.eval_each_epoch = true;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  bool stopped;
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  cr_assert_eq(synth_count(text, "warning:"), 1, "%s", text);
  cr_assert(strstr(text, "warning: the loss is applied after a Softmax: "
                         "config.softmax_cross_entropy.logits_output "
                         "\"logits\" comes from node \"softmax\" (Softmax)"),
            "%s", text);
  cr_assert(strstr(text, "name the Softmax's input \"fc2.out\" as logits_output"), "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_graph_destroy(g);
  o.softmax = false; /* and no warning without one */
  g = synth_mlp_build(&o);
  log = tmpfile();
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  text = synth_log_text(log);
  cr_assert_eq(synth_count(text, "warning:"), 0, "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A model computing its own loss: SoftmaxCrossEntropyLoss over a Softmax. */
Test(semantics, model_loss_after_softmax_is_warned, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .softmax = true, .own_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 3, true);
  synth_own_loss(&c);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 3, err, sizeof err), 0, "%s", err);
  double acc, loss;
  evaluate(t, &acc, &loss);
  cr_assert_eq(acc, -1);
  cr_assert(loss > 0 && isfinite(loss));
  char *text = synth_log_text(log);
  cr_assert(
      strstr(
          text,
          "warning: the loss is applied after a Softmax: node \"loss\" (SoftmaxCrossEntropyLoss) "
          "reads the output of node \"softmax\" (Softmax)"),
      "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* ---- initializers an eval-mode export merged ------------------------------------ */
static char *trainer_log(const synth_mlp *o) {
  ty_graph *g = synth_mlp_build(o);
  ty_train_config c;
  synth_config(&c, 1, false);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char *text = synth_log_text(log);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return text;
}

Test(semantics, a_constant_parameter_two_layers_share_is_warned, .timeout = 60) {
  for (int merged = 1; merged <= 2; merged++) {
    synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .merged = merged};
    char *text = trainer_log(&o);
    cr_assert_eq(synth_count(text, "warning:"), 1, "%s", text);
    cr_assert(strstr(text, "warning: parameter \"gain\" (every value 1) is read by 2 nodes, "
                           "among them \"gain1\" (Mul) and \"gain2\" (Mul), so they train as one "
                           "tensor; if these are separate layers, PyTorch's eval-mode export"),
              "%s", text);
    cr_assert(strstr(text, "export with training=torch.onnx.TrainingMode.TRAINING"), "%s", text);
    free(text);
  }
  /* Random weights read once each (and a BatchNorm's all-ones scale) are not. */
  synth_mlp plain = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .bn = true};
  char *text = trainer_log(&plain);
  cr_assert_eq(synth_count(text, "warning:"), 0, "%s", text);
  free(text);
}

/* A tied weight that PyTorch's constant folding copied transposed trains
 * apart from the original, unlike PyTorch: the copy is named, and so is the
 * loss of PyTorch's names. A tied weight read as it is warns of nothing. */
Test(semantics, a_tied_weight_constant_folding_copied_is_warned, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .deep = 2, .tied = true};
  char *text = trainer_log(&o);
  cr_assert_eq(synth_count(text, "warning:"), 0, "%s", text);
  free(text);
  o.tied_folded = true;
  text = trainer_log(&o);
  cr_assert_eq(synth_count(text, "warning:"), 2, "%s", text);
  cr_assert(strstr(text, "warning: parameter \"onnx::MatMul_99\" holds the transpose of "
                         "parameter \"fc3.weight\": PyTorch's constant folding "
                         "(do_constant_folding=True, its default) copied a tied weight's "
                         "Transpose into a new initializer, so the two uses train apart"),
            "%s", text);
  cr_assert(strstr(text, "warning: 1 trained parameters are named like \"onnx::MatMul_99\": "),
            "%s", text);
  cr_assert(strstr(text, "export with do_constant_folding=False"), "%s", text);
  free(text);
}

/* ---- the schedule's length ----------------------------------------------------- */
/* The lr of each logged step. */
static int lrs(FILE *log, double *out, int max) {
  char *text = synth_log_text(log);
  int n = 0;
  for (const char *p = text; n < max && (p = strstr(p, " lr ")) != NULL; p += 4)
    out[n++] = strtod(p + 4, NULL);
  free(text);
  return n;
}

Test(semantics, cosine_length_ignores_a_step_limit, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, false);
  c.epochs = 2; /* 128 samples, batch 32: 4 steps an epoch, 8 in all */
  c.schedule = (ty_lr_schedule){.kind = TY_LR_COSINE, .base_lr = 0.1};
  c.log_interval = 1;
  double a[16], b[16];
  int na, nb;
  char err[TY_ERR_LEN] = "";
  for (int k = 0; k < 2; k++) {
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .max_steps = k ? 6 : 3});
    cr_assert_eq(ty_train_total_steps(t), k ? 6 : 3);
    cr_assert_eq(ty_train_steps(t, 100, err, sizeof err), 0, "%s", err);
    if (k)
      nb = lrs(log, b, 16);
    else
      na = lrs(log, a, 16);
    ty_train_destroy(t);
    fclose(log);
  }
  cr_assert_eq(na, 3);
  cr_assert_eq(nb, 6);
  for (int i = 0; i < 6; i++) {
    double want = 0.1 * (1 + cos(M_PI * i / 8)) / 2; /* over the config's 8 steps */
    cr_assert_float_eq(b[i], want, 1e-5, "step %d: lr %g, want %g", i, b[i], want);
    if (i < 3) cr_assert_eq(a[i], b[i], "step %d: lr %g with 3 steps, %g with 6", i, a[i], b[i]);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
