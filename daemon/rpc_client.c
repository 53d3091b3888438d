/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Client methods: GetJob, CancelJob, ListNodes, GetTaskLocations (SubmitJob
 * is submit.c's; ListJobs is list_jobs.c's, the accounting reads history.c's).
 * CancelJob answers only after its rows and events are committed (group
 * commit). The reads answer at once from memory, or from the store for a
 * finished job no longer in memory (one row by its key), except GetJob's
 * events, read from the store's reader connection.
 *
 * The caller is r->who (auth.c): a job belongs to the uid that submitted it,
 * whatever its `user` field said; listings show a job's command and
 * environment, a graph job's model path, config, checkpoint paths and plan
 * only to its owner and operators (one decision: ty__auth_sees_job);
 * cancelling and task tokens need the owner or an operator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* ---- GetJob ---------------------------------------------------------------------------- */

typedef struct ev_list {
  ty_event_copy *v;
  size_t n, cap;
  bool full; /* the caller is the job's owner or an operator: reasons as they are */
} ev_list;

static int collect_event(const ty_event_row *e, void *ud) {
  ev_list *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = ty_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  char reason[TY_ERR_LEN + 64];
  if (!l->full) ty_job_reason_public(e->reason, reason, sizeof reason);
  l->v[l->n++] = (ty_event_copy){.time_ms = e->time_ms,
                                 .from_state = e->from_state,
                                 .to_state = e->to_state,
                                 .reason = ty_strdup(l->full ? e->reason : reason)};
  return 0;
}

/* The job a reference names, or the answer TY_ENOTFOUND (then NULL). */
static ty_job *job_or_answer(ty_controller *ctl, ty_reply *r, const ty_job_ref *ref) {
  ty_job *j = ty__job_ref(ctl, ref);
  if (j && j->committed) return j;
  char name[48];
  ty_job_ref_format(ref, name, sizeof(name));
  ty__reply_finishf(r, TY_ENOTFOUND, "job %s not found", name);
  return NULL;
}

/* GetJob: the job's state and spec from memory, its events from the store
 * (rpc.c runs it once the writes queued before it are stored). */
void ty__h_get_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_job_ref ref;
  bool with_plan = false;
  int decoded = ty__conv_job_ref_req(p, n, &ref, &with_plan);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a GetJobRequest");
    return;
  }
  ty_job *j = job_or_answer(ctl, r, &ref);
  if (!j) return;
  bool full = ty__auth_sees_job(r, j);
  ev_list evs = {.full = full};
  if (ty__job_events(ctl, j, collect_event, &evs) != 0)
    ty_warn("GetJob %llu: cannot read events: %s", (unsigned long long)j->id,
            ty_store_errmsg(ctl->store));
  const ty_buf *info = ty__job_info(ctl, j, full ? TY__INFO_FULL : TY__INFO_REDACTED);
  int rc = info ? ty__conv_get_job_resp(info->data, info->len, evs.v, evs.n, &r->out) : TY_ENOMEM;
  if (rc == 0) rc = ty__graph_append_job(ctl, j, full, &r->out);
  if (rc == 0 && with_plan && j->plan_len && full)
    rc = ty__conv_job_plan(j->plan, j->plan_len, &r->out);
  else if (rc == 0 && j->plan_len && !full) /* said, so a client does not show "no plan" */
    rc = ty__conv_plan_withheld(&r->out);
  for (size_t i = 0; i < evs.n; i++)
    free(evs.v[i].reason);
  free(evs.v);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}

/* ---- CancelJob ----------------------------------------------------------------------------- */

typedef struct cancel_ctx {
  ty_reply *r;
  ty_cancel_result *res;
  size_t n;
  uint64_t *killed; /* jobs whose ranks must be killed once this is durable */
  size_t n_killed;
} cancel_ctx;

static void on_cancel_committed(int status, void *ud) {
  cancel_ctx *cc = ud;
  ty_controller *ctl = cc->r->ctl;
  int first_err = 0;
  const char *first_msg = "";
  char why[256] = "";
  if (status != 0 && status != TY_ECLOSED) ty_committer_last_error(ctl->commit, why, sizeof why);
  for (size_t i = 0; i < cc->n; i++) {
    ty_cancel_result *res = &cc->res[i];
    if (res->status == 0 && status == TY_ECLOSED)
      res->status = ty_errf(res->message, sizeof(res->message), TY_ECLOSED,
                            "job %llu: the cancellation was not stored: the controller is "
                            "stopping; cancel it again once it is back",
                            (unsigned long long)res->job_id);
    else if (res->status == 0 && status != 0)
      res->status = ty_errf(res->message, sizeof(res->message), TY_ESTORE,
                            "job %llu: cancelled, but not stored yet (the controller's store "
                            "failed: %s): its tasks are killed, and the controller writes it "
                            "again once its store takes writes",
                            (unsigned long long)res->job_id, why[0] ? why : "see its log");
    if (res->status != 0 && !first_err) first_err = res->status, first_msg = res->message;
  }
  /* Memory says CANCELLED whether or not it was stored (resync.c stores it
   * later): the tasks go either way, unless the controller is stopping. */
  for (size_t i = 0; status != TY_ECLOSED && i < cc->n_killed; i++) {
    ty_job *j = ty__job_find(ctl, cc->killed[i]);
    if (j && j->live_ranks) ty__job_kill(ctl, j);
  }
  ty__sched_request(ctl);
  cc->r->refusal_counted = true; /* each refused id was counted by cancel_one */
  /* One id: its error is the answer's. Several: one result each, whatever
   * happened to the others, so the client can report every id. */
  if (cc->n == 1 && first_err) {
    ty__reply_finish(cc->r, first_err, first_msg);
  } else {
    ty__conv_cancel_resp(cc->res, cc->n, &cc->r->out);
    ty__reply_finish(cc->r, 0, NULL);
  }
  free(cc->killed);
  free(cc->res);
  free(cc);
}

static void cancel_job(ty_controller *ctl, ty_job *j, const char *user, cancel_ctx *cc, ty_txn *t) {
  char why[TY_ERR_LEN], actor[128];
  snprintf(why, sizeof(why), "cancelled by %.64s", user);
  snprintf(actor, sizeof(actor), "user:%.64s", user);
  ty__job_transition(ctl, j, TY_JOB_CANCELLED, why, actor, t);
  if (j->live_ranks) {
    cc->killed = ty_xrealloc(cc->killed, (cc->n_killed + 1) * sizeof(*cc->killed));
    cc->killed[cc->n_killed++] = j->id;
  }
}

/* An array's id: every element not yet ended (an array has one owner). */
static void cancel_array(ty_controller *ctl, uint64_t id, const char *user, cancel_ctx *cc,
                         ty_cancel_result *res, ty_txn *t) {
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->array_id != id || !j->committed || ty_job_state_terminal(j->state)) continue;
    cancel_job(ctl, j, user, cc, t);
    res->cancelled++;
  }
  if (!res->cancelled)
    res->status = ty_errf(res->message, sizeof(res->message), TY_ESTATE,
                          "array %llu has no pending or running elements", (unsigned long long)id);
  else
    snprintf(res->message, sizeof(res->message), "cancelled %u element%s of array %llu",
             res->cancelled, res->cancelled == 1 ? "" : "s", (unsigned long long)id);
}

/* The caller (r->who) must own the job, or the array (its elements have
 * one owner), or be an operator. */
static void cancel_one(ty_controller *ctl, ty_reply *r, const ty_job_ref *ref, cancel_ctx *cc,
                       ty_cancel_result *res, ty_txn *t) {
  const char *user = r->who.user;
  *res = (ty_cancel_result){.job_id = ref->id, .has_task = ref->has_task, .task = ref->task};
  char name[48], *msg = res->message;
  size_t len = sizeof(res->message);
  ty_job_ref_format(ref, name, sizeof(name));
  ty_job *j = ty__job_ref(ctl, ref);
  if (!j || !j->committed) {
    res->status = ty_errf(msg, len, TY_ENOTFOUND, "job %s not found", name);
  } else if ((res->status = ty__auth_job(r, j, "cancel", msg, len)) != 0) {
    ty_warn("refused CancelJob from %s: %s", user, msg);
    ty__auth_count(ctl, r->method, "not_owner");
  } else if (!ref->has_task && j->array_id == ref->id) {
    cancel_array(ctl, ref->id, user, cc, res, t);
  } else if (ty_job_check_transition(j->state, TY_JOB_CANCELLED) != 0) {
    res->status =
        ty_errf(msg, len, TY_ESTATE, "job %s is already %s", name, ty_job_state_name(j->state));
  } else {
    cancel_job(ctl, j, user, cc, t);
    res->cancelled = 1;
  }
}

void ty__h_cancel(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_job_ref *refs = NULL;
  size_t n_refs = 0;
  int decoded = ty__conv_cancel_req(p, n, &refs, &n_refs);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a CancelJobRequest");
    return;
  }
  if (n_refs == 0) {
    free(refs);
    ty__reply_finish(r, TY_EINVAL, "job_ids: at least one job id is required");
    return;
  }
  /* One result per id the client sent: its size is the request's. */
  ty_cancel_result *res = ty_wire_calloc(n_refs, sizeof(*res));
  if (!res) {
    free(refs);
    ty__reply_finishf(r, TY_ENOMEM, "job_ids: no memory to cancel %zu jobs at once", n_refs);
    return;
  }
  cancel_ctx *cc = ty_xcalloc(1, sizeof(*cc));
  *cc = (cancel_ctx){.r = r, .n = n_refs, .res = res};
  ty_txn *t = ty_txn_create();
  for (size_t i = 0; i < n_refs; i++)
    cancel_one(ctl, r, &refs[i], cc, &cc->res[i], t);
  free(refs);
  if (ty_txn_len(t) == 0) {
    ty_txn_destroy(t);
    on_cancel_committed(0, cc);
    return;
  }
  ty__commit(ctl, t, on_cancel_committed, cc);
}

/* ---- ListNodes, GetTaskLocations ----------------------------------------------------------------
 */

void ty__h_list_nodes(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  (void)p, (void)n; /* ListNodesRequest has no fields */
  int rc = ty__conv_list_nodes_resp(ctl->nodes, ctl->n_nodes, &r->out);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}

/* The rank records of a job's runs (the store's ranks table), by run then
 * rank, each with its node's I/O address now; node and io_addr are heap
 * copies (run_ranks_free). */
typedef struct run_ranks {
  ty__run_loc *v;
  uint32_t n, n_tokens; /* n_tokens: the highest rank + 1 */
  ty_controller *ctl;
} run_ranks;

static int run_rank(const ty_rank_row *row, void *ud) {
  run_ranks *s = ud;
  ty_cluster_node *nd = ty__node_find(s->ctl, row->node);
  s->v = ty_xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
  s->v[s->n++] = (ty__run_loc){.run = row->run,
                               .rank = row->rank,
                               .node = ty_strdup(row->node),
                               .io_addr = ty_strdup(nd && nd->io_addr ? nd->io_addr : ""),
                               .start_ms = row->start_ms};
  if (row->rank >= s->n_tokens) s->n_tokens = row->rank + 1;
  return 0;
}

static void run_ranks_free(run_ranks *s) {
  for (uint32_t i = 0; i < s->n; i++)
    free((char *)s->v[i].node), free((char *)s->v[i].io_addr);
  free(s->v);
}

/* How many of the first rows are runs before `run`. */
static uint32_t runs_before(const run_ranks *s, uint32_t run) {
  uint32_t n = 0;
  while (n < s->n && s->v[n].run < run)
    n++;
  return n;
}

/* The job's runs, tokens for every rank of them when asked, encoded into
 * r. An ended job read back from the store has no slots in memory: where
 * its last run's ranks ran comes from the ranks table too (ranks 0..n-1
 * in order), so its logs stay readable on the workers for as long as they
 * keep them (trainworkerd --log-retention). A job in memory gives its
 * current run; one never requeued has no earlier run to read. */
static int encode_runs(ty_controller *ctl, const ty_job *j, bool full, bool stored,
                       bool want_tokens, ty_buf *out) {
  run_ranks s = {.ctl = ctl, .n_tokens = j->n_ranks};
  int rc = stored || j->requeue_count ? ty_store_job_runs(ctl->store, j->id, run_rank, &s) : 0;
  uint32_t last_run = s.n ? s.v[s.n - 1].run : 0;
  uint32_t current = stored ? last_run : j->state == TY_JOB_PENDING ? UINT32_MAX : j->acct_run;
  uint32_t n_earlier = runs_before(&s, current), n_last = 0;
  while (stored && n_earlier + n_last < s.n && s.v[n_earlier + n_last].rank == n_last)
    n_last++; /* a gap: only ranks 0..n-1 in order */
  size_t token_len = 0;
  uint8_t *tokens = NULL;
  if (rc == 0 && want_tokens && s.n_tokens &&
      !(tokens = ty__token_issue_n(ctl, j->id, s.n_tokens, &token_len)))
    rc = TY_ENOMEM;
  if (rc == 0 && stored)
    rc = ty__conv_stored_locations_resp(j, full, s.v + n_earlier, n_last, s.v, n_earlier, tokens,
                                        token_len, out);
  else if (rc == 0)
    rc = ty__conv_task_locations_resp(j, full, s.v, n_earlier, tokens, token_len, out);
  free(tokens);
  run_ranks_free(&s);
  return rc;
}

void ty__h_task_locations(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t id;
  bool want_tokens = false;
  char err[TY_ERR_LEN];
  int decoded = ty__conv_task_locations_req(p, n, &id, &want_tokens);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a GetTaskLocationsRequest");
    return;
  }
  ty_job *j = ty__job_get(ctl, id);
  int rc = (!j || !j->committed) ? ty_errf(err, sizeof(err), TY_ENOTFOUND, "job %llu not found",
                                           (unsigned long long)id)
                                 : 0;
  /* Tokens read the job's logs and type into it: its owner's or an operator's. */
  if (rc == 0 && want_tokens &&
      (rc = ty__auth_job(r, j, "read or attach to the tasks of", err, sizeof(err))) != 0)
    r->refusal = "not_owner";
  if (rc != 0) {
    ty__reply_finish(r, rc, err);
    return;
  }
  bool stored = !j->n_slots && ty_job_state_terminal(j->state) && j->start_ms;
  rc = encode_runs(ctl, j, ty__auth_sees_job(r, j), stored, want_tokens, &r->out);
  ty__reply_finish(r, rc,
                   rc == TY_ENOMEM ? "no memory for the job's locations and tokens"
                   : rc            ? "cannot read the job's runs from the store or encode them"
                                   : NULL);
}
