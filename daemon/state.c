/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's in-memory tables and the two triggers everything else
 * pulls: lookups and indexes of jobs (by id), nodes (by name and by
 * connection), queues and fair-share usage; ty__commit, which hands a txn
 * to the group-commit writer (and, when it was not stored, puts the array
 * elements whose rows it inserted back in their array's record); and ty__sched_request, which asks
 * for a scheduling pass. Every other daemon file calls down to these and nothing here calls up, so
 * the controller's files form no call circle (the pass itself runs from the async callback
 * controller.c installs).
 *
 * Jobs in memory are the live set (not ended, or ended with ranks still to
 * report), sorted by id (ids only grow, so a lookup is a binary search and
 * a submit an append), and a cache of finished jobs, by id and least
 * recently used last. The tick's sweep moves ended jobs from the one to
 * the other and trims the cache to --job-cache jobs used within
 * --min-job-age; a finished job not in memory is read back from the store
 * when a request names it. So memory, the tick, the pass and listings of
 * live jobs follow active work, not history.
 *
 * Workload: thousands of live jobs, millions in the store; tens to
 * thousands of nodes; nodes and queues are few enough to scan.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* ---- jobs: the live set ------------------------------------------------------------ */

/* ---- the request-id index ------------------------------------------------------------------
 * (submitter's uid, request id) -> job, chained through ty_job.req_next,
 * doubled when it holds more jobs than buckets: a retried SubmitJob finds its
 * job in O(1) among the live set (the store's jobs_by_request index answers
 * for the jobs that left it). Only jobs submitted with a request id
 * and a uid the credential proved are in it: a user's ids are theirs alone,
 * and jobs from before authentication (whose user was the client's word)
 * answer no one's retry. */

static bool req_indexed(const ty_job *j) {
  return j->spec.has_uid && j->request_id && j->request_id[0];
}

static uint64_t req_hash(uint32_t uid, const char *rid) {
  uint64_t h = ty_mix64(0xcbf29ce484222325ull ^ uid);
  for (const char *s = rid; *s; s++)
    h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
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
  while (*p && *p != j)
    p = &(*p)->req_next;
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

/* ---- live jobs per user ----------------------------------------------------------------------
 * A count per submitter's uid of its jobs in the live set that have not
 * ended, changed exactly where a job enters the set (ty__job_add: a submit,
 * the load at start, a requeue of an ended job), leaves it (ty__job_remove,
 * the sweep) and where its state changes (ty__user_jobs_state: it ends, or
 * is requeued), so a submit checks --max-user-jobs in O(1). A job counts no
 * more once it ended (cancelled), not only once its end is durable and the
 * sweep moves it out: 100,000 cancelled elements would otherwise count for
 * a minute. Jobs stored before authentication (no uid) are not counted.
 * Users are few: one node each, freed at zero. */

typedef struct user_count {
  ty_id_node node; /* by uid */
  uint32_t n;
} user_count;

static void user_jobs_change(ty_controller *ctl, const ty_job *j, int delta) {
  if (!j->spec.has_uid) return;
  ty_id_node *n = ty_idmap_get(&ctl->user_jobs, j->spec.uid);
  user_count *u = n ? container_of(n, user_count, node) : NULL;
  if (!u && delta > 0) {
    u = ty_xcalloc(1, sizeof *u);
    ty__idmap_xput(&ctl->user_jobs, &u->node, j->spec.uid);
  }
  if (!u) return;
  u->n = delta > 0 ? u->n + 1 : u->n ? u->n - 1 : 0;
  if (u->n == 0) {
    ty_idmap_del(&ctl->user_jobs, j->spec.uid);
    free(u);
  }
}

/* j counts for its user while it is live and has not ended (live: whether
 * it is in the live set now). */
static void user_count_sync(ty_controller *ctl, ty_job *j, bool live) {
  bool want = live && !ty_job_state_terminal(j->state);
  if (want == j->user_counted) return;
  user_jobs_change(ctl, j, want ? +1 : -1);
  j->user_counted = want;
}

void ty__user_jobs_state(ty_controller *ctl, ty_job *j) {
  user_count_sync(ctl, j, !j->cached);
}

uint32_t ty__user_live_jobs(const ty_controller *ctl, uint32_t uid) {
  ty_id_node *n = ty_idmap_get(&ctl->user_jobs, uid);
  return n ? container_of(n, user_count, node)->n : 0;
}

void ty__user_jobs_close(ty_controller *ctl) {
  for (ty_id_node *n; (n = ty_idmap_pop(&ctl->user_jobs));)
    free(container_of(n, user_count, node));
  ty_idmap_close(&ctl->user_jobs);
}

static ty_job *live_find(const ty_controller *ctl, uint64_t id) {
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

size_t ty__live_between(const ty_controller *ctl, uint64_t lo, uint64_t hi, size_t *at) {
  size_t a = 0, b = ctl->n_jobs;
  while (a < b) { /* the first with an id >= lo */
    size_t mid = a + (b - a) / 2;
    if (ctl->jobs[mid]->id < lo)
      a = mid + 1;
    else
      b = mid;
  }
  *at = a;
  size_t n = 0;
  while (a + n < ctl->n_jobs && ctl->jobs[a + n]->id < hi)
    n++;
  return n;
}

void ty__job_add(ty_controller *ctl, ty_job *j) {
  if (ctl->n_jobs == ctl->cap_jobs) {
    ctl->cap_jobs = ctl->cap_jobs ? ctl->cap_jobs * 2 : 64;
    ctl->jobs = ty_xrealloc(ctl->jobs, ctl->cap_jobs * sizeof(*ctl->jobs));
  }
  /* Ids are handed out in increasing order; a finished job requeued from
   * the store comes back into its place. */
  size_t i = ctl->n_jobs;
  while (i > 0 && ctl->jobs[i - 1]->id > j->id)
    i--;
  memmove(&ctl->jobs[i + 1], &ctl->jobs[i], (ctl->n_jobs - i) * sizeof(*ctl->jobs));
  ctl->jobs[i] = j;
  ctl->n_jobs++;
  user_count_sync(ctl, j, true);
  if (j->id >= ctl->next_id) ctl->next_id = j->id + 1;
  ctl->ls_gen++;
  if (req_indexed(j)) req_index_add(ctl, j);
}

void ty__job_remove(ty_controller *ctl, uint64_t id) {
  ty_job *j = live_find(ctl, id);
  if (!j) return;
  size_t i = 0;
  while (ctl->jobs[i] != j)
    i++;
  memmove(&ctl->jobs[i], &ctl->jobs[i + 1], (ctl->n_jobs - i - 1) * sizeof(*ctl->jobs));
  ctl->n_jobs--;
  ctl->ls_gen++;
  user_count_sync(ctl, j, false);
  req_index_remove(ctl, j);
  ty__job_free(j);
}

void ty__job_free(ty_job *j) {
  if (!j) return;
  ty_job_spec_close(&j->spec);
  free(j->blob);
  free(j->plan);
  free(j->graph_saved);
  free(j->reason);
  free(j->request_id);
  for (uint32_t i = 0; i < j->n_ranks; i++)
    free(j->ranks[i].reason);
  free(j->ranks);
  free(j->slots);
  free(j->deps);
  free(j->dep_reason);
  free(j->held_by);
  free(j->model_file);
  free(j->nodes_csv);
  free(j->req_list);
  free(j->exc_list);
  for (size_t v = 0; v < TY_ARRAY_LEN(j->info); v++)
    ty_buf_close(&j->info[v]);
  free(j);
}

void ty__job_dirty(ty_controller *ctl, ty_job *j) {
  memset(j->info_ok, 0, sizeof(j->info_ok));
  j->changed_gen = ++ctl->ls_gen;
}

/* ---- jobs: the finished cache -------------------------------------------------------- */

static void lru_unlink(ty_controller *ctl, ty_job *j) {
  if (j->lru_prev)
    j->lru_prev->lru_next = j->lru_next;
  else
    ctl->lru_head = j->lru_next;
  if (j->lru_next)
    j->lru_next->lru_prev = j->lru_prev;
  else
    ctl->lru_tail = j->lru_prev;
  j->lru_prev = j->lru_next = NULL;
}

static void lru_push(ty_controller *ctl, ty_job *j) {
  j->lru_prev = NULL;
  j->lru_next = ctl->lru_head;
  if (ctl->lru_head) ctl->lru_head->lru_prev = j;
  ctl->lru_head = j;
  if (!ctl->lru_tail) ctl->lru_tail = j;
  j->used_mono = ty_mono_ms();
}

void ty__idmap_xput(ty_idmap *m, ty_id_node *n, uint64_t id) {
  n->id = id;
  if (ty_idmap_put(m, n) == TY_ENOMEM) {
    ty_error("out of memory growing an id map");
    abort();
  }
}

static size_t strv_bytes(char *const *v, size_t n) {
  size_t bytes = n * sizeof(*v);
  for (size_t i = 0; i < n; i++)
    bytes += v[i] ? strlen(v[i]) + 1 : 0;
  return bytes;
}

size_t ty__job_kept_bytes(const ty_job *j) {
  size_t bytes = j->blob_len + j->plan_len + j->graph_saved_len;
  bytes += strv_bytes(j->spec.argv, j->spec.argc) + strv_bytes(j->spec.env, j->spec.envc);
  for (size_t v = 0; v < TY_ARRAY_LEN(j->info); v++)
    bytes += j->info[v].cap;
  return bytes;
}

size_t ty__cache_bytes(const ty_controller *ctl) {
  size_t bytes = 0;
  for (const ty_job *j = ctl->lru_head; j; j = j->lru_next)
    bytes += ty__job_kept_bytes(j);
  return bytes;
}

/* An ended job in the cache keeps what history, show and listings read:
 * its fields and its stored spec (GetJob answers the command from it), not
 * the decoded argv and env (a batch script and an environment again, per
 * element of an array) nor its encoded JobInfos, which a lookup makes
 * again. A job that runs again gets argv and env back at its launch
 * (ty__job_untrim). */
void ty__job_trim(ty_job *j) {
  ty_wire_strv_free(j->spec.argv, j->spec.argc);
  ty_wire_strv_free(j->spec.env, j->spec.envc);
  j->spec.argv = j->spec.env = NULL;
  j->spec.argc = j->spec.envc = 0;
  for (size_t v = 0; v < TY_ARRAY_LEN(j->info); v++)
    ty_buf_close(&j->info[v]), j->info_ok[v] = false;
  j->trimmed = true;
}

int ty__job_untrim(ty_job *j, char *err, size_t len) {
  ty_job_spec s;
  if (!j->trimmed) return 0;
  int rc = ty__conv_spec(j->blob, j->blob_len, &s);
  if (rc != 0)
    return ty_errf(err, len, rc, "job %llu: cannot decode its command from its stored spec: %s",
                   (unsigned long long)j->id, ty_strerror(rc));
  j->spec.argv = s.argv, j->spec.argc = s.argc, j->spec.env = s.env, j->spec.envc = s.envc;
  s.argv = s.env = NULL, s.argc = s.envc = 0;
  ty_job_spec_close(&s);
  j->trimmed = false;
  return 0;
}

static void cache_put(ty_controller *ctl, ty_job *j) {
  ty__job_trim(j);
  j->cached = true;
  ty__idmap_xput(&ctl->done, &j->done_node, j->id);
  lru_push(ctl, j);
}

static void cache_drop(ty_controller *ctl, ty_job *j) {
  lru_unlink(ctl, j);
  ty_idmap_del(&ctl->done, j->id);
  j->cached = false;
}

ty_job *ty__job_find(ty_controller *ctl, uint64_t id) {
  ty_job *j = live_find(ctl, id);
  if (j) return j;
  ty_id_node *n = ty_idmap_get(&ctl->done, id);
  j = n ? container_of(n, ty_job, done_node) : NULL;
  if (j) {
    lru_unlink(ctl, j);
    lru_push(ctl, j);
  }
  return j;
}

static int put_row(const ty_job_row *r, void *ud) {
  ty_job **out = ud;
  *out = ty__job_from_row(NULL, r);
  return 0;
}

int ty__ids_add(uint64_t id, void *ids) {
  ty__ids *l = ids;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = ty_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = id;
  return 0;
}

ty_job *ty__job_get(ty_controller *ctl, uint64_t id) {
  ty_job *j = ty__job_find(ctl, id);
  if (j || id == 0 || id >= ctl->next_id) return j;
  if (ty_store_get_job(ctl->store, id, put_row, &j) != 0 || !j) return NULL;
  ty__graph_restore(ctl, j); /* its progress and checkpoints, forgotten at the sweep */
  if (!ty_job_state_terminal(j->state)) {
    /* Not ended, yet not in the live set: a row this controller did not
     * load (it cannot be, short of someone editing the file). */
    ty_warn("job %llu: stored as %s but not live; showing it as stored", (unsigned long long)id,
            ty_job_state_name(j->state));
  }
  cache_put(ctl, j);
  return j;
}

ty_job *ty__job_ref(ty_controller *ctl, const ty_job_ref *r) {
  if (r->id == 0) return NULL; /* no job; array_id 0 is "not an array" */
  if (!r->has_task) return ty__job_get(ctl, r->id);
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->array_id == r->id && j->array_task == r->task) return j;
  }
  uint64_t id;
  if (ty_store_find_element(ctl->store, r->id, r->task, &id) != 0) return NULL;
  return ty__job_get(ctl, id);
}

ty_job *ty__job_from_row(ty_controller *ctl, const ty_job_row *r) {
  (void)ctl;
  ty_job *j = ty_xcalloc(1, sizeof(*j));
  j->id = r->id;
  if (ty__conv_spec(r->spec, r->spec_len, &j->spec) != 0) {
    ty_error("store: job %llu has an undecodable spec", (unsigned long long)r->id);
    free(j);
    return NULL;
  }
  j->blob = ty_xmalloc(r->spec_len ? r->spec_len : 1);
  memcpy(j->blob, r->spec, r->spec_len);
  j->blob_len = r->spec_len;
  if (r->plan_len) {
    j->plan = ty_xmalloc(r->plan_len);
    memcpy(j->plan, r->plan, r->plan_len);
    j->plan_len = r->plan_len;
  }
  if (r->graph_progress_len) {
    j->graph_saved = ty_xmalloc(r->graph_progress_len);
    memcpy(j->graph_saved, r->graph_progress, r->graph_progress_len);
    j->graph_saved_len = r->graph_progress_len;
  }
  if (r->time_limit_s) j->spec.time_limit_s = r->time_limit_s; /* the effective one */
  j->spec.exclusive = j->spec.exclusive || r->exclusive;       /* the column says it too */
  ty__job_lists(j); /* the lists are the spec's; the columns only show them */
  j->state = r->state;
  j->reason = ty_strdup(r->reason);
  j->exit_code = r->exit_code;
  j->term_signal = r->term_signal;
  j->submit_ms = r->submit_ms, j->start_ms = r->start_ms, j->end_ms = r->end_ms;
  j->requeue_count = r->requeue_count;
  j->held = r->held;
  j->held_by = r->held && r->held_by[0] ? ty_strdup(r->held_by) : NULL;
  if (j->held && j->state == TY_JOB_PENDING) ty__sched_list_held(j);
  j->last_ckpt_ms = r->last_ckpt_ms;
  j->request_id = r->request_id[0] ? ty_strdup(r->request_id) : NULL;
  j->request_hash = (uint64_t)r->request_hash;
  j->array_id = (uint64_t)r->array_id;
  j->array_task = r->array_task;
  j->model_file = r->model_file[0] ? ty_strdup(r->model_file) : NULL;
  j->nodes_csv = r->nodes[0] ? ty_strdup(r->nodes) : NULL;
  j->alloc_cpus = r->alloc_cpus, j->alloc_gpus = r->alloc_gpus;
  j->acct_gpu_ms = r->acct_gpu_ms, j->acct_measured = r->acct_measured;
  j->usage = (ty_task_usage){(uint64_t)r->cpu_usec, (uint64_t)r->mem_peak, (uint64_t)r->io_read,
                             (uint64_t)r->io_write};
  j->dep = TY__DEP_MET;
  j->committed = true;
  ty_job_row_fingerprint(r, j->fp);
  return j;
}

/* ---- jobs: the sweep ------------------------------------------------------------------- */

/* True while writes have failed and the store is not yet back in step
 * (resync.c): rows there may be older than memory (a job still RUNNING). */
static bool store_behind(const ty_controller *ctl) {
  return ctl->commit && ty_committer_failures(ctl->commit) != ctl->store_failures_seen;
}

/* Ended, no rank left, and its end durable: only then does the store answer
 * for the job (history.c takes it from memory till then). The sweep that
 * first sees it ended notes the txns queued so far; its end's txn is among
 * them, queued in the loop callback that ended it. While the store is
 * `behind` (store_behind, once a sweep), its end may be among the lost
 * writes: the job stays live, or
 * `ls --all` and `history` would find it in neither half. */
static bool retired(ty_controller *ctl, ty_job *j, bool behind) {
  if (!j->committed || !ty_job_state_terminal(j->state) || j->live_ranks || behind) {
    j->end_txn = 0;
    return false;
  }
  if (!j->end_txn) j->end_txn = ctl->txn_queued;
  return ctl->txn_done >= j->end_txn;
}

void ty__jobs_sweep(ty_controller *ctl) {
  size_t k = 0;
  ctl->stats.tick_jobs += ctl->n_jobs;
  bool behind = store_behind(ctl); /* once a sweep: it takes the committer's lock */
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (retired(ctl, j, behind))
      user_count_sync(ctl, j, false), req_index_remove(ctl, j), cache_put(ctl, j);
    else
      ctl->jobs[k++] = j;
  }
  if (k != ctl->n_jobs) ctl->ls_gen++;
  ctl->n_jobs = k;
  uint32_t cap = ctl->cfg.job_cache;
  int64_t oldest = ty_mono_ms() - (int64_t)ctl->cfg.min_job_age_s * 1000;
  while (ctl->lru_tail && (ctl->done.count > cap || ctl->lru_tail->used_mono < oldest)) {
    ty_job *j = ctl->lru_tail;
    cache_drop(ctl, j);
    ty__graph_forget(ctl, j->id);
    ty__job_free(j);
  }
}

void ty__job_unretire(ty_controller *ctl, ty_job *j) {
  if (!j->cached) return; /* still in the live set, not swept yet */
  cache_drop(ctl, j);     /* still trimmed: its launch decodes argv and env (ty__job_untrim) */
  j->end_txn = 0;
  ty__job_add(ctl, j);
}

void ty_controller_stats_get(const ty_controller *ctl, ty_controller_stats *out) {
  *out = ctl->stats;
  out->live = ctl->n_jobs;
  out->cached = ctl->done.count;
  out->cached_bytes = ty__cache_bytes(ctl);
  out->live_bytes = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++)
    out->live_bytes += ty__job_kept_bytes(ctl->jobs[i]);
}

ty_store *ty_controller_store(ty_controller *ctl) {
  return ctl->store;
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
  n->index = (uint32_t)ctl->n_nodes;
  ctl->nodes[ctl->n_nodes++] = n;
}

void ty__node_remove(ty_controller *ctl, ty_cluster_node *n) {
  size_t i = n->index;
  if (i >= ctl->n_nodes || ctl->nodes[i] != n) return;
  memmove(&ctl->nodes[i], &ctl->nodes[i + 1], (ctl->n_nodes - i - 1) * sizeof(*ctl->nodes));
  ctl->n_nodes--;
  for (size_t k = i; k < ctl->n_nodes; k++)
    ctl->nodes[k]->index = (uint32_t)k;
  ctl->deleted_nodes =
      ty_xrealloc(ctl->deleted_nodes, (ctl->n_deleted_nodes + 1) * sizeof(*ctl->deleted_nodes));
  ctl->deleted_nodes[ctl->n_deleted_nodes++] = n;
  n->index = UINT32_MAX;
}

void ty__node_unremove(ty_controller *ctl, ty_cluster_node *n) {
  for (size_t k = 0; k < ctl->n_deleted_nodes; k++)
    if (ctl->deleted_nodes[k] == n) {
      ctl->deleted_nodes[k] = ctl->deleted_nodes[--ctl->n_deleted_nodes];
      ty__node_add(ctl, n);
      return;
    }
}

/* FNV-1a of s: the interned names' slots. */
static uint64_t name_hash(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return h;
}

/* Twice the slots (64 at first), every name moved to its new slot. */
static void names_grow(ty_controller *ctl) {
  size_t cap = ctl->names_cap ? 2 * ctl->names_cap : 64;
  char **t = ty_xcalloc(cap, sizeof(*t));
  for (size_t i = 0; i < ctl->names_cap; i++) {
    if (!ctl->names[i]) continue;
    size_t k = name_hash(ctl->names[i]) & (cap - 1);
    while (t[k])
      k = (k + 1) & (cap - 1);
    t[k] = ctl->names[i];
  }
  free(ctl->names);
  ctl->names = t;
  ctl->names_cap = cap;
}

const char *ty__name_intern(ty_controller *ctl, const char *s) {
  if (!s) return NULL;
  if (2 * (ctl->n_names + 1) > ctl->names_cap) names_grow(ctl);
  size_t mask = ctl->names_cap - 1, k = name_hash(s) & mask;
  for (; ctl->names[k]; k = (k + 1) & mask)
    if (strcmp(ctl->names[k], s) == 0) return ctl->names[k];
  ctl->n_names++;
  return ctl->names[k] = ty_strdup(s);
}

void ty__node_free(ty_cluster_node *n) {
  if (!n) return;
  free(n->name);
  free(n->info);
  free(n->io_addr);
  free(n->host);
  free(n->reason);
  free(n->switch_name);
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

double ty__node_heartbeat_age_s(const ty_cluster_node *n, int64_t now_ms, int64_t now_mono) {
  int64_t age = n->last_seen_ms > 0 ? now_ms - n->last_seen_ms : now_mono - n->last_seen_mono;
  return age > 0 ? (double)age / 1000.0 : 0.0;
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

void ty__node_event(const ty_cluster_node *n, int from, int to, const char *action,
                    const char *reason, const char *actor, ty_txn *t) {
  ty_node_event_row ev = {.time_ms = ty_now_ms(),
                          .node = n->name,
                          .from_state = to != from ? from : 0,
                          .to_state = to != from ? to : 0,
                          .action = action,
                          .reason = reason,
                          .actor = actor};
  ty_txn_add_node_event(t, &ev);
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

void ty__queue_names(const ty_controller *ctl, char *out, size_t len) {
  size_t o = 0;
  if (!len) return;
  out[0] = '\0';
  for (size_t i = 0; i < ctl->n_queues && o < len; i++) {
    if (ctl->queues[i].state == TY_QUEUE_DELETED) continue;
    int n = snprintf(out + o, len - o, "%s%s", o ? ", " : "", ctl->queues[i].name);
    if (n < 0 || (size_t)n >= len - o) {
      /* cut: end with "..." where it fits */
      if (len > 4) snprintf(out + len - 4, 4, "...");
      return;
    }
    o += (size_t)n;
  }
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

/* A txn that splits array elements off their array's stored record
 * (job_row.c), and the callback it was committed with. */
typedef struct split_guard {
  ty_controller *ctl;
  ty_commit_cb cb;
  void *ud;
  uint64_t *ids;
  size_t n;
} split_guard;

/* A txn that was not stored inserted none of its elements' rows: they are
 * still in their array's stored record. They are unsplit again, so their
 * next save inserts the row (an update would find none, and fail every
 * txn it is in, the store's repair too), and split_lost, so the repair
 * writes them (resync.c). */
static void on_split_committed(int status, void *ud) {
  split_guard *g = ud;
  for (size_t i = 0; status != 0 && i < g->n; i++) {
    ty_job *j = ty__job_find(g->ctl, g->ids[i]);
    if (!j || j->unsplit) continue;
    j->unsplit = j->split_lost = true;
    ty_id_node *n = ty_idmap_get(&g->ctl->arrays, j->array_id);
    if (n) container_of(n, ty__array, node)->unsplit++;
  }
  if (g->cb) g->cb(status, g->ud);
  free(g->ids);
  free(g);
}

void ty__commit(ty_controller *ctl, ty_txn *txn, ty_commit_cb cb, void *ud) {
  if (ctl->stopping || !ctl->commit) {
    ty_txn_destroy(txn);
    if (cb) cb(TY_ECLOSED, ud);
    return;
  }
  ctl->txn_queued++; /* watch.c tells durable changes by this count */
  size_t n;
  uint64_t *ids = ty_txn_inserted_elements(txn, &n);
  if (!ids) {
    ty_committer_submit(ctl->commit, txn, cb, ud);
    return;
  }
  split_guard *g = ty_xmalloc(sizeof(*g));
  *g = (split_guard){.ctl = ctl, .cb = cb, .ud = ud, .ids = ids, .n = n};
  ty_committer_submit(ctl->commit, txn, on_split_committed, g);
}

/* Coalesces requests: many submits in one loop iteration cost one pass. */
void ty__sched_request(ty_controller *ctl) {
  ctl->sched_other = true;
  if (ctl->sched_wanted || ctl->stopping) return;
  ctl->sched_wanted = true;
  uv_async_send(&ctl->sched_async);
}

void ty__sched_request_submit(ty_controller *ctl, uint64_t first, uint32_t n) {
  if (ctl->n_sched_new == ctl->cap_sched_new) {
    ctl->cap_sched_new = ctl->cap_sched_new ? 2 * ctl->cap_sched_new : 16;
    ctl->sched_new = ty_xrealloc(ctl->sched_new, ctl->cap_sched_new * sizeof(*ctl->sched_new));
  }
  ctl->sched_new[ctl->n_sched_new][0] = first;
  ctl->sched_new[ctl->n_sched_new++][1] = n;
  if (ctl->sched_wanted || ctl->stopping) return;
  ctl->sched_wanted = true;
  uv_async_send(&ctl->sched_async);
}
