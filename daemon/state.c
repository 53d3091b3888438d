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

/* ---- the request-id index ------------------------------------------------------------------
 * (submitter's uid, request id) -> job, chained through ty_job.req_next,
 * doubled when it holds more jobs than buckets: a retried SubmitJob finds its
 * job in O(1) among all of history. Only jobs submitted with a request id
 * and a uid the credential proved are in it: a user's ids are theirs alone,
 * and jobs from before authentication (whose user was the client's word)
 * answer no one's retry. */

static bool req_indexed(const ty_job *j) {
  return j->spec.has_uid && j->request_id && j->request_id[0];
}

static uint64_t req_hash(uint32_t uid, const char *rid) {
  uint64_t h = ty_mix64(0xcbf29ce484222325ull ^ uid);
  for (const char *s = rid; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return ty_mix64(h);
}

static void req_link(ty_job **buckets, size_t n, ty_job *j) {
  ty_job **b = &buckets[req_hash(j->spec.uid, j->request_id) & (n - 1)];
  j->req_next = *b;
  *b = j;
}

static void req_index_add(ty_controller *ctl, ty_job *j) {
  if (ctl->n_req_jobs >= ctl->n_req_index) {
    size_t n = ctl->n_req_index ? ctl->n_req_index * 2 : 64;
    ty_job **b = ty_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < ctl->n_req_index; i++)
      for (ty_job *k = ctl->req_index[i], *next; k; k = next) {
        next = k->req_next;
        req_link(b, n, k);
      }
    free(ctl->req_index);
    ctl->req_index = b;
    ctl->n_req_index = n;
  }
  req_link(ctl->req_index, ctl->n_req_index, j);
  ctl->n_req_jobs++;
}

static void req_index_remove(ty_controller *ctl, ty_job *j) {
  if (!ctl->n_req_index || !req_indexed(j)) return;
  ty_job **p = &ctl->req_index[req_hash(j->spec.uid, j->request_id) & (ctl->n_req_index - 1)];
  while (*p && *p != j) p = &(*p)->req_next;
  if (!*p) return;
  *p = j->req_next;
  ctl->n_req_jobs--;
}

ty_job *ty__job_by_request(ty_controller *ctl, uint32_t uid, const char *rid) {
  if (!ctl->n_req_index || !rid[0]) return NULL;
  for (ty_job *j = ctl->req_index[req_hash(uid, rid) & (ctl->n_req_index - 1)]; j; j = j->req_next)
    if (j->spec.uid == uid && strcmp(j->request_id, rid) == 0) return j;
  return NULL;
}

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
  if (req_indexed(j)) req_index_add(ctl, j);
}

void ty__job_remove(ty_controller *ctl, uint64_t id) {
  ty_job *j = ty__job_find(ctl, id);
  if (!j) return;
  size_t i = 0;
  while (ctl->jobs[i] != j)
    i++;
  memmove(&ctl->jobs[i], &ctl->jobs[i + 1], (ctl->n_jobs - i - 1) * sizeof(*ctl->jobs));
  ctl->n_jobs--;
  req_index_remove(ctl, j);
  ty__job_free(j);
}

void ty__job_free(ty_job *j) {
  if (!j) return;
  ty_job_spec_close(&j->spec);
  free(j->blob);
  free(j->plan);
  free(j->reason);
  free(j->request_id);
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
