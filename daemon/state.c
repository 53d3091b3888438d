/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's in-memory tables and the two triggers everything else
 * pulls: lookups and indexes of jobs (by id), nodes (by name and by
 * connection), queues and fair-share usage; ty__commit, which hands a txn
 * to the group-commit writer; and ty__sched_request, which asks for a
 * scheduling pass. Every other daemon file calls down to these and nothing
 * here calls up, so the controller's files form no call circle (the pass
 * itself runs from the async callback controller.c installs).
 *
 * Workload: thousands of jobs in memory (all of history, for listings),
 * tens to thousands of nodes. Jobs are sorted by id (ids only grow), so a
 * lookup is a binary search; nodes and queues are few enough to scan.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

/* ---- jobs --------------------------------------------------------------------------------- */

ty_job *ty__job_find(ty_controller *ctl, uint64_t id) {
  size_t lo = 0, hi = ctl->n_jobs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    uint64_t mid_id = ctl->jobs[mid]->id;
    if (mid_id == id) return ctl->jobs[mid];
    if (mid_id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

void ty__job_add(ty_controller *ctl, ty_job *j) {
  if (ctl->n_jobs == ctl->cap_jobs) {
    ctl->cap_jobs = ctl->cap_jobs ? ctl->cap_jobs * 2 : 64;
    ctl->jobs = ty_xrealloc(ctl->jobs, ctl->cap_jobs * sizeof(*ctl->jobs));
  }
  ctl->jobs[ctl->n_jobs++] = j; /* ids are handed out in increasing order */
  if (j->id >= ctl->next_id) ctl->next_id = j->id + 1;
}

void ty__job_remove(ty_controller *ctl, uint64_t id) {
  ty_job *j = ty__job_find(ctl, id);
  if (!j) return;
  size_t i = 0;
  while (ctl->jobs[i] != j)
    i++;
  memmove(&ctl->jobs[i], &ctl->jobs[i + 1], (ctl->n_jobs - i - 1) * sizeof(*ctl->jobs));
  ctl->n_jobs--;
  ty__job_free(j);
}

void ty__job_free(ty_job *j) {
  if (!j) return;
  ty_job_spec_close(&j->spec);
  free(j->blob);
  free(j->plan);
  free(j->reason);
  for (uint32_t i = 0; i < j->n_ranks; i++)
    free(j->ranks[i].reason);
  free(j->ranks);
  free(j->slots);
  free(j);
}

/* ---- nodes -------------------------------------------------------------------------------- */

ty_cluster_node *ty__node_find(ty_controller *ctl, const char *name) {
  for (size_t i = 0; i < ctl->n_nodes; i++)
    if (strcmp(ctl->nodes[i]->name, name) == 0) return ctl->nodes[i];
  return NULL;
}

ty_cluster_node *ty__node_by_conn(ty_controller *ctl, const ty_rpc_conn *c) {
  for (size_t i = 0; i < ctl->n_nodes; i++)
    if (ctl->nodes[i]->conn == c) return ctl->nodes[i];
  return NULL;
}

void ty__node_add(ty_controller *ctl, ty_cluster_node *n) {
  ctl->nodes = ty_xrealloc(ctl->nodes, (ctl->n_nodes + 1) * sizeof(*ctl->nodes));
  ctl->nodes[ctl->n_nodes++] = n;
}

void ty__node_free(ty_cluster_node *n) {
  if (!n) return;
  free(n->name);
  free(n->info);
  free(n->io_addr);
  free(n->host);
  free(n->reason);
  free(n);
}

char *ty__host_of(const char *addr) {
  const char *colon = strrchr(addr, ':');
  size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
  char *h = ty_xmalloc(n + 1);
  memcpy(h, addr, n);
  h[n] = '\0';
  return h;
}

void ty__node_save(const ty_cluster_node *n, ty_txn *t) {
  ty_node_row row = {.name = n->name,
                     .state = n->state,
                     .cpus = n->cpus,
                     .memory = n->memory,
                     .gpus = n->info,
                     .gpus_len = n->info_len,
                     .io_addr = n->io_addr,
                     .last_seen_ms = n->last_seen_ms,
                     .reason = n->reason,
                     .drain = n->drain};
  ty_txn_upsert_node(t, &row);
}

void ty__node_persist(ty_controller *ctl, ty_cluster_node *n) {
  ty_txn *t = ty_txn_create();
  ty__node_save(n, t);
  ty__commit(ctl, t, NULL, NULL);
}

/* ---- queues and usage --------------------------------------------------------------------- */

ty_queue_info *ty__queue_find(ty_controller *ctl, const char *name) {
  for (size_t i = 0; i < ctl->n_queues; i++)
    if (strcmp(ctl->queues[i].name, name) == 0) return &ctl->queues[i];
  return NULL;
}

ty_usage *ty__usage_get(ty_controller *ctl, const char *user, const char *queue) {
  for (size_t i = 0; i < ctl->n_usage; i++)
    if (strcmp(ctl->usage[i].user, user) == 0 && strcmp(ctl->usage[i].queue, queue) == 0)
      return &ctl->usage[i];
  ctl->usage = ty_xrealloc(ctl->usage, (ctl->n_usage + 1) * sizeof(*ctl->usage));
  ty_usage *u = &ctl->usage[ctl->n_usage++];
  *u = (ty_usage){.user = ty_strdup(user), .queue = ty_strdup(queue)};
  return u;
}

/* ---- triggers ----------------------------------------------------------------------------- */

void ty__commit(ty_controller *ctl, ty_txn *txn, ty_commit_cb cb, void *ud) {
  if (ctl->stopping || !ctl->commit) {
    ty_txn_destroy(txn);
    if (cb) cb(TY_ECLOSED, ud);
    return;
  }
  ty_committer_submit(ctl->commit, txn, cb, ud);
}

/* Coalesces requests: many submits in one loop iteration cost one pass. */
void ty__sched_request(ty_controller *ctl) {
  if (ctl->sched_wanted || ctl->stopping) return;
  ctl->sched_wanted = true;
  uv_async_send(&ctl->sched_async);
}
