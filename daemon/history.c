/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Accounting: GetHistory (trainctl history, like sacct) and GetNode
 * (trainctl node show), and the job filters they share with ListJobs
 * (list_jobs.c).
 *
 * History is answered in two halves: the live jobs from memory on the loop
 * (and the just ended ones the sweep keeps there till their end is
 * durable), the ended ones from the store on libuv's thread pool through a
 * reader connection of their own (ty_store_reader), with the indexes and a
 * LIMIT (the request's, at most the history cap, cfg.history_cap: 100000).
 * The loop never waits for a query of history, and no duty of the
 * controller walks it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* ---- filters -------------------------------------------------------------------------- */

static bool state_wanted(const int *states, size_t n, int state) {
  if (n == 0) return true;
  for (size_t i = 0; i < n; i++)
    if (states[i] == state) return true;
  return false;
}

bool ty__job_picked(const ty_list_filter *f, uint64_t id, uint64_t array_id, uint32_t task,
                    const char *name) {
  bool by_id = f->n_jobs == 0, by_name = f->n_names == 0;
  for (size_t i = 0; i < f->n_jobs && !by_id; i++) {
    const ty_job_ref *r = &f->jobs[i];
    by_id = r->has_task ? array_id && r->id == array_id && r->task == task
                        : r->id == id || (array_id && r->id == array_id);
  }
  for (size_t i = 0; i < f->n_names && !by_name; i++)
    by_name = name && strcmp(f->names[i], name) == 0;
  return by_id && by_name;
}

bool ty__job_matches(const ty_job *j, const ty_list_filter *f) {
  bool completing = f->completing && ty_job_state_terminal(j->state) && j->live_ranks;
  if (!j->committed || !(completing || state_wanted(f->states, f->n_states, j->state)))
    return false;
  if (f->user[0] && strcmp(f->user, j->spec.user) != 0) return false;
  if (f->queue[0] && strcmp(f->queue, j->spec.queue) != 0) return false;
  if (!ty__job_picked(f, j->id, j->array_id, j->array_task, j->spec.name)) return false;
  return !f->since_ms || j->submit_ms >= f->since_ms || j->start_ms >= f->since_ms ||
         j->end_ms >= f->since_ms;
}

/* The ended states of a filter (all seven when it names none: NODE_FAIL
 * and PREEMPTED are a no_requeue job's ends): what the store is asked for.
 * 0 when the filter wants none. */
size_t ty__ended_states(const int *states, size_t n, int out[7]) {
  static const int ended[] = {TY_JOB_COMPLETED,    TY_JOB_FAILED,    TY_JOB_CANCELLED,
                              TY_JOB_TIMEOUT,      TY_JOB_PREEMPTED, TY_JOB_NODE_FAIL,
                              TY_JOB_OUT_OF_MEMORY};
  size_t k = 0;
  for (size_t i = 0; i < TY_ARRAY_LEN(ended); i++)
    if (state_wanted(states, n, ended[i])) out[k++] = ended[i];
  return k;
}

int ty__check_states(const int *states, size_t n, char *err, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (states[i] < 1 || states[i] > TY_JOB_STATE_MAX)
      return ty_errf(err, len, TY_EINVAL, "states[%zu]: %d is not a job state", i, states[i]);
  return 0;
}

/* GetHistory's names and nodes (their counts are capped at the door,
 * proto/convert.c): none empty, a node without the comma that separates a
 * job's nodes (it could match across two of them). */
static int check_names(const char *field, char *const *v, size_t n, bool node, char *err,
                       size_t len) {
  for (size_t i = 0; i < n; i++) {
    if (!v[i][0]) return ty_errf(err, len, TY_EINVAL, "%s[%zu]: must not be empty", field, i);
    if (node && strchr(v[i], ','))
      return ty_errf(err, len, TY_EINVAL, "%s[%zu]: \"%.64s\" is not one node name (a comma)",
                     field, i, v[i]);
  }
  return 0;
}

/* ---- GetHistory ------------------------------------------------------------------------ */

void ty__acct_job_close(ty__acct_job *a) {
  free(a->name), free(a->user), free(a->queue), free(a->reason), free(a->nodes);
  for (size_t i = 0; i < a->n_ranks; i++)
    free(a->ranks[i].node);
  free(a->ranks);
  memset(a, 0, sizeof(*a));
}

/* The memory requested over a job's nodes, from its alloc column's slots
 * ("S<gpus>,<cpus>,<mem>;..."). */
static uint64_t alloc_mem(const char *alloc) {
  uint64_t total = 0;
  for (const char *s = alloc; s && *s; s = strchr(s, ';') ? strchr(s, ';') + 1 : NULL) {
    unsigned long long gpus, mem;
    unsigned cpus;
    if (*s == 'S' && sscanf(s, "S%llx,%u,%llu", &gpus, &cpus, &mem) == 3) total += mem;
  }
  return total;
}

static int acct_strings(ty__acct_job *a, const char *name, const char *user, const char *queue,
                        const char *reason, const char *nodes) {
  a->name = ty_wire_strdup(name), a->user = ty_wire_strdup(user);
  a->queue = ty_wire_strdup(queue), a->reason = ty_wire_strdup(reason);
  a->nodes = ty_wire_strdup(nodes);
  return a->name && a->user && a->queue && a->reason && a->nodes ? 0 : TY_ENOMEM;
}

/* A job as the store has it (thread pool: pure). One pending again after
 * a requeue has not started this run: no start, so no elapsed time, as
 * `show` says (its rows keep what its runs used). */
static int acct_from_row(const ty_job_row *r, ty__acct_job *a) {
  *a = (ty__acct_job){.id = r->id,
                      .array_id = (uint64_t)r->array_id,
                      .array_task = r->array_task,
                      .state = r->state,
                      .exit_code = r->exit_code,
                      .term_signal = r->term_signal,
                      .submit_ms = r->submit_ms,
                      .start_ms = r->state == TY_JOB_PENDING ? 0 : r->start_ms,
                      .end_ms = r->end_ms,
                      .requeue_count = r->requeue_count,
                      .cpus = r->alloc_cpus,
                      .gpus = r->alloc_gpus,
                      .time_limit_s = r->time_limit_s,
                      .mem_bytes = alloc_mem(r->alloc),
                      .cpu_ms = r->cpu_usec / 1000,
                      .gpu_ms = r->acct_gpu_ms,
                      .mem_peak = r->mem_peak,
                      .measured = r->acct_measured};
  return acct_strings(a, r->name, r->user, r->queue, r->reason, r->nodes);
}

/* A live job as memory has it: what its ended ranks used or held, and what
 * its running ones hold so far (allocated: cgroups are read at a rank's end). */
static int acct_from_job(ty_job *j, ty__acct_job *a) {
  ty_job_row row;
  char *nodes, *alloc;
  ty__job_row(j, &row, &nodes, &alloc);
  int rc = acct_from_row(&row, a);
  int64_t now = ty_now_ms(), ms = j->start_ms && now > j->start_ms ? now - j->start_ms : 0;
  uint32_t tpn = j->spec.tasks_per_node ? j->spec.tasks_per_node : 1;
  for (uint32_t r = 0; j->state == TY_JOB_RUNNING && r < j->n_ranks; r++) {
    if (j->ranks[r].state == RANK_ENDED) continue;
    const ty_slot *sl = &j->slots[j->ranks[r].slot];
    a->cpu_ms += ms * ty__rank_cpus(j, r);
    a->gpu_ms += ms * (int64_t)__builtin_popcountll(sl->gpus) / tpn;
    a->measured = false;
  }
  free(nodes);
  free(alloc);
  return rc;
}

typedef struct hist_work {
  uv_work_t req;
  ty_store *store;
  ty_reply *r;
  ty__history_req q;
  uint32_t limit;
  int ended[7];
  size_t n_ended;
  ty__acct_job *jobs; /* the live ones first, then the ended ones */
  size_t n, cap, n_live;
  uint64_t *mem_ended; /* the ended jobs memory answers for: the store's skipped */
  size_t n_mem_ended;
  bool all_users; /* the caller is an operator; else only uid's jobs */
  uint32_t uid;
  bool truncated;
  int rc;
  ty__history_encode encode;
} hist_work;

static ty__acct_job *add_job(hist_work *w) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    ty__acct_job *v = realloc(w->jobs, cap * sizeof(*v));
    if (!v) return NULL;
    w->jobs = v, w->cap = cap;
  }
  ty__acct_job *a = &w->jobs[w->n++];
  memset(a, 0, sizeof(*a));
  return a;
}

static bool wanted_id(const ty__history_req *q, uint64_t id, uint64_t array_id) {
  if (q->n_ids == 0) return true;
  for (size_t i = 0; i < q->n_ids; i++)
    if (q->ids[i] == id || (array_id && q->ids[i] == array_id)) return true;
  return false;
}

/* The request's names and nodes, as the store applies them (store_query.c):
 * one of the names; one of the nodes among those of its (last) run. */
static bool wanted_name_node(const ty__history_req *q, const ty_job *j) {
  bool name = q->n_names == 0, node = q->n_nodes == 0;
  for (size_t i = 0; i < q->n_names && !name; i++)
    name = j->spec.name && !strcmp(q->names[i], j->spec.name);
  for (uint32_t s = 0; s < j->n_slots && !node; s++)
    for (size_t i = 0; i < q->n_nodes && !node; i++)
      node = !strcmp(q->nodes[i], j->slots[s].node->name);
  return name && node;
}

static bool hist_matches(const hist_work *w, const ty_job *j) {
  const ty__history_req *q = &w->q;
  return j->committed && state_wanted(q->states, q->n_states, j->state) &&
         (w->all_users || (j->spec.has_uid && j->spec.uid == w->uid)) &&
         (!q->user[0] || !strcmp(q->user, j->spec.user)) &&
         (!q->queue[0] || !strcmp(q->queue, j->spec.queue)) &&
         (!q->until_ms || j->submit_ms < q->until_ms) && wanted_id(q, j->id, j->array_id) &&
         wanted_name_node(q, j);
}

/* Appends a copy of row to a's ranks. */
static int add_rank(ty__acct_job *a, const ty_rank_row *row) {
  ty__acct_rank *v = realloc(a->ranks, (a->n_ranks + 1) * sizeof(*v));
  if (!v) return TY_ENOMEM;
  a->ranks = v;
  ty__acct_rank *k = &a->ranks[a->n_ranks];
  k->row = *row;
  k->node = ty_wire_strdup(row->node);
  if (!k->node) return TY_ENOMEM;
  k->row.node = k->node;
  a->n_ranks++;
  return 0;
}

/* Rank r of j, which has not ended, as its record so far: its node, its
 * run's start, no end, the CPUs and GPUs it holds and their allocation
 * until now (cgroups are read at a rank's end); STARTING until its worker
 * said it runs. Its run's end when the job already ended (a cancelled
 * job's rank still stopping), as account_rank will record it. */
static ty_rank_row live_rank_row(const ty_job *j, uint32_t r, int64_t now) {
  const ty_rank *rk = &j->ranks[r];
  const ty_slot *sl = &j->slots[rk->slot];
  uint32_t tpn = j->spec.tasks_per_node ? j->spec.tasks_per_node : 1;
  uint32_t cpus = ty__rank_cpus(j, r), gpus = (uint32_t)__builtin_popcountll(sl->gpus) / tpn;
  int64_t ms = j->start_ms && now > j->start_ms ? now - j->start_ms : 0;
  return (ty_rank_row){.job_id = j->id,
                       .run = j->acct_run,
                       .rank = r,
                       .node = sl->node->name,
                       .start_ms = j->start_ms,
                       .state = rk->state == RANK_RUNNING ? TY_TASK_RUNNING : TY_TASK_STARTING,
                       .cpus = cpus,
                       .gpus = gpus,
                       .cpu_ms = ms * cpus,
                       .gpu_ms = ms * gpus,
                       .run_state = j->state == TY_JOB_RUNNING ? 0 : j->run_state};
}

/* j's rank records as memory has them (the store's of the same run and
 * rank are skipped): the accounting row of each rank that ended, and one
 * so far of each rank still running (sacct lists running steps). */
static int add_mem_ranks(ty__acct_job *a, const ty_job *j) {
  int rc = 0;
  int64_t now = ty_now_ms();
  for (uint32_t r = 0; rc == 0 && r < j->n_ranks; r++) {
    if (j->ranks[r].state != RANK_ENDED) {
      ty_rank_row row = live_rank_row(j, r, now);
      rc = add_rank(a, &row);
    } else if (j->ranks[r].acct.job_id) {
      rc = add_rank(a, &j->ranks[r].acct);
    }
  }
  if (rc == 0) a->n_mem_ranks = a->n_ranks;
  return rc;
}

/* The store's rank records of w's jobs, appended to each (thread pool),
 * but for those memory gave (a just ended job's last run). */
static int rank_cb(const ty_rank_row *row, void *ud) {
  ty__acct_job *a = ud;
  for (size_t i = 0; i < a->n_mem_ranks; i++)
    if (a->ranks[i].row.run == row->run && a->ranks[i].row.rank == row->rank) return 0;
  return add_rank(a, row);
}

static int by_run_rank(const void *a, const void *b) {
  const ty_rank_row *x = &((const ty__acct_rank *)a)->row, *y = &((const ty__acct_rank *)b)->row;
  if (x->run != y->run) return x->run < y->run ? -1 : 1;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Memory answered the live jobs and the ended ones the sweep has kept
 * (add_mem_ended), the store only ended ones: its rows of those memory
 * answered are skipped, so the halves never hold the same job. */
static int hist_row(const ty_job_row *row, void *ud) {
  hist_work *w = ud;
  /* Found by the user's name (jobs_by_user); the uid proves it is theirs
   * (a job from before authentication carried the client's word). */
  if (!w->all_users && !(row->uid >= 0 && (uint32_t)row->uid == w->uid)) return 0;
  for (size_t i = 0; i < w->n_mem_ended; i++)
    if (w->mem_ended[i] == row->id) return 0;
  ty__acct_job *a = add_job(w);
  return a ? acct_from_row(row, a) : TY_ENOMEM;
}

static int by_end_desc(const void *a, const void *b) {
  const ty__acct_job *x = a, *y = b;
  if (x->end_ms != y->end_ms) return x->end_ms < y->end_ms ? 1 : -1;
  return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

static int by_job_id_desc(const void *a, const void *b) {
  const ty__acct_job *x = a, *y = b;
  return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

static int by_id_desc_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x > y ? -1 : x < y;
}

/* --limit's newest `limit` jobs of the live and the ended ones together,
 * by id (sacct's order), each half in the order it came: the others are
 * dropped and the answer says it was cut. */
static int keep_newest(hist_work *w) {
  if (w->n <= w->limit) return 0;
  uint64_t *ids = malloc(w->n * sizeof(*ids));
  if (!ids) return TY_ENOMEM;
  for (size_t i = 0; i < w->n; i++)
    ids[i] = w->jobs[i].id;
  qsort(ids, w->n, sizeof(*ids), by_id_desc_u64);
  uint64_t oldest = ids[w->limit - 1];
  free(ids);
  size_t kept = 0, live = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (w->jobs[i].id < oldest) {
      ty__acct_job_close(&w->jobs[i]);
      continue;
    }
    live += i < w->n_live;
    w->jobs[kept++] = w->jobs[i];
  }
  w->n = kept, w->n_live = live, w->truncated = true;
  return 0;
}

static void hist_run(uv_work_t *req) {
  hist_work *w = container_of(req, hist_work, req);
  ty_store_reader *rd = NULL;
  ty_job_query q = {.states = w->ended,
                    .n_states = w->n_ended,
                    .finished_only = true,
                    .user = w->q.user,
                    .queue = w->q.queue,
                    .ended_since_ms = w->q.since_ms,
                    .submitted_before_ms = w->q.until_ms,
                    .limit = w->limit + 1,
                    .ids = w->q.ids,
                    .n_ids = w->q.n_ids,
                    .names = (const char *const *)w->q.names,
                    .n_names = w->q.n_names,
                    .nodes = (const char *const *)w->q.nodes,
                    .n_nodes = w->q.n_nodes,
                    .before_end_ms = w->q.before_end_ms,
                    .before_id = w->q.before_id,
                    .by_id = !w->q.ended_only};
  w->rc = ty_store_reader_open(w->store, &rd);
  if (w->rc == 0 && w->n_ended) w->rc = ty_store_query_jobs(rd, &q, hist_row, w);
  /* Memory's ended jobs among the store's, newest first as the store
   * orders them: by id beside live jobs (--limit's newest jobs), by end
   * for a page of ended ones (the cursor's order); one more than asked
   * says the answer was cut. */
  size_t n_ended = w->n - w->n_live;
  if (w->rc == 0 && n_ended > 1)
    qsort(w->jobs + w->n_live, n_ended, sizeof(*w->jobs), q.by_id ? by_job_id_desc : by_end_desc);
  while (w->rc == 0 && w->n - w->n_live > w->limit) {
    ty__acct_job_close(&w->jobs[--w->n]);
    w->truncated = true;
  }
  if (w->rc == 0) w->rc = keep_newest(w);
  for (size_t i = 0; w->rc == 0 && w->q.ranks && i < w->n; i++) {
    ty__acct_job *a = &w->jobs[i];
    w->rc = ty_store_query_ranks(rd, a->id, rank_cb, a);
    if (a->n_mem_ranks && a->n_ranks > 1)
      qsort(a->ranks, a->n_ranks, sizeof(*a->ranks), by_run_rank);
  }
  ty_store_reader_close(rd);
}

static void hist_work_free(hist_work *w) {
  for (size_t i = 0; i < w->n; i++)
    ty__acct_job_close(&w->jobs[i]);
  free(w->jobs);
  free(w->mem_ended);
  ty__history_req_close(&w->q);
  free(w);
}

static void hist_done(uv_work_t *req, int status) {
  hist_work *w = container_of(req, hist_work, req);
  int rc = status != 0 ? TY_ECLOSED : w->rc;
  if (rc == 0) rc = w->encode(w->jobs, w->n, w->truncated, &w->r->out);
  if (rc == TY_ESTORE)
    ty__reply_finish(w->r, rc, "cannot read the history from the store");
  else
    ty__reply_finish(w->r, rc, rc ? ty_strerror(rc) : NULL);
  hist_work_free(w);
}

/* Whose jobs the caller may see: operators everyone's; other users only
 * their own, like Slurm with PrivateData=jobs (the secure default: a
 * history shows commands' resource use, exit codes and nodes). A request
 * for another user's jobs is refused; one for nobody in particular is
 * narrowed to the caller's. */
static int history_scope(ty_reply *r, hist_work *w, char *err, size_t len) {
  w->all_users = r->operator, w->uid = r->who.uid;
  if (r->operator) return 0;
  if (w->q.user[0] && strcmp(w->q.user, r->who.user) != 0) {
    r->refusal = "not_operator";
    ty_warn("refused GetHistory from %s: the jobs of %s", r->who.user, w->q.user);
    return ty_errf(err, len, TY_EPERM,
                   "history of user %s: permission denied: only operators "
                   "see other users' jobs (%s is not one)",
                   w->q.user, r->who.user);
  }
  char *me = ty_wire_strdup(r->who.user);
  if (!me) return ty_errf(err, len, TY_ENOMEM, "no memory for the request");
  free(w->q.user);
  w->q.user = me;
  return 0;
}

/* Whether ended job j is in the request's window of end times. */
static bool end_wanted(const ty__history_req *q, const ty_job *j) {
  if (j->end_ms < (q->since_ms > 0 ? q->since_ms : 1)) return false;
  return !q->before_end_ms || j->end_ms < q->before_end_ms ||
         (j->end_ms == q->before_end_ms && j->id < q->before_id);
}

/* The ended jobs still in the live set: the sweep keeps a job there until
 * its end is durable, so the store's reader may not see it yet. */
static int add_mem_ended(ty_controller *ctl, hist_work *w) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (!ty_job_state_terminal(j->state) || !hist_matches(w, j) || !end_wanted(&w->q, j)) continue;
    uint64_t *ids = realloc(w->mem_ended, (w->n_mem_ended + 1) * sizeof(*ids));
    ty__acct_job *a = ids ? add_job(w) : NULL;
    if (ids) w->mem_ended = ids;
    if (a) w->mem_ended[w->n_mem_ended++] = j->id;
    rc = a ? acct_from_job(j, a) : TY_ENOMEM;
    if (rc == 0 && w->q.ranks) rc = add_mem_ranks(a, j);
  }
  return rc;
}

/* The live jobs the request wants, newest (highest id) first, `limit` at
 * most: the store is asked for as many ended ones, and keep_newest keeps
 * the newest `limit` of both (a held old job does not push out a newer
 * ended one). */
static int add_live(ty_controller *ctl, hist_work *w) {
  int rc = 0;
  ctl->stats.list_jobs += ctl->n_jobs;
  for (size_t i = ctl->n_jobs; rc == 0 && !w->q.ended_only && i-- > 0;) {
    ty_job *j = ctl->jobs[i];
    if (!hist_matches(w, j) || ty_job_state_terminal(j->state)) continue;
    if (w->n == w->limit) {
      w->truncated = true;
      break;
    }
    ty__acct_job *a = add_job(w);
    rc = a ? acct_from_job(j, a) : TY_ENOMEM;
    if (rc == 0 && w->q.ranks) rc = add_mem_ranks(a, j);
  }
  w->n_live = w->n;
  return rc == 0 && w->n_ended ? add_mem_ended(ctl, w) : rc;
}

void ty__history_run(ty_controller *ctl, ty_reply *r, ty__history_req *q,
                     ty__history_encode encode) {
  hist_work *w = ty_xcalloc(1, sizeof(*w));
  char err[TY_ERR_LEN];
  w->q = *q;
  memset(q, 0, sizeof(*q));
  w->store = ctl->store, w->r = r, w->encode = encode;
  w->limit = w->q.limit && w->q.limit < ctl->cfg.history_cap ? w->q.limit : ctl->cfg.history_cap;
  int rc = history_scope(r, w, err, sizeof(err));
  if (rc != 0) {
    ty__reply_finish(r, rc, err);
    hist_work_free(w);
    return;
  }
  w->n_ended = ty__ended_states(w->q.states, w->q.n_states, w->ended);
  rc = ty__check_states(w->q.states, w->q.n_states, err, sizeof(err));
  if (rc == 0) rc = check_names("names", w->q.names, w->q.n_names, false, err, sizeof(err));
  if (rc == 0) rc = check_names("nodes", w->q.nodes, w->q.n_nodes, true, err, sizeof(err));
  if (rc == 0 && w->q.since_ms && w->q.until_ms && w->q.until_ms <= w->q.since_ms)
    rc = ty_errf(err, sizeof(err), TY_EINVAL, "until_ms: %lld is not after since_ms %lld",
                 (long long)w->q.until_ms, (long long)w->q.since_ms);
  if (rc == 0 && w->q.until_ms < 0) /* would match nothing, silently */
    rc = ty_errf(err, sizeof(err), TY_EINVAL, "until_ms: %lld is negative",
                 (long long)w->q.until_ms);
  if (rc == 0 && w->q.before_end_ms < 0)
    rc = ty_errf(err, sizeof(err), TY_EINVAL, "before_end_ms: %lld is negative",
                 (long long)w->q.before_end_ms);
  if (rc == 0 && w->q.before_id && !w->q.before_end_ms)
    rc = ty_errf(err, sizeof(err), TY_EINVAL,
                 "before_id: %llu without before_end_ms (a cursor is both: the last "
                 "JobRecord's end_ms and id)",
                 (unsigned long long)w->q.before_id);
  if (rc == 0) rc = add_live(ctl, w);
  if (rc == 0) rc = uv_queue_work(ctl->loop, &w->req, hist_run, hist_done);
  if (rc == 0) return;
  ty__reply_finish(r, rc, rc == TY_EINVAL ? err : ty_strerror(rc));
  hist_work_free(w);
}

void ty__h_get_history(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty__history_req q;
  int rc = ty__conv_history_req(p, n, &q);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a GetHistoryRequest");
    return;
  }
  ty__history_run(ctl, r, &q, ty__conv_history_resp);
}

/* ---- GetNode --------------------------------------------------------------------------- */

typedef struct ev_copies {
  ty_node_event_row *v;
  size_t n;
  int rc;
} ev_copies;

static int copy_node_event(const ty_node_event_row *e, void *ud) {
  ev_copies *c = ud;
  ty_node_event_row *v = realloc(c->v, (c->n + 1) * sizeof(*v));
  if (!v) return TY_ENOMEM;
  c->v = v;
  v[c->n] = (ty_node_event_row){.time_ms = e->time_ms,
                                .from_state = e->from_state,
                                .to_state = e->to_state,
                                .node = ty_strdup(e->node),
                                .action = ty_strdup(e->action),
                                .reason = ty_strdup(e->reason),
                                .actor = ty_strdup(e->actor)};
  c->n++;
  return 0;
}

static void free_node_events(ev_copies *c) {
  for (size_t i = 0; i < c->n; i++) {
    free((char *)c->v[i].node), free((char *)c->v[i].action);
    free((char *)c->v[i].reason), free((char *)c->v[i].actor);
  }
  free(c->v);
}

void ty__h_get_node(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  char *name = NULL;
  uint32_t limit = 0;
  int rc = ty__conv_get_node_req(p, n, &name, &limit);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a GetNodeRequest");
    return;
  }
  ty_cluster_node *nd = name[0] ? ty__node_find(ctl, name) : NULL;
  if (!nd) {
    ty__reply_finishf(r, name[0] ? TY_ENOTFOUND : TY_EINVAL,
                      name[0] ? "node %.64s not found" : "name: a node name is required%.0s", name);
    free(name);
    return;
  }
  free(name);
  ev_copies c = {0};
  /* node_events_by_node: the newest `limit` of this node only. */
  rc = ty_store_node_events(ctl->store, nd->name, limit ? limit : 100, copy_node_event, &c);
  if (rc == 0) rc = ty__conv_get_node_resp(nd, c.v, c.n, &r->out);
  free_node_events(&c);
  ty__reply_finish(r, rc, rc ? "cannot read the node's events" : NULL);
}
