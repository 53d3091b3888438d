/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token streams (TrainConfig.dataset.tokens) and arrays of token windows:
 * a bigram language model learns the next token, and ids outside the
 * vocabulary or a context the stream cannot fill are refused, naming the
 * file and the position. A model shifting the window itself (labels SAME,
 * NONE) trains as the same computation fed the next tokens (NEXT).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/helpers.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(tokens_lm, .fini = synth_cleanup);

enum { V = SYNTH_LM_V, T = 8 };

/* A stream where token i is i*5 mod 16 (a bigram model predicts it exactly),
 * written raw as uint16 and as an int32 .npy. */
static void write_streams(size_t n) {
  uint16_t *u = malloc(n * 2);
  int32_t *s = malloc(n * 4);
  for (size_t i = 0; i < n; i++)
    u[i] = (uint16_t)(s[i] = (int32_t)((i * 5) % V));
  FILE *f = fopen(synth_path("train.bin"), "wb");
  fwrite(u, 2, n, f);
  fclose(f);
  char shape[32];
  snprintf(shape, sizeof shape, "(%zu,)", n);
  npy_write(synth_path("test.npy"), "<i4", shape, s, n * 4);
  free(u);
  free(s);
}

static void lm_config(ty_train_config *c) {
  synth_config(c, 120, false);
  synth_tokens_config(c, &(ty_train_tokens){.train_path = ty_strdup(synth_path("train.bin")),
                                            .test_path = ty_strdup(synth_path("test.npy")),
                                            .type = TY_DATA_U16,
                                            .context = T});
  c->batch_size = 16;
  c->schedule.base_lr = 0.5;
}

Test(tokens_lm, learns_next_token_windows, .timeout = 60) {
  write_streams(4001);
  ty_graph *g = synth_bigram_lm(T);
  ty_train_config c;
  lm_config(&c);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .prefetch = true});
  char err[TY_ERR_LEN] = "";
  double acc0, loss0, acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc0, &loss0, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(t, 120, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert_geq(acc, 0.99, "token accuracy %.4f (before training %.4f)", acc, acc0);
  cr_assert_lt(loss, loss0 / 4, "loss %.4f, before training %.4f", loss, loss0);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(tokens_lm, refuses_context_and_ids_outside_the_vocabulary, .timeout = 60) {
  write_streams(301);
  ty_graph *g = synth_bigram_lm(T);
  ty_train_config c;
  lm_config(&c);
  c.tokens.context = 4;
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){
          "config.dataset.tokens (",
          "train.bin): samples are uint16 read as int64 (4,) (4 values) but model input \"ids\" "
          "takes int64 [N,8]",
          NULL});
  c.tokens.context = T;
  c.tokens.vocab_size = 10;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.dataset.tokens: ",
                                 "train.bin: token 10 at position 2 is outside [0, 10) for \"ids\"",
                                 NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  /* Ids the logits cannot score: the class count comes from the model. */
  uint16_t big[20] = {1, 2, 3, 40, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4};
  FILE *f = fopen(synth_path("train.bin"), "wb");
  fwrite(big, 2, 20, f);
  fclose(f);
  g = synth_bigram_lm(TY_DIM_UNKNOWN); /* a free sequence length takes the context */
  lm_config(&c);
  free(c.tokens.test_path);
  c.tokens.test_path = NULL;
  c.batch_size = 2;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.label_input (the logits \"logits\" have 16 classes): ",
                                 "token 40 at position 3", NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A model whose loss reads the ids alone (it shifts them itself) has no
 * input for the stream's next tokens: the refusal says to give it one. */
Test(tokens_lm, a_model_loss_without_a_labels_input_is_told_what_to_add, .timeout = 60) {
  write_streams(301);
  ty_graph *g = synth_bigram_lm(T);
  int logits = ty_graph_find_value(g, "logits"), loss, idx;
  ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, &loss);
  ty_graph_add_node(g, TY_OP_REDUCE_MEAN, "mean", &logits, 1, &loss, 1, &idx);
  ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0);
  ty_graph_mark_output(g, loss);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_train_config c;
  lm_config(&c);
  synth_own_loss(&c);
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.label_input: \"labels\" is not an input of the model "
                                 "(its inputs: ids); a token stream feeds each window's next "
                                 "tokens (window[1:]) to config.label_input: give a model that "
                                 "computes its own loss an input for them",
                                 NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* synth_shifting_lm(form)'s config: a window of T + 1 tokens every T + 1. */
static void shift_config(ty_train_config *c, ty_train_token_labels form) {
  lm_config(c);
  synth_own_loss(c);
  c->tokens.labels = form;
  c->tokens.context = form == TY_TRAIN_TOKENS_NEXT ? T : T + 1;
  c->tokens.stride = T + 1;
}

static ty_train *shift_trained(ty_train_token_labels form, double *out_loss) {
  ty_graph *g = synth_shifting_lm(form == TY_TRAIN_TOKENS_NEXT ? T : T + 1, form);
  ty_train_config c;
  shift_config(&c, form);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  double acc;
  cr_assert_eq(ty_train_steps(t, 40, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(t, &acc, out_loss, err, sizeof err), 0, "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return t;
}

/* Parameters within float rounding: the shifted forms sum zero gradients
 * of the window's last position in, which can reorder BLAS's sums. */
static void assert_near_params(const ty_train *a, const ty_train *b) {
  cr_assert_eq(ty_train_n_params(a), ty_train_n_params(b));
  for (size_t i = 0; i < ty_train_n_params(a); i++) {
    const ty_tensor *x = ty_train_param(a, i), *y = ty_train_param(b, i);
    cr_assert_eq(x->nbytes, y->nbytes);
    for (size_t j = 0; j < x->nbytes / sizeof(float); j++)
      cr_assert_float_eq(ty_tensor_f32(x)[j], ty_tensor_f32(y)[j], 1e-5, "%s[%zu]",
                         ty_train_param_name(a, i), j);
  }
}

/* A model shifting the window itself (SAME: Hugging Face's
 * labels=input_ids; NONE: forward(idx) alone) given context + 1 tokens
 * trains to the weights of the same computation fed the next tokens
 * (NEXT) over the same windows, and evaluates the test stream alike. */
Test(tokens_lm, models_that_shift_train_as_the_next_token_form, .timeout = 60) {
  write_streams(2001);
  double l_next, l_same, l_none;
  ty_train *next = shift_trained(TY_TRAIN_TOKENS_NEXT, &l_next);
  ty_train *same = shift_trained(TY_TRAIN_TOKENS_SAME, &l_same);
  ty_train *none = shift_trained(TY_TRAIN_TOKENS_NONE, &l_none);
  assert_near_params(next, same);
  assert_near_params(next, none);
  cr_assert_float_eq(l_same, l_next, 1e-5);
  cr_assert_float_eq(l_none, l_next, 1e-5);
  cr_assert_lt(l_next, 1.0, "the model learned nothing: loss %.4f", l_next);
  ty_train_destroy(next);
  ty_train_destroy(same);
  ty_train_destroy(none);
}

/* Each form refuses the loss and inputs it cannot feed, naming the field. */
Test(tokens_lm, labels_forms_refuse_what_they_cannot_feed, .timeout = 60) {
  write_streams(301);
  ty_graph *g = synth_bigram_lm(T + 1);
  ty_train_config c;
  lm_config(&c);
  c.tokens.context = T + 1;
  c.tokens.labels = TY_TRAIN_TOKENS_SAME;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.dataset.tokens.labels: SAME feeds the window unshifted, "
                                 "but the builtin softmax_cross_entropy needs the next tokens",
                                 NULL});
  c.tokens.labels = TY_TRAIN_TOKENS_NONE;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.dataset.tokens.labels: NONE feeds the window", NULL});
  c.tokens.labels = (ty_train_token_labels)7; /* a C caller's, which no decoder checked */
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.dataset.tokens.labels: unknown value 7", NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  g = synth_shifting_lm(T + 1, TY_TRAIN_TOKENS_SAME); /* its "labels" is an input */
  shift_config(&c, TY_TRAIN_TOKENS_NONE);
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.dataset.tokens.labels: NONE feeds no labels, but the "
                                 "model has the input \"labels\" (config.label_input)",
                                 NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  g = synth_shifting_lm(T + 1, TY_TRAIN_TOKENS_NONE); /* no labels input */
  shift_config(&c, TY_TRAIN_TOKENS_SAME);
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.label_input: \"labels\" is not an input of the model "
                                 "(its inputs: ids); config.dataset.tokens.labels SAME feeds the "
                                 "window to it",
                                 NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Windows of the stream as .npy arrays (ids [n, T], next tokens [n, T]):
 * the logits [N, T, V] need the classes last, and the default (ONNX's
 * second axis) is refused naming the setting that fits. */
Test(tokens_lm, arrays_of_windows_take_the_classes_last, .timeout = 60) {
  enum { NW = 256 };
  int64_t *ids = malloc(NW * T * sizeof *ids), *next = malloc(NW * T * sizeof *next);
  for (int i = 0; i < NW * T; i++) {
    ids[i] = (i * 5) % V;
    next[i] = (ids[i] * 5) % V;
  }
  char shape[32];
  snprintf(shape, sizeof shape, "(%d, %d)", NW, T);
  npy_write(synth_path("ids.npy"), "<i8", shape, ids, NW * T * sizeof *ids);
  npy_write(synth_path("next.npy"), "<i8", shape, next, NW * T * sizeof *next);
  free(ids);
  free(next);
  ty_graph *g = synth_bigram_lm(T);
  ty_train_config c;
  synth_config(&c, 60, false);
  for (size_t i = 0; i < c.n_train_arrays; i++) {
    free(c.train_arrays[i].path);
    c.train_arrays[i].path = ty_strdup(synth_path(i == 0 ? "ids.npy" : "next.npy"));
    free(c.train_arrays[i].input);
    c.train_arrays[i].input = ty_strdup(i == 0 ? "ids" : "labels");
  }
  free(c.data_input);
  c.data_input = ty_strdup("ids");
  c.schedule.base_lr = 0.5;
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){"config.label_input: labels \"labels\" [N,8] do not fit the logits "
                       "\"logits\" [N,8,16] with the classes on their second axis; they fit "
                       "with the classes last: set softmax_cross_entropy.class_axis: "
                       "CLASS_AXIS_LAST",
                       NULL});
  c.class_last = true;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 60, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  const char *last = strstr(text, "step 60/60 loss ");
  cr_assert_not_null(last, "%s", text);
  cr_assert_lt(strtod(last + strlen("step 60/60 loss "), NULL), 0.5, "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
