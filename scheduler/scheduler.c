/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduling pass: order pending jobs by multifactor priority, hold back
 * what queues, holds and limits forbid, place whole gangs by topology, let
 * blocked jobs of higher tiers preempt, give the first job that still does
 * not fit a reservation and backfill around it (EASY).
 *
 * Invariants:
 *   - A job gets all of its `nodes` slots in one pass or none (gang), so two
 *     gangs that each half-fit never hold half a cluster each and deadlock.
 *   - A node slot gets tasks_per_node * cpus_per_task CPUs, gpus_per_node GPUs
 *     (one NVLink island where possible) and mem_per_node bytes.
 *   - After the reservation is made, a job starts only if its time limit ends
 *     before the reservation's start or it uses only the reserved nodes'
 *     spare: the reserved job is never delayed by a backfilled one.
 *   - The input is never modified: free resources live in the node index.
 *
 * Workload: the controller runs a pass on every submit and task end and once
 * a second with tens to thousands of pending jobs; the trace simulator runs
 * it with 100,000 jobs on 10,000 nodes. Cost: O(J log J) to order, then per
 * job O(GPU buckets x switches) when it cannot fit and about the nodes it
 * scans when it can; the reservation is O(R log R) once per pass.
 */
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

/* ---- ordering --------------------------------------------------------------- */

typedef struct sort_key {
  double total;
  int32_t priority;
  int64_t submit;
  uint64_t id;
  uint32_t ji;
} sort_key;

static int key_cmp(const void *a, const void *b) {
  const sort_key *x = a, *y = b;
  if (x->total != y->total) return x->total > y->total ? -1 : 1;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  if (x->submit != y->submit) return x->submit < y->submit ? -1 : 1;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return 0;
}

/* Highest priority first, then job priority, then FIFO, then id. FIFO mode
 * (the baseline) orders by submit time alone. */
static int sort_jobs(ty__pass *p, size_t n) {
  sort_key *keys = malloc((n ? n : 1) * sizeof(*keys));
  if (!keys) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const ty_sched_job *j = &p->in->jobs[i];
    keys[i] = (sort_key){.total = p->cfg.fifo ? 0 : p->prio[i].total,
                         .priority = p->cfg.fifo ? 0 : j->priority,
                         .submit = j->submit_time_ms, .id = j->id, .ji = (uint32_t)i};
  }
  qsort(keys, n, sizeof(*keys), key_cmp);
  for (size_t i = 0; i < n; i++) p->order[i] = keys[i].ji;
  free(keys);
  return 0;
}

/* ---- set-up ------------------------------------------------------------------- */

static int64_t latest_submit(const ty_sched_input *in) {
  int64_t t = 0;
  for (size_t i = 0; i < in->n_jobs; i++)
    if (in->jobs[i].submit_time_ms > t) t = in->jobs[i].submit_time_ms;
  return t;
}

static void charge_running(ty__pass *p) {
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    int q = ty__queue_index(p->in, rj->queue);
    p->rqi[r] = q;
    if (q < 0) continue;
    p->qs[q].running++;
    for (uint32_t s = 0; s < rj->n_slots; s++)
      p->qs[q].gpus += (uint64_t)__builtin_popcountll(rj->slots[s].gpus);
  }
}

static int pass_init(ty__pass *p, const ty_sched_input *in, ty_sched_output *out) {
  memset(p, 0, sizeof(*p));
  memset(out, 0, sizeof(*out));
  p->in = in;
  p->out = out;
  if (in->config) p->cfg = *in->config;
  else ty_sched_config_default(&p->cfg);
  p->now = in->now_ms ? in->now_ms : latest_submit(in);
  size_t nj = in->n_jobs ? in->n_jobs : 1, nr = in->n_running ? in->n_running : 1;
  size_t nn = in->n_nodes ? in->n_nodes : 1;
  p->max_nodes = 1;
  for (size_t i = 0; i < in->n_jobs; i++)
    if (in->jobs[i].nodes > p->max_nodes) p->max_nodes = in->jobs[i].nodes;
  p->qi = calloc(nj, sizeof(*p->qi));
  p->rqi = calloc(nr, sizeof(*p->rqi));
  p->prio = calloc(nj, sizeof(*p->prio));
  p->order = calloc(nj, sizeof(*p->order));
  p->placed_ji = calloc(nj, sizeof(*p->placed_ji));
  p->qs = calloc(in->n_queues + 1, sizeof(*p->qs));
  p->picked = calloc(p->max_nodes > nn ? p->max_nodes : nn, sizeof(*p->picked));
  p->victim = calloc(nr, sizeof(*p->victim));
  p->claimed = calloc(nn, sizeof(*p->claimed));
  out->placements = calloc(nj, sizeof(*out->placements));
  out->pending = calloc(nj, sizeof(*out->pending));
  out->preemptions = calloc(nr, sizeof(*out->preemptions));
  if (!p->qi || !p->rqi || !p->prio || !p->order || !p->placed_ji || !p->qs || !p->picked || !p->victim ||
      !p->claimed || !out->placements || !out->pending || !out->preemptions)
    return TY_ENOMEM;
  int rc = ty__idx_init(&p->idx, in->nodes, in->n_nodes);
  if (rc == 0) rc = ty__fs_create(in, &p->cfg, &p->fs);
  if (rc != 0) return rc;
  charge_running(p);
  for (size_t i = 0; i < in->n_jobs; i++) {
    p->qi[i] = ty__queue_index(in, in->jobs[i].queue);
    ty__priority(in, &p->cfg, p->fs, &in->jobs[i], p->qi[i], p->now, &p->prio[i]);
    p->order[i] = (uint32_t)i;
  }
  return sort_jobs(p, in->n_jobs);
}

static void pass_close(ty__pass *p) {
  ty__idx_close(&p->idx);
  ty__fs_destroy(p->fs);
  free(p->qi);
  free(p->rqi);
  free(p->prio);
  free(p->order);
  free(p->placed_ji);
  free(p->qs);
  free(p->picked);
  free(p->victim);
  free(p->claimed);
  free(p->work);
}

/* ---- reasons ------------------------------------------------------------------- */

static ty_sched_pending *add_pending(ty__pass *p, size_t ji) {
  ty_sched_pending *pd = &p->out->pending[p->out->n_pending++];
  pd->job_id = p->in->jobs[ji].id;
  pd->position = (uint32_t)p->out->n_pending;
  pd->priority = p->prio[ji].total;
  return pd;
}

static void format_need(char *out, size_t len, const ty_sched_job *j, const ty__need *n,
                        size_t have) {
  int w = snprintf(out, len, "Resources: needs %u node%s with %u free CPU%s", j->nodes,
                   j->nodes == 1 ? "" : "s", n->cpus, n->cpus == 1 ? "" : "s");
  if (w < 0 || (size_t)w >= len) return;
  if (n->gpus) w += snprintf(out + w, len - (size_t)w, ", %u GPU%s", n->gpus, n->gpus == 1 ? "" : "s");
  if (w < 0 || (size_t)w >= len) return;
  if (n->mem) w += snprintf(out + w, len - (size_t)w, ", %llu MiB memory",
                            (unsigned long long)((n->mem + (1u << 20) - 1) >> 20));
  if (w < 0 || (size_t)w >= len) return;
  snprintf(out + w, len - (size_t)w, "; %zu %s", have, have == 1 ? "has" : "have");
}

static uint32_t job_gpus(const ty_sched_job *j) { return (j->nodes ? j->nodes : 1) * j->gpus_per_node; }

/* A reason when the job's queue or an operator holds it back, else NULL. */
static const char *held_back(ty__pass *p, size_t ji, char *buf, size_t len) {
  const ty_sched_job *j = &p->in->jobs[ji];
  if (j->held) return "Held: by an operator (trainctl job release)";
  int q = p->qi[ji];
  if (q < 0) return NULL;
  const ty_sched_queue *qu = &p->in->queues[q];
  if (qu->state == TY_SCHED_QUEUE_PAUSED) {
    snprintf(buf, len, "QueuePaused: queue %s is paused", qu->name);
    return buf;
  }
  if (qu->max_running && p->qs[q].running >= qu->max_running) {
    snprintf(buf, len, "QueueLimit: queue %s runs %u jobs, max_running is %u", qu->name,
             p->qs[q].running, qu->max_running);
    return buf;
  }
  if (qu->max_gpus && p->qs[q].gpus + job_gpus(j) > qu->max_gpus) {
    snprintf(buf, len, "QueueLimit: queue %s uses %llu GPUs, +%u exceeds max_gpus %u", qu->name,
             (unsigned long long)p->qs[q].gpus, job_gpus(j), qu->max_gpus);
    return buf;
  }
  if (qu->max_gpus_per_user && job_gpus(j)) {
    uint64_t mine = 0;
    for (size_t r = 0; r < p->in->n_running; r++) {
      const ty_sched_running *rj = &p->in->running[r];
      if (p->rqi[r] != q || !rj->user || !j->user || strcmp(rj->user, j->user) != 0) continue;
      for (uint32_t s = 0; s < rj->n_slots; s++)
        mine += (uint64_t)__builtin_popcountll(rj->slots[s].gpus);
    }
    for (size_t k = 0; k < p->out->n_placements; k++) {
      const ty_sched_job *pj = &p->in->jobs[p->placed_ji[k]];
      if (p->qi[p->placed_ji[k]] == q && pj->user && strcmp(pj->user, j->user) == 0)
        mine += job_gpus(pj);
    }
    if (mine + job_gpus(j) > qu->max_gpus_per_user) {
      snprintf(buf, len, "QueueLimit: user %s uses %llu GPUs in queue %s, +%u exceeds "
               "max_gpus_per_user %u", j->user, (unsigned long long)mine, qu->name,
               job_gpus(j), qu->max_gpus_per_user);
      return buf;
    }
  }
  return NULL;
}

/* ---- placing ----------------------------------------------------------------------- */

static uint32_t limit_of(const ty__pass *p, size_t ji) {
  const ty_sched_job *j = &p->in->jobs[ji];
  uint32_t t = j->time_limit_s;
  if (!t && p->qi[ji] >= 0) t = p->in->queues[p->qi[ji]].default_time_s;
  return t;
}

static int place(ty__pass *p, size_t ji, const ty__need *n, uint32_t want, bool backfilled) {
  ty_sched_slot *slots = calloc(want, sizeof(*slots));
  if (!slots) return TY_ENOMEM;
  for (uint32_t s = 0; s < want; s++) {
    uint32_t i = p->picked[s];
    ty__res avail = ty__idx_avail(&p->idx, i, backfilled);
    ty__res f = p->idx.free[i];
    slots[s] = (ty_sched_slot){.node = i, .cpus = n->cpus, .mem = n->mem,
                               .gpus = ty__pick_gpus(&p->in->nodes[i], avail.gpus, n->gpus)};
    f.cpus -= n->cpus;
    f.gpus &= ~slots[s].gpus;
    f.mem -= n->mem;
    ty__idx_set(&p->idx, i, &f);
    if (backfilled && p->idx.cap && p->idx.cap[i].on) {
      ty__res *sp = &p->idx.cap[i].spare;
      sp->cpus -= n->cpus;
      sp->gpus &= ~slots[s].gpus;
      sp->mem -= n->mem;
    }
  }
  p->placed_ji[p->out->n_placements] = (uint32_t)ji;
  ty_sched_placement *pl = &p->out->placements[p->out->n_placements++];
  *pl = (ty_sched_placement){.job_id = p->in->jobs[ji].id, .n_slots = want, .slots = slots,
                             .time_limit_s = limit_of(p, ji), .backfilled = p->resv};
  int q = p->qi[ji];
  if (q >= 0) {
    p->qs[q].running++;
    p->qs[q].gpus += job_gpus(&p->in->jobs[ji]);
  }
  return 0;
}

/* Whether a job started now would still run at the reservation's start. */
static bool outlasts_reservation(const ty__pass *p, size_t ji) {
  if (!p->resv) return false;
  uint32_t t = limit_of(p, ji);
  if (!t) t = p->cfg.unknown_runtime_s;
  return p->now + (int64_t)t * 1000 > p->resv_t;
}

static void resv_reason(const ty__pass *p, char *buf, size_t len) {
  snprintf(buf, len, "Priority: would delay job %llu, reserved to start in %lld s",
           (unsigned long long)p->resv_job, (long long)((p->resv_t - p->now + 999) / 1000));
}

/* Handles one eligible job; returns 0 or TY_ENOMEM. */
static int try_job(ty__pass *p, size_t ji, bool *out_blocked) {
  const ty_sched_job *j = &p->in->jobs[ji];
  ty__need n = ty__need_of(j);
  uint32_t want = j->nodes ? j->nodes : 1, have = 0;
  *out_blocked = false;
  if (n.gpus > TY_SCHED_MAX_GPUS) {
    ty_sched_pending *pd = add_pending(p, ji);
    snprintf(pd->reason, sizeof(pd->reason), "Resources: %u GPUs per node is above the limit of %d",
             n.gpus, TY_SCHED_MAX_GPUS);
    return 0;
  }
  bool caps = outlasts_reservation(p, ji);
  if (ty__idx_find(&p->idx, &n, want, caps, p->picked, &have)) return place(p, ji, &n, want, caps);
  uint32_t have_free = have;
  bool fits_uncapped = caps && ty__idx_find(&p->idx, &n, want, false, p->picked, &have_free);
  *out_blocked = true;
  if (!fits_uncapped && !p->cfg.fifo && p->cfg.preemption && ty__preempt(p, ji, &n, want)) {
    ty_sched_pending *pd = add_pending(p, ji);
    snprintf(pd->reason, sizeof(pd->reason), "Preempting: waiting for preempted jobs to exit");
    return 0;
  }
  ty_sched_pending *pd = add_pending(p, ji);
  if (fits_uncapped) {
    resv_reason(p, pd->reason, sizeof(pd->reason));
    return 0;
  }
  format_need(pd->reason, sizeof(pd->reason), j, &n, have_free);
  int64_t t;
  if (!p->resv && !p->cfg.fifo && p->cfg.backfill && ty__reserve(p, j, &n, want, true, &t)) {
    pd->reserved = true;
    pd->est_start_ms = t;
    size_t l = strlen(pd->reason);
    snprintf(pd->reason + l, sizeof(pd->reason) - l, "; reserved to start in %lld s",
             (long long)((t - p->now + 999) / 1000));
  }
  return 0;
}

static int run_pass(ty__pass *p) {
  const ty_sched_input *in = p->in;
  size_t up = 0, tried_after_resv = 0;
  for (size_t i = 0; i < in->n_nodes; i++) up += in->nodes[i].schedulable;
  uint64_t fifo_block = 0;
  for (size_t k = 0; k < in->n_jobs; k++) {
    size_t ji = p->order[k];
    char buf[160];
    const char *why = held_back(p, ji, buf, sizeof(buf));
    if (!why && up == 0) why = "Resources: no schedulable nodes (all are down or draining)";
    if (!why && fifo_block) {
      snprintf(buf, sizeof(buf), "Priority: waiting behind job %llu (FIFO)",
               (unsigned long long)fifo_block);
      why = buf;
    }
    if (!why && p->resv && p->cfg.backfill_depth && ++tried_after_resv > p->cfg.backfill_depth) {
      resv_reason(p, buf, sizeof(buf));
      why = buf;
    }
    if (why) {
      ty_sched_pending *pd = add_pending(p, ji);
      snprintf(pd->reason, sizeof(pd->reason), "%s", why);
      continue;
    }
    bool blocked;
    int rc = try_job(p, ji, &blocked);
    if (rc != 0) return rc;
    if (blocked && p->cfg.fifo) fifo_block = in->jobs[ji].id;
  }
  p->out->fragmentation = 0;
  return 0;
}

/* Fragmentation of the index's free resources after the pass (as
 * ty_sched_fragmentation, without copying the nodes). */
static double index_fragmentation(const ty__pass *p) {
  bool gpus = false;
  for (size_t i = 0; i < p->in->n_nodes && !gpus; i++) gpus = p->in->nodes[i].gpus_total > 0;
  double free_all = 0, free_idle = 0;
  for (size_t i = 0; i < p->in->n_nodes; i++) {
    if (!p->idx.ok[i] || p->claimed[i]) continue;
    const ty_sched_node *nd = &p->in->nodes[i];
    double f = gpus ? __builtin_popcountll(p->idx.free[i].gpus) : p->idx.free[i].cpus;
    double total = gpus ? nd->gpus_total : nd->cpus_total;
    free_all += f;
    if (f >= total && total > 0) free_idle += f;
  }
  return free_all > 0 ? 1.0 - free_idle / free_all : 0;
}

int ty__pass_run(ty__pass *p, const ty_sched_input *in, ty_sched_output *out) {
  int rc = pass_init(p, in, out);
  if (rc == 0) rc = run_pass(p);
  if (rc == 0) out->fragmentation = index_fragmentation(p);
  return rc;
}

void ty__pass_close(ty__pass *p) { pass_close(p); }

int ty_sched_pass(const ty_sched_input *in, ty_sched_output *out) {
  ty__pass p;
  int rc = ty__pass_run(&p, in, out);
  pass_close(&p);
  if (rc != 0) ty_sched_output_close(out);
  return rc;
}

void ty_sched_output_close(ty_sched_output *out) {
  if (!out) return;
  for (size_t i = 0; i < out->n_placements; i++) free(out->placements[i].slots);
  free(out->placements);
  free(out->pending);
  free(out->preemptions);
  memset(out, 0, sizeof(*out));
}

double ty_sched_fragmentation(const ty_sched_node *nodes, size_t n) {
  uint64_t gpus = 0;
  for (size_t i = 0; i < n; i++) gpus += nodes[i].gpus_total;
  double free_all = 0, free_idle = 0;
  for (size_t i = 0; i < n; i++) {
    const ty_sched_node *nd = &nodes[i];
    if (!nd->schedulable) continue;
    double f, total;
    if (gpus) {
      f = __builtin_popcountll(nd->gpus_free & ty__gpu_mask(nd->gpus_total));
      total = nd->gpus_total;
    } else {
      f = nd->cpus_free;
      total = nd->cpus_total;
    }
    free_all += f;
    if (f >= total && total > 0) free_idle += f;
  }
  return free_all > 0 ? 1.0 - free_idle / free_all : 0;
}
