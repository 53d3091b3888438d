/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's JSON documents (web.c routes to them). They read the
 * same in-memory tables and store queries as trainctl's requests: ListNodes'
 * nodes, ListQueues' counts, GetShares' rows, ListJobs' filter
 * (ty__job_matches), GetJob's events, ranks, progress and plan.
 * Field names follow `trainctl --json` where both exist. Times are Unix
 * milliseconds; absent values are null.
 *
 * Workload: a browser polls a page's document every 2 s; a cluster of
 * thousands of jobs answers /api/jobs (newest first, at most `limit`) in a
 * walk of the job table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "lib/json/json.h"
#include "ops/plan/plan.h"

static void key_str(ty_json *w, const char *k, const char *v) {
  ty_json_key(w, k);
  ty_json_string(w, v);
}
static void key_uint(ty_json *w, const char *k, uint64_t v) {
  ty_json_key(w, k);
  ty_json_uint(w, v);
}
static void key_int(ty_json *w, const char *k, int64_t v) {
  ty_json_key(w, k);
  ty_json_int(w, v);
}
static void key_double(ty_json *w, const char *k, double v) {
  ty_json_key(w, k);
  ty_json_double(w, v);
}
/* A Unix time in ms, null when 0 (not yet). */
static void key_time(ty_json *w, const char *k, int64_t ms) {
  ty_json_key(w, k);
  if (ms)
    ty_json_int(w, ms);
  else
    ty_json_null(w);
}

/* ---- /api/cluster ------------------------------------------------------------------------ */

static void node_json(ty_json *w, const ty_cluster_node *n, int64_t now_ms, int64_t now_mono) {
  ty_json_begin_object(w);
  key_str(w, "name", n->name);
  key_str(w, "state", ty_node_state_name(n->state));
  key_uint(w, "cpus", n->cpus);
  key_uint(w, "cpus_used", n->cpus_used);
  key_uint(w, "gpus", n->n_gpus);
  key_uint(w, "gpus_used", (uint64_t)__builtin_popcountll(n->gpus_used));
  key_uint(w, "memory", n->memory);
  key_uint(w, "mem_used", n->mem_used);
  key_uint(w, "running_tasks", n->running_tasks);
  key_double(w, "heartbeat_age_s", ty__node_heartbeat_age_s(n, now_ms, now_mono));
  key_str(w, "reason", n->reason ? n->reason : "");
  ty_json_end_object(w);
}

/* Pending and running jobs and GPUs in use per queue (ListQueues' counts). */
static void queue_counts(ty_controller *ctl, uint32_t *pending, uint32_t *running, uint32_t *gpus) {
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    if (!j->committed || (j->state != TY_JOB_PENDING && j->state != TY_JOB_RUNNING)) continue;
    for (size_t q = 0; q < ctl->n_queues; q++) {
      if (strcmp(ctl->queues[q].name, j->spec.queue) != 0) continue;
      if (j->state == TY_JOB_PENDING)
        pending[q]++;
      else
        running[q]++, gpus[q] += j->spec.gpus_per_node * j->spec.nodes;
    }
  }
}

static void queues_json(ty_controller *ctl, ty_json *w) {
  size_t nq = ctl->n_queues ? ctl->n_queues : 1;
  uint32_t *pending = ty_xcalloc(nq * 3, sizeof(*pending)), *running = pending + nq,
           *gpus = pending + 2 * nq;
  queue_counts(ctl, pending, running, gpus);
  ty_sched_share *rows = NULL;
  size_t n_rows = 0;
  if (ty__sched_usage_shares(ctl, &rows, &n_rows) != 0) n_rows = 0;
  ty_json_key(w, "queues");
  ty_json_begin_array(w);
  for (size_t q = 0; q < ctl->n_queues; q++) {
    const ty_queue_info *qu = &ctl->queues[q];
    if (qu->state == TY_QUEUE_DELETED) continue;
    ty_json_begin_object(w);
    key_str(w, "name", qu->name);
    key_str(w, "state", ty_queue_state_name(qu->state));
    key_int(w, "tier", qu->tier);
    key_uint(w, "pending", pending[q]);
    key_uint(w, "running", running[q]);
    key_uint(w, "gpus_used", gpus[q]);
    key_uint(w, "default_mem", qu->default_mem); /* bytes per node, 0 = none */
    key_uint(w, "max_mem", qu->max_mem);
    for (size_t r = 0; r < n_rows; r++)
      if (!rows[r].user && strcmp(rows[r].queue, qu->name) == 0) {
        key_double(w, "share", rows[r].share);
        key_double(w, "usage", rows[r].usage_norm);
      }
    ty_json_end_object(w);
  }
  ty_json_end_array(w);
  free(rows);
  free(pending);
}

/* The jobs per state that /api/jobs lists: the live ones and the finished
 * ones still cached (ended ones the store holds beyond those are
 * /api/history's), so a count and the list agree. */
static void count_states(ty_controller *ctl, uint32_t *states) {
  for (size_t i = 0; i < ctl->n_jobs; i++)
    if (ctl->jobs[i]->committed && ctl->jobs[i]->state <= TY_JOB_STATE_MAX)
      states[ctl->jobs[i]->state]++;
  for (const ty_job *j = ctl->lru_head; j; j = j->lru_next)
    if (j->committed && j->state <= TY_JOB_STATE_MAX) states[j->state]++;
}

int ty__web_cluster_json(ty_controller *ctl, const ty_auth_id *who, bool operator, ty_buf * out) {
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  key_int(&w, "time_ms", ty_now_ms());
  ty_json_key(&w, "you"); /* whom the console acts as: the pages offer what they may do */
  ty_json_begin_object(&w);
  key_str(&w, "user", who->user);
  key_uint(&w, "uid", who->uid);
  ty_json_key(&w, "operator");
  ty_json_bool(&w, operator);
  ty_json_end_object(&w);
  int64_t now_ms = ty_now_ms(), now_mono = ty_mono_ms();
  ty_json_key(&w, "nodes");
  ty_json_begin_array(&w);
  for (size_t i = 0; i < ctl->n_nodes; i++)
    node_json(&w, ctl->nodes[i], now_ms, now_mono);
  ty_json_end_array(&w);
  queues_json(ctl, &w);
  uint32_t states[TY_JOB_STATE_MAX + 1] = {0};
  count_states(ctl, states);
  ty_json_key(&w, "jobs");
  ty_json_begin_object(&w);
  for (int s = 1; s <= TY_JOB_STATE_MAX; s++)
    key_uint(&w, ty_job_state_name(s), states[s]);
  ty_json_end_object(&w);
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* ---- /api/jobs ------------------------------------------------------------------------------ */

/* Its nodes: from its slots, or for a finished job read back from the
 * store, from the stored list. */
static void job_nodes(ty_json *w, const ty_job *j) {
  ty_json_key(w, "nodes");
  ty_json_begin_array(w);
  for (uint32_t s = 0; s < j->n_slots; s++)
    ty_json_string(w, j->slots[s].node->name);
  for (const char *p = j->n_slots ? NULL : j->nodes_csv; p && *p;) {
    size_t n = strcspn(p, ",");
    if (n) ty_json_string_n(w, p, n);
    p += n + (p[n] == ',');
  }
  ty_json_end_array(w);
}

/* Its reason: in full for its owner and operators (`full`), else its
 * public form (ty_job_reason_public). */
static void key_reason(ty_json *w, const char *reason, bool full) {
  char pub[TY_ERR_LEN + 64];
  if (!full) ty_job_reason_public(reason, pub, sizeof pub);
  key_str(w, "reason", full ? (reason ? reason : "") : pub);
}

/* Its array and task when it is an element of one (trainctl shows it as
 * ARRAY_TASK), else null. */
static void key_array(ty_json *w, const ty_job *j) {
  ty_json_key(w, "array_job_id");
  if (j->array_id)
    ty_json_uint(w, j->array_id);
  else
    ty_json_null(w);
  ty_json_key(w, "array_task_id");
  if (j->array_id)
    ty_json_uint(w, j->array_task);
  else
    ty_json_null(w);
}

static void job_summary(ty_json *w, const ty_job *j, bool full) {
  key_uint(w, "id", j->id);
  key_array(w, j);
  key_str(w, "name", j->spec.name ? j->spec.name : "");
  key_str(w, "user", j->spec.user);
  ty_json_key(w, "uid"); /* the owner the console's actions check against; null when unknown */
  if (j->spec.has_uid)
    ty_json_uint(w, j->spec.uid);
  else
    ty_json_null(w);
  key_str(w, "queue", j->spec.queue);
  key_str(w, "state", ty_job_state_name(j->state));
  key_reason(w, j->reason, full);
  ty_json_key(w, "redacted"); /* exit codes and the reasons' details are withheld */
  ty_json_bool(w, !full);
  key_str(w, "kind", j->spec.kind == TY_JOB_KIND_GRAPH ? "graph" : "command");
  key_time(w, "submit_ms", j->submit_ms);
  key_time(w, "start_ms", j->start_ms);
  key_time(w, "end_ms", j->end_ms);
  key_uint(w, "n_nodes", j->spec.nodes);
  key_uint(w, "tasks_per_node", j->spec.tasks_per_node);
  key_uint(w, "gpus_per_node", j->spec.gpus_per_node);
  key_uint(w, "cpus_per_task", j->spec.cpus_per_task);
  job_nodes(w, j);
}

static int by_id_desc(const void *a, const void *b) {
  uint64_t x = (*(const ty_job *const *)a)->id, y = (*(const ty_job *const *)b)->id;
  return x > y ? -1 : x < y;
}

/* The jobs in memory that match, newest first: the live set and the
 * finished jobs still cached (recently ended or looked up). Older history
 * is the store's (`trainctl history`): the loop does not query it here. */
int ty__web_jobs_json(ty_controller *ctl, const ty_list_filter *f, const ty_reply *view,
                      ty_buf *out) {
  const ty_job **sel = malloc((ctl->n_jobs + ctl->done.count + 1) * sizeof(*sel));
  if (!sel) return TY_ENOMEM;
  size_t matched = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++)
    if (ty__job_matches(ctl->jobs[i], f)) sel[matched++] = ctl->jobs[i];
  for (const ty_job *j = ctl->lru_head; j; j = j->lru_next)
    if (ty__job_matches(j, f)) sel[matched++] = j;
  qsort(sel, matched, sizeof(*sel), by_id_desc);
  size_t shown = matched < f->limit ? matched : f->limit;
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  ty_json_key(&w, "jobs");
  ty_json_begin_array(&w);
  for (size_t i = 0; i < shown; i++) {
    ty_json_begin_object(&w);
    job_summary(&w, sel[i], ty__auth_sees_job(view, sel[i]));
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  key_uint(&w, "matched", matched);
  ty_json_key(&w, "truncated");
  ty_json_bool(&w, shown < matched);
  ty_json_end_object(&w);
  free(sel);
  return ty_json_finish(&w);
}

/* ---- /api/jobs/ID ---------------------------------------------------------------------------- */

/* Each rank's node and state; its end (exit code, signal, the worker's
 * reason) only when `full`. */
static void ranks_json(ty_json *w, const ty_job *j, bool full) {
  ty_json_key(w, "ranks");
  ty_json_begin_array(w);
  static const char *const rank_states[] = {"WAITING", "LAUNCHING", "RUNNING", "ENDED"};
  for (uint32_t r = 0; r < j->n_ranks; r++) {
    const ty_rank *rk = &j->ranks[r];
    ty_json_begin_object(w);
    key_uint(w, "rank", r);
    key_str(w, "node", rk->slot < j->n_slots ? j->slots[rk->slot].node->name : "");
    key_str(w, "state", rank_states[rk->state]);
    if (rk->state == RANK_ENDED && full) {
      key_int(w, "exit_code", rk->exit_code);
      key_int(w, "signal", rk->term_signal);
      ty_json_key(w, "timed_out");
      ty_json_bool(w, rk->timed_out);
      ty_json_key(w, "oom_killed");
      ty_json_bool(w, rk->oom_killed);
    }
    key_str(w, "reason", full && rk->reason ? rk->reason : "");
    ty_json_end_object(w);
  }
  ty_json_end_array(w);
}

typedef struct ev_ctx {
  ty_json *w;
  bool full; /* reasons in full, else their public form */
} ev_ctx;

static int event_json(const ty_event_row *e, void *ud) {
  ty_json *w = ((ev_ctx *)ud)->w;
  ty_json_begin_object(w);
  key_int(w, "time_ms", e->time_ms);
  key_str(w, "from", e->from_state ? ty_job_state_name(e->from_state) : "");
  key_str(w, "to", ty_job_state_name(e->to_state));
  key_reason(w, e->reason, ((ev_ctx *)ud)->full);
  key_str(w, "actor", e->actor ? e->actor : "");
  ty_json_end_object(w);
  return 0;
}

static void progress_json(ty_json *w, const ty_train_progress *p) {
  ty_json_key(w, "progress");
  if (!p) {
    ty_json_null(w);
    return;
  }
  ty_json_begin_object(w);
  key_uint(w, "step", p->step);
  key_uint(w, "total_steps", p->total_steps);
  key_uint(w, "epoch", p->epoch);
  key_double(w, "loss", p->loss);
  key_double(w, "samples_per_s", p->samples_per_s);
  ty_json_key(w, "test_accuracy");
  if (p->test_accuracy >= 0)
    ty_json_double(w, p->test_accuracy);
  else
    ty_json_null(w);
  key_uint(w, "checkpoint_step", p->checkpoint_step);
  key_time(w, "time_ms", p->time_ms);
  ty_json_end_object(w);
}

/* GET /api/jobs/ID/plan: ops/plan's JSON (what `trainctl plan --json`
 * prints), as it is; TY_ENOTFOUND when the job has no plan. */
int ty__web_plan_json(const ty_job *j, ty_buf *out) {
  ty_plan *plan = NULL;
  char err[TY_ERR_LEN];
  if (!j->plan_len) return TY_ENOTFOUND;
  int rc = ty_plan_decode(j->plan, j->plan_len, &plan, err, sizeof(err));
  if (rc != 0) {
    ty_warn("web: job %llu: stored plan does not decode: %s", (unsigned long long)j->id, err);
    return rc;
  }
  rc = ty_plan_to_json(plan, out);
  ty_plan_destroy(plan);
  return rc;
}

int ty__web_job_json(ty_controller *ctl, const ty_job *j, bool full, ty_buf *out) {
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  ty_json_key(&w, "job");
  ty_json_begin_object(&w);
  job_summary(&w, j, full);
  key_uint(&w, "time_limit_s", j->spec.time_limit_s);
  ty_json_key(&w, "exclusive"); /* whole nodes (--exclusive) */
  ty_json_bool(&w, j->spec.exclusive);
  ty_json_key(&w, "no_requeue"); /* --no-requeue: never requeued */
  ty_json_bool(&w, j->spec.no_requeue);
  ty_json_key(&w, "required_nodes"); /* -w/--nodelist, a hostlist; "" = none */
  ty_json_string(&w, j->req_list ? j->req_list : "");
  ty_json_key(&w, "excluded_nodes"); /* -x/--exclude */
  ty_json_string(&w, j->exc_list ? j->exc_list : "");
  key_uint(&w, "requeue_count", j->requeue_count);
  ty_json_key(&w, "exit_code"); /* null: not ended yet, or withheld (the owner's and operators') */
  if (full && ty_job_state_terminal(j->state))
    ty_json_int(&w, j->exit_code);
  else
    ty_json_null(&w);
  ranks_json(&w, j, full);
  ty_json_key(&w, "events");
  ty_json_begin_array(&w);
  ev_ctx ev = {&w, full};
  if (ty__job_events(ctl, j, event_json, &ev) != 0)
    ty_warn("web: job %llu: cannot read events: %s", (unsigned long long)j->id,
            ty_store_errmsg(ctl->store));
  ty_json_end_array(&w);
  ty_json_end_object(&w);
  progress_json(&w, j->spec.kind == TY_JOB_KIND_GRAPH ? ty__graph_progress(ctl, j->id) : NULL);
  /* The plan is its owner's and the operators' (/plan answers others 403):
   * has_plan only for them, plan_withheld for anyone else when it has one. */
  ty_json_key(&w, "has_plan");
  ty_json_bool(&w, j->plan_len > 0 && full);
  if (j->plan_len > 0 && !full) {
    ty_json_key(&w, "plan_withheld");
    ty_json_bool(&w, true);
  }
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* The curve after (after_attempt, after) in (attempt, step) order; all of
 * it when after is UINT64_MAX. */
int ty__web_curve_json(ty_controller *ctl, const ty_job *j, uint32_t after_attempt, uint64_t after,
                       ty_buf *out) {
  size_t n = 0;
  const ty__progress_point *pts = ty__graph_history(ctl, j->id, &n);
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  key_str(&w, "state", ty_job_state_name(j->state));
  key_uint(&w, "attempt", j->requeue_count);
  /* [step, loss, samples/s, test accuracy or null, time_ms, attempt] */
  ty_json_key(&w, "points");
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++) {
    bool later =
        pts[i].attempt > after_attempt || (pts[i].attempt == after_attempt && pts[i].step > after);
    if (after != UINT64_MAX && !later) continue;
    ty_json_begin_array(&w);
    ty_json_uint(&w, pts[i].step);
    ty_json_double(&w, pts[i].loss);
    ty_json_double(&w, pts[i].samples_per_s);
    if (pts[i].test_accuracy >= 0)
      ty_json_double(&w, pts[i].test_accuracy);
    else
      ty_json_null(&w);
    ty_json_int(&w, pts[i].time_ms);
    ty_json_uint(&w, pts[i].attempt);
    ty_json_end_array(&w);
  }
  ty_json_end_array(&w);
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* ---- /api/history -----------------------------------------------------------------------------
 */

static void history_job(ty_json *w, const ty__acct_job *a) {
  ty_json_begin_object(w);
  key_uint(w, "id", a->id);
  key_str(w, "name", a->name ? a->name : "");
  key_str(w, "user", a->user ? a->user : "");
  key_str(w, "queue", a->queue ? a->queue : "");
  key_str(w, "state", ty_job_state_name(a->state));
  key_str(w, "reason", a->reason ? a->reason : "");
  key_int(w, "exit_code", a->exit_code);
  key_int(w, "signal", a->term_signal);
  key_time(w, "submit_ms", a->submit_ms);
  key_time(w, "start_ms", a->start_ms);
  key_time(w, "end_ms", a->end_ms);
  key_str(w, "nodes", a->nodes ? a->nodes : "");
  key_uint(w, "requeue_count", a->requeue_count);
  key_uint(w, "cpus", a->cpus);
  key_uint(w, "gpus", a->gpus);
  key_double(w, "cpu_s", (double)a->cpu_ms / 1000.0);
  key_double(w, "gpu_s", (double)a->gpu_ms / 1000.0);
  key_int(w, "mem_peak", a->mem_peak);
  ty_json_key(w, "measured");
  ty_json_bool(w, a->measured);
  ty_json_end_object(w);
}

/* GetHistory's jobs, newest end first, and the cursor of the next page
 * ("END_MS:ID" of the last one) when there is more. */
int ty__web_history_json(const ty__acct_job *jobs, size_t n, bool truncated, ty_buf *out) {
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  ty_json_key(&w, "jobs");
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++)
    history_job(&w, &jobs[i]);
  ty_json_end_array(&w);
  ty_json_key(&w, "next");
  if (truncated && n) {
    char cur[48];
    snprintf(cur, sizeof(cur), "%lld:%llu", (long long)jobs[n - 1].end_ms,
             (unsigned long long)jobs[n - 1].id);
    ty_json_string(&w, cur);
  } else {
    ty_json_null(&w);
  }
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}
