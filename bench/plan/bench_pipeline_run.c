/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pipelined plans run (issue 18's measure; bench_pipeline.c predicts):
 *
 *   1. throughput of a 4-stage MLP on 4 ranks against the micro-batch
 *      count, beside the planner's predicted step and bubble, and one
 *      process on the same global batch;
 *   2. at one micro-batch count, every stage's peak of micro-batch tensors
 *      held (ty_train_pipeline_peak_bytes) and the step time, with and
 *      without activation recomputation (the plan's stage.recompute set on
 *      every stage), beside the planner's predicted stage memory, and the
 *      bytes of parameters, gradient sums and optimizer state each rank
 *      holds (ty_train_pipeline_state_bytes: its stage's only).
 *
 * The ranks are threads of this process and their messages and
 * collectives go through the tests' in-process mesh
 * (tests/unit/ops/shard/mesh_threads.c), so what is measured is the
 * schedule and the stage graphs, not a network; each rank's kernels run
 * on its own thread (OpenBLAS at one thread). Results and the command are
 * in bench/RESULTS.md.
 *
 * Usage: bench_pipeline_run [--layers N] [--hidden H] [--batch B] [--steps N] [--dir DIR]
 */
#include "bench/plan/pipeline_mlp.h"
#include "lib/base/base.h"
#include "ops/train/train.h"
#include "tests/unit/ops/shard/mesh_threads.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

typedef struct opts {
  bench_mlp mlp;
  int steps;
  const char *dir;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.mlp = {.layers = 8, .hidden = 512, .batch = 64}, .steps = 6, .dir = "/tmp"};
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return fprintf(stderr, "bench_pipeline_run: %s needs a value\n", a), 2;
    if (bench_mlp_option(&o->mlp, a, v))
      continue;
    else if (strcmp(a, "--steps") == 0)
      o->steps = atoi(v);
    else if (strcmp(a, "--dir") == 0)
      o->dir = v;
    else
      return fprintf(stderr, "bench_pipeline_run: unknown option %s\n", a), 2;
  }
  return o->mlp.layers >= 4 && o->mlp.hidden > 0 && o->mlp.batch >= 16 && o->steps >= 2 ? 0 : 2;
}

/* A float32 [n, d] .npy of values in [-1, 1). */
static int write_npy(const char *path, int64_t n, int64_t d, uint64_t seed) {
  char hdr[128];
  int len =
      snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
               (long long)n, (long long)d);
  int pad = 64 - (10 + len + 1) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) return TY_EIO;
  uint16_t hl = (uint16_t)(len + pad % 64 + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fwrite(&hl, 2, 1, f);
  fprintf(f, "%s%*s\n", hdr, pad % 64, "");
  uint64_t s = seed;
  for (int64_t i = 0; i < n * d; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    float v = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
    fwrite(&v, sizeof v, 1, f);
  }
  return fclose(f) == 0 ? 0 : TY_EIO;
}

static void config(ty_train_config *c, const opts *o, const char *x, const char *y, int micro) {
  memset(c, 0, sizeof *c);
  c->loss_output = ty_strdup("loss");
  c->label_input = ty_strdup("labels"); /* the decoder's default; no labels are fed */
  ty_optim_opts_default(TY_OPTIM_SGD, &c->optim);
  c->optim.momentum = 0.9f;
  c->schedule = (ty_lr_schedule){.kind = TY_LR_CONSTANT, .base_lr = 0.01};
  c->batch_size = (uint32_t)o->mlp.batch;
  c->max_steps = (uint64_t)o->steps;
  c->seed = 5;
  c->log_interval = 1000000;
  c->fusion = true;
  c->pipeline_stages = micro ? 4 : 1;
  c->micro_batches = micro;
  c->data_kind = TY_TRAIN_DATA_ARRAYS;
  c->train_arrays = calloc(2, sizeof *c->train_arrays);
  c->train_arrays[0] = (ty_train_array){.path = ty_strdup(x), .input = ty_strdup("x")};
  c->train_arrays[1] = (ty_train_array){.path = ty_strdup(y), .input = ty_strdup("y")};
  c->n_train_arrays = 2;
}

typedef struct rank_run {
  mt_rank r;
  const ty_graph *g;
  const ty_train_config *c;
  const ty_plan *plan;
  int steps;
  double step_s; /* mean over the steps after the first */
  uint64_t peak, state;
  int rc;
  char err[TY_ERR_LEN];
} rank_run;

static void *rank_main(void *arg) {
  rank_run *rr = arg;
  ty_train_parallel par = {.plan = rr->plan,
                           .comm = mt_comm(&rr->r),
                           .start = mt_start,
                           .wait = mt_wait,
                           .gather = mt_gather,
                           .send = mt_send,
                           .recv = mt_recv,
                           .flush = mt_flush};
  FILE *log = fopen("/dev/null", "w");
  ty_train_opts o = {.rank = (uint32_t)rr->r.rank,
                     .world_size = rr->plan ? (uint32_t)rr->r.m->world : 1,
                     .parallel = rr->plan ? &par : NULL,
                     .log = log};
  ty_train *t = NULL;
  rr->rc = ty_train_create(rr->g, rr->c, &o, &t, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->rc = ty_train_steps(t, 1, rr->err, sizeof rr->err); /* JIT, first buffers */
  int64_t t0 = ty_mono_ms();
  if (rr->rc == 0) rr->rc = ty_train_steps(t, (uint64_t)rr->steps - 1, rr->err, sizeof rr->err);
  rr->step_s = (double)(ty_mono_ms() - t0) / 1e3 / (rr->steps - 1);
  if (t) rr->peak = ty_train_pipeline_peak_bytes(t);
  if (t) rr->state = ty_train_pipeline_state_bytes(t);
  ty_train_destroy(t);
  fclose(log);
  return NULL;
}

/* Runs the plan (NULL: one process) over its ranks; rr gets each rank's. */
static int run(const ty_graph *g, const ty_train_config *c, const ty_plan *p, int steps,
               rank_run *rr) {
  int world = p ? p->devices : 1;
  mt_mesh m;
  mt_mesh_init(&m, p ? p->n_stages : 1, p ? world / p->n_stages : 1);
  pthread_t th[MT_MAX_RANKS];
  for (int r = 0; r < world; r++) {
    rr[r] = (rank_run){.r = {&m, r, NULL}, .g = g, .c = c, .plan = p, .steps = steps};
    pthread_create(&th[r], NULL, rank_main, &rr[r]);
  }
  for (int r = 0; r < world; r++)
    pthread_join(th[r], NULL);
  mt_mesh_close(&m);
  for (int r = 0; r < world; r++)
    if (rr[r].rc != 0)
      return fprintf(stderr, "rank %d: %s: %s\n", r, ty_strerror(rr[r].rc), rr[r].err), 1;
  return 0;
}

static ty_plan *plan_for(const ty_graph *g, const ty_train_config *c) {
  ty_plan_request req;
  ty_plan_request_init(&req);
  bench_mlp_cluster(&req);
  req.cluster.device_flops = 2e10; /* about one core of this host */
  req.mode = TY_PLAN_MODE_AUTO;
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  if (ty_train_make_plan(g, c, true, &req, &p, err, sizeof err) != 0)
    fprintf(stderr, "plan: %s\n", err);
  return p;
}

static double slowest(const rank_run *rr, int world) {
  double s = 0;
  for (int r = 0; r < world; r++)
    s = rr[r].step_s > s ? rr[r].step_s : s;
  return s;
}

/* Part 2: recomputation off and on at m micro-batches. */
static int recompute_rows(const ty_graph *g, const opts *o, const char *x, const char *y, int m) {
  ty_train_config c;
  config(&c, o, x, y, m);
  ty_plan *p = plan_for(g, &c);
  rank_run rr[MT_MAX_RANKS];
  int rc = p ? 0 : 1;
  printf("\nrecomputation, %d micro-batches: peak micro-batch tensors held per stage (MiB, "
         "measured), slowest rank's step; the planner's stage 0 memory without recomputation "
         "(weights, optimizer state and activations)\n",
         m);
  printf("%-10s %10s %10s %10s %10s %10s | %12s\n", "", "stage 0", "stage 1", "stage 2", "stage 3",
         "step ms", "pred. MiB");
  for (int on = 0; rc == 0 && on < 2; on++) {
    for (int s = 0; s < p->n_stages; s++)
      p->stages[s].recompute = on;
    if ((rc = run(g, &c, p, o->steps, rr)) != 0) break;
    printf("%-10s", on ? "recompute" : "keep");
    for (int s = 0; s < 4; s++)
      printf(" %10.2f", (double)rr[s].peak / 1048576.0);
    printf(" %10.1f | %12.2f\n", slowest(rr, 4) * 1e3,
           (double)p->stages[0].memory_no_recompute_bytes / 1048576.0);
  }
  printf("%-10s", "params+st");
  for (int s = 0; rc == 0 && s < 4; s++)
    printf(" %10.2f", (double)rr[s].state / 1048576.0);
  if (rc == 0)
    printf("   (MiB of parameters, gradient sums and optimizer state each rank holds)\n");
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  return rc;
}

int main(int argc, char **argv) {
  opts o;
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: bench_pipeline_run [--layers N>=4] [--hidden H] [--batch B>=16] "
                    "[--steps N>=2] [--dir DIR]\n");
    return 2;
  }
  openblas_set_num_threads(1);
  char x[512], y[512];
  snprintf(x, sizeof x, "%s/bench_pipe_x.%d.npy", o.dir, (int)getpid());
  snprintf(y, sizeof y, "%s/bench_pipe_y.%d.npy", o.dir, (int)getpid());
  int64_t rows = o.mlp.batch * o.steps;
  if (write_npy(x, rows, o.mlp.hidden, 1) != 0 || write_npy(y, rows, o.mlp.hidden, 2) != 0)
    return fprintf(stderr, "bench_pipeline_run: cannot write %s\n", x), 1;
  ty_graph *g = bench_mlp_build(&o.mlp, true);
  if (!g) return 1;
  printf("MLP of %d layers x %lld wide, global batch %lld, %d steps (the first not timed), "
         "4 stages on 4 ranks (threads), %ld CPUs online\n",
         o.mlp.layers, (long long)o.mlp.hidden, (long long)o.mlp.batch, o.steps,
         sysconf(_SC_NPROCESSORS_ONLN));
  printf("%-14s %10s %12s %12s %12s %12s\n", "micro-batches", "step ms", "samples/s", "pred. ms",
         "pred. bubble", "ideal bubble");
  rank_run rr[MT_MAX_RANKS];
  ty_train_config c;
  config(&c, &o, x, y, 0);
  int rc = run(g, &c, NULL, o.steps, rr);
  ty_train_config_close(&c);
  if (rc == 0)
    printf("%-14s %10.1f %12.0f %12s %12s %12s\n", "one process", rr[0].step_s * 1e3,
           (double)o.mlp.batch / rr[0].step_s, "-", "-", "-");
  for (int m = 1; rc == 0 && m <= 16 && o.mlp.batch % m == 0; m *= 2) {
    config(&c, &o, x, y, m);
    ty_plan *p = plan_for(g, &c);
    rc = p ? run(g, &c, p, o.steps, rr) : 1;
    double s = rc == 0 ? slowest(rr, 4) : 0;
    if (rc == 0)
      printf("%-14d %10.1f %12.0f %12.2f %11.1f%% %11.1f%%\n", m, s * 1e3, (double)o.mlp.batch / s,
             p->step_s * 1e3, p->bubble * 100, 300.0 / (m + 3));
    ty_plan_destroy(p);
    ty_train_config_close(&c);
  }
  if (rc == 0) rc = recompute_rows(g, &o, x, y, 4);
  ty_graph_destroy(g);
  unlink(x);
  unlink(y);
  return rc;
}
