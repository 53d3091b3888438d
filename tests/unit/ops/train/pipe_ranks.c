/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipelined plan's ranks as threads of one process (see pipe_ranks.h):
 * each builds its trainer from the job's config and plan request, trains
 * to the job's step, and leaves its error, step, state size and log in its
 * pipe_rank. The job's extras go through the mesh's hooks: a mislabelled
 * stage message, a message count per rank, a stop flag set up front.
 */
#include "tests/unit/ops/train/pipe_ranks.h"

#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pipe_job pipe_job_make(int nodes, int per_node, int stages, int micro, uint64_t steps,
                       const char *ckpt) {
  return (pipe_job){.nodes = nodes,
                    .per_node = per_node,
                    .stages = stages,
                    .micro = micro,
                    .steps = steps,
                    .ckpt = ckpt,
                    .bad_rank = -1,
                    .stop_rank = -1};
}

void pipe_path(char out[PIPE_PATH], const char *name) {
  snprintf(out, PIPE_PATH, "%s", synth_path(name));
}

void pipe_config(ty_train_config *c, const pipe_job *j) {
  synth_config(c, j->steps, false);
  if (j->plain_sgd) {
    c->shuffle = false;
    c->optim.momentum = 0;
  }
  c->pipeline_stages = j->stages;
  c->micro_batches = j->micro;
  c->max_grad_norm = j->clip;
  if (j->weighted) synth_weighted_config(c);
  if (j->tweak) j->tweak(c);
  if (j->ckpt) c->checkpoint_path = ty_strdup(j->ckpt);
}

ty_plan_request pipe_request(const pipe_job *j) {
  ty_plan_request req;
  ty_plan_request_init(&req);
  req.cluster.nodes = j->nodes;
  req.cluster.devices_per_node = j->per_node;
  req.cluster.device_flops = 1e9;
  if (j->mem) req.cluster.device_mem_bytes = j->mem;
  if (j->split_all) {
    req.cluster.device_flops = 1e6;
    req.cluster.intra_bw = req.cluster.inter_bw = 1e12;
    req.cluster.intra_latency_s = req.cluster.inter_latency_s = req.cluster.launch_s = 0;
  }
  req.mode = j->mode;
  return req;
}

ty_plan *pipe_plan_for(const ty_graph *g, const ty_train_config *c, const pipe_job *j) {
  ty_plan_request req = pipe_request(j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, c, true, &req, &p, err, sizeof err), 0, "%s", err);
  return p;
}

uint64_t pipe_plain_memory(const ty_graph *g, const pipe_job *j) {
  ty_train_config c;
  pipe_config(&c, j);
  ty_plan *p = pipe_plan_for(g, &c, j);
  uint64_t most = 0;
  for (int s = 0; s < p->n_stages; s++) {
    cr_assert(!p->stages[s].recompute, "stage %d recomputes with plenty of memory", s);
    if (p->stages[s].memory_no_recompute_bytes > most)
      most = p->stages[s].memory_no_recompute_bytes;
  }
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  return most;
}

void pipe_reference(const ty_graph *g, const char *name, int steps, char ref[PIPE_PATH],
                    char out[PIPE_PATH]) {
  char file[64];
  snprintf(file, sizeof file, "ref_%s.onnx", name);
  pipe_path(ref, file);
  snprintf(file, sizeof file, "pipe_%s.onnx", name);
  pipe_path(out, file);
  pr_run_single(g, (uint64_t)steps, ref, false);
}

/* The wrong message: rank bad_rank's activation of micro-batch 1 claims
 * to be micro-batch 7. */
static int bad_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user) {
  uint64_t h[4] = {hdr[0], hdr[1], hdr[2] == 1 ? 7 : hdr[2], hdr[3]};
  return mt_send(peer, h, buf, n, user);
}

/* Counts the messages of micro-batch count_micro (user is the rank's
 * mt_rank, the first member of its pipe_rank). */
static int counting_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n,
                         void *user) {
  pipe_rank *rr = user;
  if (hdr[2] == (uint64_t)rr->j->count_micro) __atomic_add_fetch(&rr->counted, 1, 0);
  return mt_send(peer, hdr, buf, n, user);
}

/* The hooks on rank rr's mesh, with the job's extras. */
static ty_train_parallel hooks(pipe_rank *rr, const ty_plan_request *req) {
  ty_train_parallel par = pr_parallel(&rr->r);
  par.request = req;
  if (rr->j->bad_rank >= 0) par.agree_stop = NULL;
  if (rr->r.rank == rr->j->bad_rank) par.send = bad_send;
  if (rr->j->count_micro > 0) par.send = counting_send;
  return par;
}

static void *rank_main(void *arg) {
  pipe_rank *rr = arg;
  ty_train_config c;
  pipe_config(&c, rr->j);
  ty_plan_request req = pipe_request(rr->j);
  ty_train_parallel par = hooks(rr, &req);
  ty_plan *given = NULL;
  if (rr->j->all_recompute) {
    cr_assert_eq(ty_train_make_plan(rr->g, &c, true, &req, &given, rr->err, sizeof rr->err), 0);
    for (int s = 0; s < given->n_stages; s++)
      given->stages[s].recompute = true;
    par.plan = given;
  }
  rr->r.stop = &rr->stop;
  FILE *log = tmpfile();
  ty_train_opts o = pr_opts(&rr->r, &par, rr->j->resume, log);
  ty_train *t = NULL;
  /* As trainrun: each rank's own model, whose weights (and the training
   * graph's copy of them) it frees after create. */
  ty_graph *own = NULL;
  rr->rc = ty_graph_clone(rr->g, rr->err, sizeof rr->err, &own);
  if (rr->rc == 0) rr->rc = ty_train_create(own, &c, &o, &t, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->rc = ty_train_drop_model_data(t, own, &rr->dropped);
  /* A resumed rank sliced its blocks straight out of the mapped files. */
  if (rr->rc == 0 && ty_train_resume_full_bytes(t) != 0)
    rr->rc = ty_errf(rr->err, sizeof rr->err, TY_EINTERNAL,
                     "resumed through %zu bytes of full copies", ty_train_resume_full_bytes(t));
  for (int s = 0; rr->rc == 0 && s < ty_train_plan(t)->n_stages; s++)
    rr->recompute = rr->recompute || ty_train_plan(t)->stages[s].recompute;
  if (rr->j->stop_rank == rr->r.rank) rr->stop = 1; /* as SIGTERM would */
  if (rr->rc == 0)
    rr->rc = rr->j->clip > 0 ? pr_steps_norms(t, rr->j->steps, rr->norms, rr->err, sizeof rr->err)
                             : ty_train_steps(t, rr->j->steps, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->step = ty_train_step(t);
  if (rr->rc == 0 && rr->j->evaluate)
    rr->rc = ty_train_evaluate(t, &rr->acc, &rr->loss, rr->err, sizeof rr->err);
  if (rr->rc == 0 && rr->j->evaluate) rr->full_after_eval = ty_train_full_bytes(t);
  if (rr->rc == 0) rr->state = ty_train_pipeline_state_bytes(t);
  if (rr->rc == 0 && rr->j->ckpt) rr->rc = ty_train_checkpoint(t, rr->err, sizeof rr->err);
  /* The checkpoint's gathered copies are freed once written: a rank
   * keeps its stage's blocks alone. */
  if (rr->rc == 0 && ty_train_full_bytes(t) != 0)
    rr->rc = ty_errf(rr->err, sizeof rr->err, TY_EINTERNAL,
                     "still holds %zu bytes of full copies after training", ty_train_full_bytes(t));
  ty_train_destroy(t);
  ty_graph_destroy(own);
  ty_plan_destroy(given);
  rr->log = synth_log_text(log);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

void pipe_run_ranks(const ty_graph *g, const pipe_job *j, pipe_rank *rr) {
  int world = j->nodes * j->per_node;
  mt_mesh m;
  mt_mesh_init(&m, j->stages, world / j->stages);
  if (j->grid[0] > 0) mt_mesh_set_inner(&m, j->grid[0], j->grid[1]);
  if (j->bad_rank >= 0) m.timeout_ms = 3000;
  for (int r = 0; r < world; r++)
    rr[r] = (pipe_rank){.r = {&m, r, NULL}, .j = j, .g = g};
  pr_threads(world, rank_main, rr, sizeof *rr);
  mt_mesh_close(&m);
}

void pipe_run(const ty_graph *g, const pipe_job *j, pipe_rank *out_ranks, char **out_logs) {
  pipe_rank own[MT_MAX_RANKS], *rr = out_ranks ? out_ranks : own;
  int world = j->nodes * j->per_node;
  pipe_run_ranks(g, j, rr);
  /* A rank that fails leaves its peers waiting until the transport's
   * deadline: name the one whose error is not that wait, the cause. */
  int bad = -1;
  for (int r = 0; r < world; r++)
    if (rr[r].rc != 0 && (bad < 0 || (rr[bad].rc == TY_ETIMEDOUT && rr[r].rc != TY_ETIMEDOUT)))
      bad = r;
  cr_assert(bad < 0, "rank %d: %s: %s", bad, ty_strerror(rr[bad < 0 ? 0 : bad].rc),
            rr[bad < 0 ? 0 : bad].err);
  size_t len = 1;
  for (int r = 0; r < world; r++)
    len += strlen(rr[r].log);
  char *all = calloc(len, 1);
  for (int r = 0; r < world; r++) {
    strcat(all, rr[r].log);
    free(rr[r].log);
    rr[r].log = NULL;
  }
  if (out_logs)
    *out_logs = all;
  else
    free(all);
}

void pipe_expect_like(const ty_graph *g, const pipe_job *j, const char *ref, const char *what,
                      char **out_logs) {
  if (!j->resume) pr_remove_checkpoint(j->ckpt);
  pipe_run(g, j, NULL, out_logs);
  double d = pr_diff(ref, j->ckpt);
  cr_assert(d < 1e-5,
            "%s (%d stages x %d micro-batches on %dx%d): weights differ from one process by %g",
            what, j->stages, j->micro, j->nodes, j->per_node, d);
}
