/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jobs of test_parallel.c and test_parallel_ckpt.c: a small MLP
 * trained under a plan by ranks that are threads of this process (each
 * plans for itself, trains and checkpoints), the knobs those tests set on
 * every rank's config, and the comparison with one process.
 */
#include "tests/unit/ops/train/parallel_jobs.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ty_graph *pj_model_with(bool bn) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .bn = bn};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

ty_graph *pj_model_bn_train_mode(void) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .bn_train_mode = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

ty_graph *pj_model(void) {
  return pj_model_with(false);
}

/* The knobs (parallel_jobs.h says what each does). */
float pj_clip_norm;
const char *pj_x_path;
bool pj_drop_weights, pj_unchecked, pj_no_steps, pj_stop_first;
void (*pj_tweak)(ty_train_config *);

/* A rank's own copy of g (the threads share g, a process owns its model). */
static ty_graph *copy_model(const ty_graph *g) {
  uint8_t *b = NULL;
  size_t n = 0;
  ty_graph *out = NULL;
  char err[TY_ERR_LEN];
  if (ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &b, &n) == 0)
    (void)ty_graph_load_bytes(b, n, err, sizeof err, &out);
  free(b);
  return out;
}

/* The bytes of g's float initializers that hold data (rank > 0: the MLP's
 * trained weights). */
size_t pj_float_init_bytes(const ty_graph *g) {
  size_t n = 0;
  for (size_t i = 0; g && i < ty_graph_n_initializers(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype == TY_DTYPE_F32 && v->shape.rank > 0) n += v->init->nbytes;
  }
  return n;
}

ty_plan_request pj_request(const pj_job *j) {
  ty_plan_request req;
  ty_plan_request_init(&req);
  req.cluster.nodes = j->nodes;
  req.cluster.devices_per_node = j->per_node;
  req.cluster.device_flops = 1e6; /* slow devices: every layer splits */
  req.cluster.intra_latency_s = req.cluster.inter_latency_s = req.cluster.launch_s = 1e-9;
  req.mode = j->mode;
  return req;
}

static void *rank_main(void *arg) {
  pj_rank *rr = arg;
  ty_train_config c;
  synth_config(&c, rr->j->steps, false);
  c.checkpoint_path = ty_strdup(rr->j->ckpt);
  c.max_grad_norm = pj_clip_norm;
  if (pj_x_path) {
    free(c.train_arrays[0].path);
    c.train_arrays[0].path = ty_strdup(pj_x_path);
  }
  if (pj_tweak) pj_tweak(&c);
  ty_plan_request req = pj_request(rr->j);
  ty_train_parallel par = pr_parallel(&rr->r);
  par.request = &req;
  rr->r.stop = &rr->stop;
  FILE *log = tmpfile();
  ty_train_opts o = pr_opts(&rr->r, &par, rr->j->resume, log);
  ty_train *t = NULL;
  ty_graph *own = pj_drop_weights ? copy_model(rr->g) : NULL;
  rr->rc = ty_train_create(own ? own : rr->g, &c, &o, &t, rr->err, sizeof rr->err);
  if (rr->rc == 0 && own) {
    rr->wrong_model_rc = ty_train_drop_model_data(t, (ty_graph *)rr->g, NULL);
    rr->rc = ty_train_drop_model_data(t, own, &rr->dropped);
    rr->left = pj_float_init_bytes(own);
    rr->train_left = pj_float_init_bytes(ty_train_graph(t));
  }
  if (rr->rc == 0) rr->resume_full_bytes = ty_train_resume_full_bytes(t);
  if (rr->rc == 0) rr->hash = ty_plan_hash(ty_train_plan(t));
  rr->stop = pj_stop_first;
  if (rr->rc == 0 && !pj_no_steps)
    rr->rc = pj_clip_norm > 0 ? pr_steps_norms(t, rr->j->steps, rr->norms, rr->err, sizeof rr->err)
                              : ty_train_steps(t, rr->j->steps, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->step = ty_train_step(t);
  if (rr->rc == 0) rr->rc = ty_train_checkpoint(t, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->full_bytes = ty_train_full_bytes(t);
  ty_train_destroy(t);
  ty_graph_destroy(own);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

/* Runs job j on nodes x per_node threads; every rank plans for itself
 * and must find the plan this thread finds. With refusal set, every rank
 * must instead fail with an error holding it. */
void pj_run_ranks(const ty_graph *g, const pj_job *j, const char *refusal, pj_rank *rr) {
  ty_train_config c;
  synth_config(&c, j->steps, false);
  if (pj_tweak) pj_tweak(&c);
  ty_plan_request req = pj_request(j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  ty_train_config_close(&c);
  mt_mesh m;
  int world = j->nodes * j->per_node;
  mt_mesh_init(&m, p->mesh[0], p->mesh[1]);
  memset(rr, 0, MT_MAX_RANKS * sizeof *rr);
  for (int r = 0; r < world; r++)
    rr[r] = (pj_rank){.r = {&m, r, NULL}, .j = j, .g = g};
  pr_threads(world, rank_main, rr, sizeof *rr);
  for (int r = 0; !pj_unchecked && r < world; r++) {
    if (refusal) {
      cr_assert_eq(rr[r].rc, TY_EINVAL, "rank %d: %s", r, rr[r].err);
      cr_assert(strstr(rr[r].err, refusal), "rank %d: %s", r, rr[r].err);
      continue;
    }
    cr_assert_eq(rr[r].rc, 0, "rank %d: %s: %s", r, ty_strerror(rr[r].rc), rr[r].err);
    cr_assert_eq(rr[r].hash, ty_plan_hash(p), "rank %d planned something else", r);
    /* The checkpoint's gathered copies are freed once written (resumed
     * ones once sliced): a rank keeps its shard alone. */
    cr_assert_eq(rr[r].full_bytes, 0u, "rank %d still holds %zu bytes of full copies", r,
                 rr[r].full_bytes);
    /* A resume slices each tensor and optimizer buffer out of the mapped
     * checkpoint: no rank allocates a whole one (resume.c). */
    cr_assert_eq(rr[r].resume_full_bytes, 0u, "rank %d resumed through %zu bytes of full copies", r,
                 rr[r].resume_full_bytes);
  }
  mt_mesh_close(&m);
  ty_plan_destroy(p);
}

void pj_run_expect(const ty_graph *g, const pj_job *j, const char *refusal) {
  pj_rank rr[MT_MAX_RANKS];
  pj_run_ranks(g, j, refusal, rr);
}

void pj_run(const ty_graph *g, const pj_job *j) {
  pj_run_expect(g, j, NULL);
}

/* Runs j (pj_run) and asserts that its checkpoint is within tol of ref,
 * a one-process run's (with BatchNormalization, the running statistics
 * are initializers of the checkpoint too). */
void pj_expect_like(const ty_graph *g, const pj_job *j, const char *ref, double tol) {
  if (!j->resume) pr_remove_checkpoint(j->ckpt);
  pj_run(g, j);
  double d = pr_diff(ref, j->ckpt);
  cr_assert(d < tol, "%dx%d, mode %d: weights differ from one process by %g", j->nodes, j->per_node,
            j->mode, d);
}
