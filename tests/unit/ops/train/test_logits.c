/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train, the builtin loss's logits: one score per sample ([N]) and
 * one class ([N, 1]) are refused by their config field, naming the binary
 * loss that fits them, before the loss node or the labels refuse them in
 * ONNX's words. (Split from test_semantics.c.)
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void setup(void) {
  synth_blob_files("", 128, 1);
}

TestSuite(logits, .init = setup, .fini = synth_cleanup);

/* One score per sample (Linear(h, 1) flattened to [N]) as the builtin
 * loss's logits is refused by its config field, not by the internal loss
 * node, with the loss that fits it. */
Test(logits, rank_1_logits_name_the_config_field_and_the_binary_loss, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 1, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_shape one = ty_shape_make(1, (int64_t[]){1});
  ty_tensor *minus1;
  int shape, score, idx;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &one, &minus1), 0);
  ty_tensor_i64(minus1)[0] = -1;
  cr_assert_eq(ty_graph_add_value(g, "flat", TY_DTYPE_I64, &one, &shape), 0);
  cr_assert_eq(ty_graph_set_initializer(g, shape, minus1), 0);
  cr_assert_eq(ty_graph_add_value(g, "score", TY_DTYPE_INVALID, NULL, &score), 0);
  int in[2] = {ty_graph_find_value(g, "logits"), shape};
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RESHAPE, "flatten", in, 2, &score, 1, &idx), 0);
  ty_graph_mark_output(g, score);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_train_config c;
  synth_config(&c, 2, false);
  free(c.logits_output);
  c.logits_output = ty_strdup("score");
  ty_train *t = NULL;
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){0}, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.softmax_cross_entropy.logits_output: \"score\" is ") &&
                strstr(err, "rank 1; the builtin loss takes logits [batch, classes, ...]") &&
                strstr(err, "F.binary_cross_entropy_with_logits") &&
                strstr(err, "set loss_output") && !strstr(err, "trainyard."),
            "%s", err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Logits [N, 1] (Linear(h, 1) unflattened) have one class: a softmax of 1,
 * loss 0, nothing trains; refused the same way, naming the binary loss. */
Test(logits, one_class_logits_name_the_binary_loss, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 1, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 2, false);
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){0}, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.softmax_cross_entropy.logits_output: \"logits\" is ") &&
                strstr(err, "one class; the builtin loss takes logits") &&
                strstr(err, "F.binary_cross_entropy_with_logits"),
            "%s", err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
