/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train with a thread pool (ty_train_opts.workers): the training
 * step's kernels run split over the pool, not on the caller alone (the
 * single-process executor once dropped the pool, and every "two core"
 * figure was then one core's), and the weights after the steps are the
 * same bit for bit at 1, 2 and 3 threads.
 */
#include "ops/exec.h"
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void setup(void) {
  synth_blob_files("", 128, 7);
}

TestSuite(threads, .init = setup, .fini = synth_cleanup);

/* 6 steps of g (logging to log) on a new pool of n threads in *w (n = 1: no pool, *w
 * NULL; the trainer borrows it, so it is destroyed after the trainer).
 * Hidden layers of 512 make the GEMMs large enough to split. */
static ty_train *train(const ty_graph *g, ty_train_config *c, int n, ty_workers **w, FILE *log) {
  *w = NULL;
  if (n > 1) cr_assert_eq(ty_workers_create(n, w), 0);
  synth_config(c, 6, false);
  ty_train *t = synth_trainer(g, c, &(ty_train_opts){.workers = *w, .log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 6, err, sizeof err), 0, "%s", err);
  return t;
}

Test(threads, step_runs_on_the_pool_with_the_same_weights, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 512, .out = 4, .seed = 11, .deep = 2};
  ty_graph *g = synth_mlp_build(&o);
  FILE *log = tmpfile();
  ty_train_config c1;
  ty_workers *w1;
  ty_train *t1 = train(g, &c1, 1, &w1, log);
  cr_assert_null(w1);
  for (int n = 2; n <= 3; n++) {
    ty_train_config cn;
    ty_workers *w;
    ty_train *tn = train(g, &cn, n, &w, log);
    int64_t jobs = ty_workers_jobs(w);
    cr_assert_gt(jobs, 6, "%d threads: %lld jobs on the pool in 6 steps", n, (long long)jobs);
    cr_assert_eq(ty_train_n_params(tn), ty_train_n_params(t1));
    for (size_t i = 0; i < ty_train_n_params(t1); i++) {
      const ty_tensor *a = ty_train_param(t1, i), *b = ty_train_param(tn, i);
      cr_assert_eq(ty_tensor_numel(a), ty_tensor_numel(b));
      cr_assert(memcmp(a->data, b->data, sizeof(float) * (size_t)ty_tensor_numel(a)) == 0,
                "%s differs at %d threads", ty_train_param_name(t1, i), n);
    }
    ty_train_destroy(tn);
    ty_workers_destroy(w);
    ty_train_config_close(&cn);
  }
  ty_train_destroy(t1);
  ty_train_config_close(&c1);
  ty_graph_destroy(g);
  fclose(log);
}
