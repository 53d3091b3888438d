/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipelined plan's evaluation (train.c, eval_fits), the ranks threads of
 * this process (pipe_ranks.c): it gathers the whole weights on rank 0, so
 * with memory to spare the ranks evaluate at config.eval_interval, and
 * where the whole weights do not fit beside the stage the plan put on
 * rank 0, within the device memory the plan was made for, every rank
 * skips it (rank 0 says so once, naming the sizes) and training goes on;
 * where they fit with little to spare, it evaluates in batches whose
 * activations fit what is left (eval.c).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline_eval, .init = pr_setup, .fini = pr_cleanup);

/* The job's test split (tx.npy, ty.npy), evaluated every 2 steps. */
static void with_test_data(ty_train_config *c) {
  synth_add_array(c, true, synth_path("tx.npy"), "x");
  synth_add_array(c, true, synth_path("ty.npy"), "labels");
  c->eval_interval = 2;
}

Test(pipeline_eval, an_evaluation_the_plans_budget_cannot_hold_is_skipped, .timeout = 240) {
  synth_blob_files("t", 64, 2);
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3};
  ty_graph *g = synth_mlp_build(&o);
  pipe_job plain = pipe_job_make(1, 4, 4, 4, 6, NULL);
  plain.tweak = with_test_data;
  char *logs = NULL;
  pipe_run(g, &plain, NULL, &logs);
  cr_assert_eq(synth_count(logs, "eval at step"), 2, "steps 2 and 4 evaluate: %s", logs);
  cr_assert_null(strstr(logs, "evaluation skipped"), "%s", logs);
  free(logs);

  pipe_job tight = plain;
  tight.mem = pipe_plain_memory(g, &plain); /* the largest stage fits, and nothing more */
  pipe_run(g, &tight, NULL, &logs);
  cr_assert_eq(synth_count(logs, "evaluation skipped: it gathers the whole model's weights"), 1,
               "%s", logs);
  cr_assert(strstr(logs, "per device the plan was made for; evaluate a checkpoint in one process"),
            "%s", logs);
  cr_assert_eq(synth_count(logs, "eval at step"), 0, "%s", logs);
  cr_assert_null(strstr(logs, "evaluation: batches of"), "no batches of a skipped one: %s", logs);
  free(logs);

  /* Room for the whole weights (14,352 bytes) and 64 KiB more: the
   * evaluation runs, in batches whose activations fit what is left. */
  pipe_job snug = plain;
  snug.mem = tight.mem + 14352 + 65536;
  pipe_run(g, &snug, NULL, &logs);
  cr_assert_eq(synth_count(logs, "eval at step"), 2, "%s", logs);
  const char *line = strstr(logs, "evaluation: batches of ");
  unsigned rows = 0;
  cr_assert(line && sscanf(line, "evaluation: batches of %u rows", &rows) == 1, "%s", logs);
  cr_assert(rows >= 1 && rows < 1000, "%s", line);
  cr_assert(strstr(line, "what the plan's device has left"), "%s", line);
  free(logs);
  ty_graph_destroy(g);
}
