/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/plan's rule for the recurrent ops LSTM, GRU and RNN
 * (models.c's model_rnn): the batch splits (X's dim 1, or 0 with layout
 * 1; Y's dim 2 or 0; Y_h's dim 1 or 0), W, R and B are replicated with
 * their gradients all-reduced, and the cost model counts the gates'
 * products, so data parallelism wins on two devices. A plan of several
 * devices that splits no op that computes, some of them without a rule,
 * says so.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/plan/plan_helpers.h"

/* The gradient all-reduce of parameter `name`, or NULL. */
static const ty_plan_collective *grad_sync_of(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_collectives; i++) {
    const ty_plan_collective *c = &p->collectives[i];
    if (c->phase == TY_PLAN_GRAD_SYNC && c->kind == TY_PLAN_ALL_REDUCE && c->tensor &&
        !strcmp(c->tensor, name))
      return c;
  }
  return NULL;
}

static void check_batch_split(const ty_plan *p, const char *name, int layout) {
  const ty_plan_op *o = plan_test_op_named(p, name);
  cr_assert(!o->fallback, "%s: %s", name, o->note ? o->note : "");
  cr_assert(strstr(o->strategy, "batch split"), "%s: %s", name, o->strategy);
  int bx = layout == 0 ? 1 : 0;
  for (int d = 0; d < o->inputs[0].rank; d++)
    cr_assert_eq(o->inputs[0].dim_axes[d] != 0, d == bx, "%s: X dim %d: %s", name, d, o->strategy);
  for (int d = 0; d < o->outputs[0].rank; d++)
    cr_assert_eq(o->outputs[0].dim_axes[d] != 0, d == (layout == 0 ? 2 : 0), "%s: Y dim %d", name,
                 d);
  for (int d = 0; d < o->outputs[1].rank; d++)
    cr_assert_eq(o->outputs[1].dim_axes[d] != 0, d == bx, "%s: Y_h dim %d", name, d);
  for (int i = 1; i < 4; i++) /* W, R, B */
    for (int d = 0; d < o->inputs[i].rank; d++)
      cr_assert_eq(o->inputs[i].dim_axes[d], 0, "%s: input %d split", name, i);
}

/* Two recurrent layers 64 -> 128 -> 128 over 32 steps -> linear, batch 128,
 * on 2 devices of the documented defaults, in both layouts (acceptance
 * testing's LSTM model): it was the replicated plan, its LSTMs
 * "replicated (fallback)" and costed as nothing. */
Test(plan_rnn, recurrent_layers_split_the_batch_on_two_devices) {
  const ty_op ops[] = {TY_OP_LSTM, TY_OP_GRU, TY_OP_RNN};
  for (size_t k = 0; k < 3; k++)
    for (int layout = 0; layout < 2; layout++) {
      ty_graph *g = model_rnn(ops[k], layout, 32, 128);
      cr_assert_not_null(g);
      ty_plan_request r = plan_test_request(1, 2, 128, false);
      ty_plan *p = plan_test_ok(g, &r);
      cr_assert_eq(p->n_fallback, 0);
      check_batch_split(p, "rnn0", layout);
      check_batch_split(p, "rnn1", layout);
      for (size_t i = 0; i < 2; i++) {
        char w[32];
        snprintf(w, sizeof w, "rnn%zu.W", i);
        cr_assert_not_null(grad_sync_of(p, w), "%s's gradient is not all-reduced", w);
      }
      /* 2 layers x 32 steps x 128 rows x gates x 128 x (64 or 128 + 128) x 2, x 3 with
       * backward: LSTM's ~6 GFLOP on 2 devices of the default 105 GFLOP/s */
      double gates = ops[k] == TY_OP_LSTM ? 4 : ops[k] == TY_OP_GRU ? 3 : 1;
      double fwd = 32.0 * 128 * gates * 128 * (192 + 256) * 2;
      cr_assert_gt(p->compute_s, 0.9 * 3 * fwd / r.cluster.device_flops / 2, "%g s", p->compute_s);
      char note[2 * TY_ERR_LEN];
      cr_assert_str_eq(ty_plan_replicated_note(p, note, sizeof note), "");
      ty_plan_destroy(p);
      ty_graph_destroy(g);
    }
}

/* A plan of several devices that splits nothing, one of whose ops fell
 * back for want of a rule (as the LSTMs did: "replicated (fallback)"),
 * says that each rank computes the whole batch, and names that op, whose
 * cost the model only guesses. */
Test(plan_rnn, a_replicated_plan_with_a_fallback_says_so) {
  ty_graph *g = model_mlp(2, 4);
  ty_plan_request r = plan_test_request(1, 2, 8, true);
  r.cluster.device_flops = 1e15;
  r.cluster.launch_s = 1e-2;
  ty_plan *p = plan_test_ok(g, &r);
  ty_plan_op *mm = NULL;
  for (size_t i = 0; i < p->n_ops; i++) {
    cr_assert_str_eq(p->ops[i].strategy, "replicated", "%s", p->ops[i].name);
    if (!strcmp(p->ops[i].name, "l1.mm")) mm = &p->ops[i];
  }
  cr_assert_not_null(mm);
  free(mm->strategy);
  mm->strategy = strdup("replicated (fallback)");
  mm->fallback = true;
  mm->note = strdup("no sharding rule for MatMul; runs replicated");
  p->n_fallback = 1;
  char note[2 * TY_ERR_LEN];
  ty_plan_replicated_note(p, note, sizeof note);
  cr_assert(strstr(note, "each rank computes every global batch whole"), "%s", note);
  cr_assert(strstr(note, "1 op has no sharding rule (first: node \"l1.mm\", MatMul)"), "%s", note);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  cr_assert(memmem(b.data, b.len, "note: every op is replicated", 28), "%.*s", (int)b.len,
            (char *)b.data);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
