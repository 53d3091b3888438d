/* SPDX-License-Identifier: Apache-2.0 */
/* The plan tests' shared ranks and references (see plan_ranks.h). */
#include "tests/unit/ops/train/plan_ranks.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads);

void pr_setup(void) {
  openblas_set_num_threads(1);
  synth_blob_files("", 256, 1);
}

void pr_cleanup(void) {
  synth_cleanup();
}

/* One process, clipping at max_grad_norm (0: none), its config changed
 * by tweak (NULL: synth_config's). */
static void run_single(const ty_graph *g, uint64_t steps, const char *ckpt, bool resume,
                       float max_grad_norm, double *norms, void (*tweak)(ty_train_config *)) {
  ty_train_config c;
  synth_config(&c, steps, false);
  if (tweak) tweak(&c);
  c.checkpoint_path = ty_strdup(ckpt);
  c.max_grad_norm = max_grad_norm;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.resume = resume, .log = log});
  char err[TY_ERR_LEN] = "";
  if (norms)
    cr_assert_eq(pr_steps_norms(t, steps, norms, err, sizeof err), 0, "%s", err);
  else
    cr_assert_eq(ty_train_steps(t, steps, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

void pr_run_single(const ty_graph *g, uint64_t steps, const char *ckpt, bool resume) {
  run_single(g, steps, ckpt, resume, 0, NULL, NULL);
}

void pr_run_single_with(const ty_graph *g, uint64_t steps, const char *ckpt,
                        void (*tweak)(ty_train_config *)) {
  run_single(g, steps, ckpt, false, 0, NULL, tweak);
}

void pr_run_single_clipped(const ty_graph *g, uint64_t steps, const char *ckpt, float max_grad_norm,
                           double *norms) {
  run_single(g, steps, ckpt, false, max_grad_norm, norms, NULL);
}

int pr_steps_norms(ty_train *t, uint64_t steps, double *norms, char *err, size_t err_len) {
  cr_assert(steps <= PR_MAX_STEPS, "%llu steps", (unsigned long long)steps);
  for (uint64_t s = 0; s < steps; s++) {
    int rc = ty_train_steps(t, 1, err, err_len);
    if (rc != 0) return rc;
    norms[s] = ty_train_grad_norm(t);
  }
  return 0;
}

double pr_diff(const char *a, const char *b) {
  char err[TY_ERR_LEN] = "";
  ty_graph *ga, *gb;
  cr_assert_eq(ty_graph_load_file(a, err, sizeof err, &ga), 0, "%s", err);
  cr_assert_eq(ty_graph_load_file(b, err, sizeof err, &gb), 0, "%s", err);
  double worst = 0;
  for (size_t i = 0; i < ty_graph_n_initializers(ga); i++) {
    const ty_graph_value *va = ty_graph_value_at(ga, ty_graph_initializer(ga, i));
    const ty_tensor *tb = ty_graph_value_at(gb, ty_graph_find_value(gb, va->name))->init;
    cr_assert_eq(va->init->nbytes, tb->nbytes, "%s", va->name);
    for (int64_t k = 0; va->dtype == TY_DTYPE_F32 && k < ty_tensor_numel(va->init); k++)
      worst = fmax(worst, fabs((double)ty_tensor_f32(va->init)[k] - ty_tensor_f32(tb)[k]));
  }
  ty_graph_destroy(ga);
  ty_graph_destroy(gb);
  return worst;
}

void pr_remove_checkpoint(const char *path) {
  size_t n = strlen(path);
  int stem = n > 5 && strcmp(path + n - 5, ".onnx") == 0 ? (int)n - 5 : (int)n;
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -f '%s' '%s.state' '%.*s'.step-*.onnx '%.*s'.step-*.onnx.state",
           path, path, stem, path, stem, path);
  cr_assert_eq(system(cmd), 0);
}

void pr_copy_checkpoint(const char *from, const char *to) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s.state' '%s.state'", from, to, from, to);
  cr_assert_eq(system(cmd), 0);
}

ty_train_parallel pr_parallel(mt_rank *r) {
  return (ty_train_parallel){.comm = mt_comm(r),
                             .start = mt_start,
                             .wait = mt_wait,
                             .gather = mt_gather,
                             .agree_stop = mt_agree_stop,
                             .send = mt_send,
                             .recv = mt_recv,
                             .flush = mt_flush};
}

ty_train_opts pr_opts(const mt_rank *r, const ty_train_parallel *par, bool resume, FILE *log) {
  return (ty_train_opts){.rank = (uint32_t)r->rank,
                         .world_size = (uint32_t)r->m->world,
                         .resume = resume,
                         .parallel = par,
                         .log = log,
                         .stop = r->stop};
}

void pr_threads(int world, void *(*fn)(void *), void *args, size_t size) {
  pthread_t th[MT_MAX_RANKS];
  cr_assert(world >= 1 && world <= MT_MAX_RANKS, "%d ranks", world);
  for (int r = 0; r < world; r++)
    cr_assert_eq(pthread_create(&th[r], NULL, fn, (char *)args + (size_t)r * size), 0);
  for (int r = 0; r < world; r++)
    pthread_join(th[r], NULL);
}
