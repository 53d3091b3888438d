/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for passes run one after another and side by side: a pass
 * keeps its scratch memory for the next one (scheduler/arena.c), so passes
 * of different sizes in any order, and passes on several threads at once,
 * must decide exactly what a first pass on the same input decides. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/scheduler.h"

/* A cluster of n_nodes x 8 GPUs (32 nodes a switch), a third of it busy
 * with running jobs, and n_jobs pending jobs of mixed shapes: enough that
 * the pass reserves, backfills and refuses. Deterministic per seed. */
typedef struct trace {
  ty_sched_node *nodes;
  ty_sched_job *jobs;
  ty_sched_running *running;
  ty_sched_slot *slots;
  ty_sched_queue queues[2];
  ty_sched_config cfg;
  ty_sched_input in;
} trace;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static const char *const users[] = {"ann", "bob", "cyd", "dan"};

static void trace_make(trace *t, size_t n_nodes, size_t n_jobs, uint64_t seed) {
  memset(t, 0, sizeof(*t));
  uint64_t s = seed * 2654435761u + 1;
  t->nodes = calloc(n_nodes, sizeof(*t->nodes));
  t->jobs = calloc(n_jobs, sizeof(*t->jobs));
  t->running = calloc(n_nodes, sizeof(*t->running));
  t->slots = calloc(n_nodes, sizeof(*t->slots));
  cr_assert(t->nodes && t->jobs && t->running && t->slots);
  size_t nr = 0;
  for (size_t i = 0; i < n_nodes; i++) {
    ty_sched_node *n = &t->nodes[i];
    *n = (ty_sched_node){.name = "n",
                         .schedulable = i % 97 != 5,
                         .cpus_total = 64,
                         .cpus_free = 64,
                         .gpus_total = 8,
                         .gpus_free = 0xff,
                         .mem_total = 1ull << 40,
                         .mem_free = 1ull << 40,
                         .switch_id = (uint32_t)(i / 32)};
    for (int g = 0; g < 8; g++)
      n->gpu_island[g] = (uint8_t)(g / 4);
    if (i % 3 != 0) continue;
    uint64_t gpus = (rnd(&s) % 2) ? 0x0f : 0xff; /* half or all of the node */
    t->slots[nr] = (ty_sched_slot){
        .node = (uint32_t)i, .cpus = gpus == 0xff ? 64 : 32, .gpus = gpus, .mem = 0};
    n->gpus_free &= ~gpus;
    n->cpus_free -= t->slots[nr].cpus;
    t->running[nr] = (ty_sched_running){.id = 1000000 + nr,
                                        .queue = "batch",
                                        .user = users[nr % 4],
                                        .start_time_ms = 1000,
                                        .time_limit_s = (uint32_t)(600 + rnd(&s) % 7200),
                                        .slots = &t->slots[nr],
                                        .n_slots = 1};
    nr++;
  }
  static const uint32_t gpn[] = {1, 2, 4, 8, 8, 8};
  for (size_t k = 0; k < n_jobs; k++) {
    uint32_t g = gpn[rnd(&s) % 6];
    uint32_t nodes = g == 8 ? (uint32_t)(1u << (rnd(&s) % 5)) : 1;
    t->jobs[k] = (ty_sched_job){.id = k + 1,
                                .queue = k % 2 ? "prod" : "batch",
                                .user = users[rnd(&s) % 4],
                                .priority = (int32_t)(rnd(&s) % 21) - 10,
                                .submit_time_ms = (int64_t)(rnd(&s) % 100000),
                                .nodes = nodes,
                                .tasks_per_node = g,
                                .cpus_per_task = 8,
                                .gpus_per_node = g,
                                .time_limit_s = (uint32_t)(600 + rnd(&s) % 86400)};
  }
  t->queues[0] = (ty_sched_queue){.name = "prod", .tier = 1, .share = 3};
  t->queues[1] = (ty_sched_queue){.name = "batch", .tier = 0, .share = 1};
  ty_sched_config_default(&t->cfg);
  t->cfg.preemption = false;
  t->in = (ty_sched_input){.jobs = t->jobs,
                           .n_jobs = n_jobs,
                           .nodes = t->nodes,
                           .n_nodes = n_nodes,
                           .queues = t->queues,
                           .n_queues = 2,
                           .running = t->running,
                           .n_running = nr,
                           .config = &t->cfg,
                           .now_ms = 200000};
}

static void trace_free(trace *t) {
  free(t->nodes);
  free(t->jobs);
  free(t->running);
  free(t->slots);
}

/* Whether two outputs decide the same: placements (nodes, GPUs) and every
 * pending job's reason, estimate and reservation. */
static bool same(const ty_sched_output *a, const ty_sched_output *b) {
  if (a->n_placements != b->n_placements || a->n_pending != b->n_pending) return false;
  for (size_t k = 0; k < a->n_placements; k++) {
    const ty_sched_placement *x = &a->placements[k], *y = &b->placements[k];
    if (x->job_id != y->job_id || x->n_slots != y->n_slots || x->backfilled != y->backfilled)
      return false;
    if (memcmp(x->slots, y->slots, x->n_slots * sizeof(*x->slots)) != 0) return false;
  }
  for (size_t k = 0; k < a->n_pending; k++) {
    const ty_sched_pending *x = &a->pending[k], *y = &b->pending[k];
    if (x->job_id != y->job_id || x->wait != y->wait || x->reserved != y->reserved ||
        x->est_start_ms != y->est_start_ms || strcmp(x->reason, y->reason) != 0)
      return false;
  }
  return true;
}

/* Small, large (more scratch than the small one left), then large and
 * small by turns: each pass equals the first of its size, whatever the
 * pass before it left behind. */
Test(repeat, passes_of_any_size_in_any_order_decide_the_same) {
  trace big, small;
  trace_make(&big, 2000, 3000, 1);
  trace_make(&small, 40, 30, 2);
  ty_sched_output first_big, first_small, out;
  cr_assert_eq(ty_sched_pass(&small.in, &first_small), 0); /* then one that outgrows it */
  cr_assert_eq(ty_sched_pass(&big.in, &first_big), 0);
  cr_assert_gt(first_big.n_placements, 0u);
  bool reserved = false;
  for (size_t k = 0; k < first_big.n_pending; k++)
    reserved |= first_big.pending[k].reserved;
  cr_assert(reserved, "the big trace makes a reservation");
  for (int round = 0; round < 3; round++) {
    cr_assert_eq(ty_sched_pass(&big.in, &out), 0);
    cr_assert(same(&out, &first_big), "big pass %d differs from the first", round);
    ty_sched_output_close(&out);
    cr_assert_eq(ty_sched_pass(&small.in, &out), 0);
    cr_assert(same(&out, &first_small), "small pass %d differs from the first", round);
    ty_sched_output_close(&out);
  }
  ty_sched_output_close(&first_big);
  ty_sched_output_close(&first_small);
  trace_free(&big);
  trace_free(&small);
}

typedef struct worker {
  const trace *t;
  const ty_sched_output *want;
  int passes, differ;
} worker;

static void *run_passes(void *arg) {
  worker *w = arg;
  for (int i = 0; i < w->passes; i++) {
    ty_sched_output out;
    if (ty_sched_pass(&w->t->in, &out) != 0 || !same(&out, w->want)) w->differ++;
    ty_sched_output_close(&out);
  }
  return NULL;
}

/* Passes on four threads at once (two traces) each decide what a lone
 * pass decides: no two share scratch memory. */
Test(repeat, passes_on_several_threads_decide_the_same) {
  trace t[2];
  trace_make(&t[0], 600, 800, 3);
  trace_make(&t[1], 64, 100, 4);
  ty_sched_output want[2];
  for (int k = 0; k < 2; k++)
    cr_assert_eq(ty_sched_pass(&t[k].in, &want[k]), 0);
  worker w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){.t = &t[i % 2], .want = &want[i % 2], .passes = 6};
    cr_assert_eq(pthread_create(&th[i], NULL, run_passes, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(w[i].differ, 0, "thread %d: %d passes differ", i, w[i].differ);
  }
  for (int k = 0; k < 2; k++) {
    ty_sched_output_close(&want[k]);
    trace_free(&t[k]);
  }
}
