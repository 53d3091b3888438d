/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The first scheduling policy: strict ordering by (priority desc, submit time
 * asc, id asc), whole-gang first-fit placement, reasons for what stays pending.
 *
 * Invariants:
 *   - A job gets all of its `nodes` slots in one pass or none (gang), so two
 *     gangs that each half-fit never hold half a cluster each and deadlock.
 *   - A node slot gets tasks_per_node * cpus_per_task CPUs, gpus_per_node GPUs
 *     (the lowest free indices, so allocations stay compact and predictable)
 *     and mem_per_node bytes.
 *   - A job that does not fit does not block later jobs (no reservations yet:
 *     the backfill policy adds them behind this same interface).
 *
 * Workload: a pass runs on every submit and task end and once a second; it is
 * O(jobs log jobs + jobs * nodes). The input is never modified: free resources
 * are tracked in a private copy.
 */
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"

typedef struct free_res {
  uint32_t cpus;
  uint64_t gpus;
  uint64_t mem;
} free_res;

typedef struct job_need {
  uint32_t cpus;
  uint32_t gpus;
  uint64_t mem;
} job_need;

static int popcount64(uint64_t v) { return __builtin_popcountll(v); }

static uint64_t gpu_mask(uint32_t total) {
  if (total >= 64) return UINT64_MAX;
  return (UINT64_C(1) << total) - 1;
}

static job_need need_of(const ty_sched_job *j) {
  job_need n;
  uint64_t cpus = (uint64_t)(j->tasks_per_node ? j->tasks_per_node : 1) *
                  (j->cpus_per_task ? j->cpus_per_task : 1);
  n.cpus = cpus > UINT32_MAX ? UINT32_MAX : (uint32_t)cpus;
  n.gpus = j->gpus_per_node;
  n.mem = j->mem_per_node;
  return n;
}

static bool fits(const free_res *f, const job_need *n) {
  return f->cpus >= n->cpus && (uint32_t)popcount64(f->gpus) >= n->gpus && f->mem >= n->mem;
}

/* The n lowest set bits of mask. */
static uint64_t lowest_bits(uint64_t mask, uint32_t n) {
  uint64_t out = 0;
  for (uint32_t i = 0; i < n && mask; i++) {
    uint64_t bit = mask & (~mask + 1);
    out |= bit;
    mask &= ~bit;
  }
  return out;
}

static int job_order(const void *a, const void *b) {
  const ty_sched_job *x = *(const ty_sched_job *const *)a;
  const ty_sched_job *y = *(const ty_sched_job *const *)b;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  if (x->submit_time_ms != y->submit_time_ms) return x->submit_time_ms < y->submit_time_ms ? -1 : 1;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return 0;
}

static void format_need(char *out, size_t len, const ty_sched_job *j, const job_need *n,
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

/* Tries to place job j; on success appends a placement and charges `freeres`. */
static int try_place(const ty_sched_input *in, free_res *freeres, const ty_sched_job *j,
                     uint32_t *picked, ty_sched_output *out, bool *out_placed, size_t *out_have) {
  job_need n = need_of(j);
  uint32_t want = j->nodes ? j->nodes : 1;
  size_t have = 0;
  for (size_t i = 0; i < in->n_nodes; i++) {
    if (!in->nodes[i].schedulable || !fits(&freeres[i], &n)) continue;
    if (have < want) picked[have] = (uint32_t)i;
    have++;
  }
  *out_have = have;
  *out_placed = false;
  if (have < want) return 0;
  ty_sched_slot *slots = calloc(want, sizeof(*slots));
  if (!slots) return TY_ENOMEM;
  for (uint32_t s = 0; s < want; s++) {
    free_res *f = &freeres[picked[s]];
    slots[s].node = picked[s];
    slots[s].gpus = lowest_bits(f->gpus, n.gpus);
    slots[s].cpus = n.cpus;
    slots[s].mem = n.mem;
    f->cpus -= n.cpus;
    f->gpus &= ~slots[s].gpus;
    f->mem -= n.mem;
  }
  ty_sched_placement *p = &out->placements[out->n_placements++];
  p->job_id = j->id;
  p->n_slots = want;
  p->slots = slots;
  *out_placed = true;
  return 0;
}

static void add_pending(ty_sched_output *out, const ty_sched_input *in, const ty_sched_job *j,
                        size_t have) {
  ty_sched_pending *p = &out->pending[out->n_pending++];
  p->job_id = j->id;
  p->position = (uint32_t)out->n_pending;
  size_t up = 0;
  for (size_t i = 0; i < in->n_nodes; i++) up += in->nodes[i].schedulable;
  if (up == 0) {
    snprintf(p->reason, sizeof(p->reason), "Resources: no schedulable nodes (none is UP)");
  } else if (j->gpus_per_node > TY_SCHED_MAX_GPUS) {
    snprintf(p->reason, sizeof(p->reason), "Resources: %u GPUs per node is above the limit of %d",
             j->gpus_per_node, TY_SCHED_MAX_GPUS);
  } else {
    job_need n = need_of(j);
    format_need(p->reason, sizeof(p->reason), j, &n, have);
  }
}

int ty_sched_pass(const ty_sched_input *in, ty_sched_output *out) {
  int rc = TY_ENOMEM;
  memset(out, 0, sizeof(*out));
  size_t nj = in->n_jobs, nn = in->n_nodes;
  const ty_sched_job **order = calloc(nj ? nj : 1, sizeof(*order));
  free_res *freeres = calloc(nn ? nn : 1, sizeof(*freeres));
  uint32_t *picked = NULL;
  uint32_t max_nodes = 1;
  for (size_t i = 0; i < nj; i++)
    if (in->jobs[i].nodes > max_nodes) max_nodes = in->jobs[i].nodes;
  picked = calloc(max_nodes, sizeof(*picked));
  out->placements = calloc(nj ? nj : 1, sizeof(*out->placements));
  out->pending = calloc(nj ? nj : 1, sizeof(*out->pending));
  if (!order || !freeres || !picked || !out->placements || !out->pending) goto fail;

  for (size_t i = 0; i < nn; i++) {
    const ty_sched_node *n = &in->nodes[i];
    freeres[i].cpus = n->cpus_free;
    freeres[i].gpus = n->gpus_free & gpu_mask(n->gpus_total);
    freeres[i].mem = n->mem_free;
  }
  for (size_t i = 0; i < nj; i++) order[i] = &in->jobs[i];
  qsort(order, nj, sizeof(*order), job_order);

  for (size_t k = 0; k < nj; k++) {
    const ty_sched_job *j = order[k];
    bool placed = false;
    size_t have = 0;
    if (j->gpus_per_node <= TY_SCHED_MAX_GPUS) {
      rc = try_place(in, freeres, j, picked, out, &placed, &have);
      if (rc != 0) goto fail;
    }
    if (!placed) add_pending(out, in, j, have);
  }
  rc = 0;
  goto done;
fail:
  ty_sched_output_close(out);
done:
  free(order);
  free(freeres);
  free(picked);
  return rc;
}

void ty_sched_output_close(ty_sched_output *out) {
  if (!out) return;
  for (size_t i = 0; i < out->n_placements; i++) free(out->placements[i].slots);
  free(out->placements);
  free(out->pending);
  memset(out, 0, sizeof(*out));
}

static int refuse(char *reason, size_t len, const char *fmt, unsigned long long a,
                  unsigned long long b) {
  if (reason && len) snprintf(reason, len, fmt, a, b);
  return TY_EINVAL;
}

/* Checks the request against the cluster's shape: each per-node resource
 * against the largest node, then the number of nodes that could each hold one
 * slot against `nodes`. Every known node counts, UP or not, because a DOWN
 * node may come back. With no nodes known there is nothing to check against. */
int ty_sched_check_fits(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes,
                        char *reason, size_t reason_len) {
  if (reason && reason_len) reason[0] = '\0';
  if (job->nodes == 0) {
    if (reason && reason_len) snprintf(reason, reason_len, "resources.nodes: 0 is not allowed");
    return TY_EINVAL;
  }
  if (job->gpus_per_node > TY_SCHED_MAX_GPUS)
    return refuse(reason, reason_len, "resources.gpus_per_node is %llu but at most %llu are supported",
                  job->gpus_per_node, TY_SCHED_MAX_GPUS);
  if (n_nodes == 0) return 0;
  job_need n = need_of(job);
  uint32_t max_cpus = 0, max_gpus = 0;
  uint64_t max_mem = 0;
  size_t can_host = 0;
  for (size_t i = 0; i < n_nodes; i++) {
    const ty_sched_node *nd = &nodes[i];
    uint32_t g = nd->gpus_total > TY_SCHED_MAX_GPUS ? TY_SCHED_MAX_GPUS : nd->gpus_total;
    if (nd->cpus_total > max_cpus) max_cpus = nd->cpus_total;
    if (g > max_gpus) max_gpus = g;
    if (nd->mem_total > max_mem) max_mem = nd->mem_total;
    if (nd->cpus_total >= n.cpus && g >= n.gpus && nd->mem_total >= n.mem) can_host++;
  }
  if (n.gpus > max_gpus)
    return refuse(reason, reason_len, "resources.gpus_per_node is %llu but the largest node has %llu GPUs",
                  n.gpus, max_gpus);
  if (n.cpus > max_cpus)
    return refuse(reason, reason_len,
                  "resources: tasks_per_node * cpus_per_task is %llu CPUs but the largest node has %llu",
                  n.cpus, max_cpus);
  if (n.mem > max_mem)
    return refuse(reason, reason_len, "resources.mem_per_node is %llu bytes but the largest node has %llu",
                  n.mem, max_mem);
  if (can_host < job->nodes)
    return refuse(reason, reason_len, "resources.nodes is %llu but only %llu nodes can hold one slot each",
                  job->nodes, can_host);
  return 0;
}
