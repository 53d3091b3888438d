/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Client methods: SubmitJob, ListJobs, GetJob, CancelJob, ListNodes,
 * GetTaskLocations. SubmitJob and CancelJob answer only after their rows and
 * events are committed (group commit); a graph job's submit first waits
 * for its model check and plan (check.c, a child process). The reads
 * answer at once from memory, except GetJob's events, read from the
 * store's reader connection.
 *
 * The caller is r->who (auth.c): a job belongs to the uid that submitted it,
 * whatever its `user` field said; listings show a job's command and
 * environment only to its owner and operators; cancelling and task tokens
 * need the owner or an operator.
 *
 * Retried submits: a SubmitJob carrying a request id that its user already
 * submitted is answered with the job that id created, once that job's
 * commit is durable, so a client that lost the connection before the answer
 * can send the same request again without creating a second job. A retry
 * that arrives while the first submit's model is still being checked waits
 * for that check and gets the first submit's answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

/* ---- SubmitJob ---------------------------------------------------------------------- */

static void on_submit_committed(int status, void *ud) {
  ty_reply *r = ud;
  ty_controller *ctl = r->ctl;
  ty_job *j = ty__job_find(ctl, r->job_id);
  if (status != 0 || !j) {
    ty__job_remove(ctl, r->job_id);
    ty__reply_finish(r, status == TY_ECLOSED ? TY_ECLOSED : TY_ESTORE,
                     "the job was not stored, so it was not accepted; retry");
    return;
  }
  j->committed = true;
  ty_metric_inc(ctl->m.submitted, NULL, 1);
  ty__conv_submit_resp(j->id, &r->out);
  ty__reply_finish(r, 0, NULL);
  ty__sched_request(ctl);
}

/* Checks what needs the controller's tables: the queue and the cluster's shape. */
static int check_placeable(ty_controller *ctl, ty_job_spec *s, char *err, size_t len) {
  int rc = ty__sched_check_spec(ctl, s, err, len); /* queue state, time limits (admin.c) */
  if (rc != 0) return rc;
  char why[TY_ERR_LEN];
  if (ty__sched_fits(ctl, s, why, sizeof(why)) != 0)
    return ty_errf(err, len, TY_EINVAL, "job.%s", why);
  return 0;
}

/* A new PENDING job owning spec, plan, blob and request id, the submitted
 * Job re-encoded with the defaults validation filled in and its submitter
 * (never the blob as sent: its run_as is the client's word). NULL, with
 * blob freed (and spec, plan and request id still the caller's), when it
 * cannot be re-encoded. */
static ty_job *job_new(ty_controller *ctl, const ty_job_spec *spec, uint8_t *blob, size_t len,
                       uint8_t *plan, size_t plan_len, char *request_id) {
  ty_job *j = ty_xcalloc(1, sizeof(*j));
  j->id = ctl->next_id;
  j->spec = *spec;
  int rc = ty__conv_normalize(blob, len, spec, &j->blob, &j->blob_len);
  free(blob);
  if (rc != 0) {
    free(j->blob);
    free(j);
    return NULL;
  }
  j->request_id = request_id;
  j->plan = plan;
  j->plan_len = plan_len;
  j->state = TY_JOB_PENDING;
  j->reason = ty_strdup("submitted");
  j->submit_ms = ty_now_ms();
  return j;
}

/* The job's row and its submit event; TY_ENOMEM when the spec cannot be
 * copied into the txn. */
static int submit_txn(const ty_job *j, ty_txn *t) {
  ty_job_row row;
  char *nodes, *alloc;
  ty__job_row(j, &row, &nodes, &alloc);
  int rc = ty_txn_insert_job(t, &row);
  free(nodes);
  free(alloc);
  if (rc != 0) return rc;
  char actor[300];
  snprintf(actor, sizeof(actor), "user:%s", j->spec.user);
  ty_event_row ev = {.job_id = j->id, .time_ms = j->submit_ms, .from_state = 0,
                     .to_state = TY_JOB_PENDING, .reason = "submitted", .actor = actor};
  ty_txn_add_event(t, &ev);
  return 0;
}

/* A retry's answer: the original job's id once its submit is durable. The
 * empty txn's callback runs after the original's (callbacks run in submit
 * order), so by then the original job is committed or gone. */
static void on_retry_committed(int status, void *ud) {
  ty_reply *r = ud;
  ty_job *j = ty__job_find(r->ctl, r->job_id);
  if (status != 0 || !j || !j->committed) {
    ty__reply_finish(r, TY_ESTORE, "the first submit with this request_id was not stored; retry");
    return;
  }
  ty__conv_submit_resp(j->id, &r->out);
  ty__reply_finish(r, 0, NULL);
}

/* r answers with job j once j is durable. */
static void answer_with_job(ty_controller *ctl, ty_reply *r, const ty_job *j) {
  r->job_id = j->id;
  if (j->committed) on_retry_committed(0, r);
  else ty__commit(ctl, ty_txn_create(), on_retry_committed, r);
}

/* Stores a checked job (taking spec, blob, plan and request id) and answers
 * once it is committed. The job, or NULL when it was refused. */
static ty_job *accept_job(ty_controller *ctl, ty_reply *r, ty_job_spec *spec, uint8_t *blob,
                          size_t blob_len, uint8_t *plan, size_t plan_len, char *rid) {
  const char *nomem = "job: no memory to store a job this large; it was not accepted";
  ty_job *j = job_new(ctl, spec, blob, blob_len, plan, plan_len, rid);
  if (!j) {
    ty_job_spec_close(spec);
    free(plan);
    free(rid);
    ty__reply_finish(r, TY_ENOMEM, nomem);
    return NULL;
  }
  ty_txn *t = ty_txn_create();
  int rc = submit_txn(j, t);
  if (rc != 0) {
    ty_txn_destroy(t);
    ty__job_free(j);
    ty__reply_finish(r, rc, nomem);
    return NULL;
  }
  ty__job_add(ctl, j);
  r->job_id = j->id;
  ty__commit(ctl, t, on_submit_committed, r);
  return j;
}

/* A graph job waiting for its model check (check.c), on ctl->checking
 * while it waits, with the retries of its request id that came meanwhile. */
struct ty__submit_wait {
  ty_reply *r;
  ty_job_spec spec;
  uint8_t *blob;
  size_t blob_len;
  char *rid;                    /* "" = none */
  ty_reply **retries;           /* answered as r is */
  size_t n_retries;
  struct ty__submit_wait *next;
};

static void unlink_wait(ty_controller *ctl, ty__submit_wait *sw) {
  ty__submit_wait **p = &ctl->checking;
  while (*p && *p != sw) p = &(*p)->next;
  if (*p) *p = sw->next;
}

static void on_checked(ty_controller *ctl, ty__check_result *res, void *ud) {
  ty__submit_wait *sw = ud;
  unlink_wait(ctl, sw);
  int rc = res->status ? res->status : ctl->stopping ? TY_ECLOSED : 0;
  const char *why = res->status ? res->message : "the controller is shutting down; the job was not accepted";
  ty_job *j = NULL;
  if (rc == 0) {
    j = accept_job(ctl, sw->r, &sw->spec, sw->blob, sw->blob_len, res->plan, res->plan_len, sw->rid);
    res->plan = NULL;
    if (!j) {
      rc = TY_ENOMEM;
      why = "the first submit with this request_id was not accepted; retry";
    }
  } else {
    ty__reply_finish(sw->r, rc, why);
    ty_job_spec_close(&sw->spec);
    free(sw->blob);
    free(sw->rid);
  }
  for (size_t i = 0; i < sw->n_retries; i++) {
    if (j) answer_with_job(ctl, sw->retries[i], j);
    else ty__reply_finish(sw->retries[i], rc, why);
  }
  free(sw->retries);
  free(sw);
}

/* Answers a submit whose request id its submitter (the credential's uid,
 * never a name the client sent) already used: a stored job, or one whose
 * check is running. False when the id is new for this uid, whoever else
 * used it. */
static bool answer_retry(ty_controller *ctl, ty_reply *r, uint32_t uid, const char *rid) {
  if (!rid[0]) return false;
  ty_job *j = ty__job_by_request(ctl, uid, rid);
  if (j) {
    ty_info("SubmitJob from %s: request_id %s is job %llu's; answering with it",
            r->conn ? ty_rpc_peer(r->conn) : "(gone)", rid, (unsigned long long)j->id);
    answer_with_job(ctl, r, j);
    return true;
  }
  for (ty__submit_wait *sw = ctl->checking; sw; sw = sw->next) {
    if (sw->spec.uid != uid || strcmp(sw->rid, rid) != 0) continue;
    ty_info("SubmitJob from %s: request_id %s is being checked; answering as its first submit",
            r->conn ? ty_rpc_peer(r->conn) : "(gone)", rid);
    sw->retries = ty_xrealloc(sw->retries, (sw->n_retries + 1) * sizeof(*sw->retries));
    sw->retries[sw->n_retries++] = r;
    return true;
  }
  return false;
}

void ty__h_submit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_job_spec spec;
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  char err[TY_ERR_LEN], *rid = NULL;
  int rc = ty__conv_submit(p, n, &spec, &blob, &blob_len, &rid);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a SubmitJobRequest carrying a job");
    return;
  }
  rc = ty_job_check_request_id(rid, err, sizeof(err));
  if (rc == 0) {
    /* The job is the caller's, whoever the client said it was. */
    free(spec.user);
    spec.user = ty_strdup(r->who.user);
    spec.has_uid = true;
    spec.uid = r->who.uid;
    spec.gid = r->who.gid;
    rc = ty_job_spec_validate(&spec, err, sizeof(err));
  }
  bool retry = rc == 0 && answer_retry(ctl, r, spec.uid, rid);
  if (rc == 0 && !retry) rc = check_placeable(ctl, &spec, err, sizeof(err));
  if (rc != 0 || retry) {
    ty_job_spec_close(&spec);
    free(blob);
    free(rid);
    if (rc != 0) ty__reply_finish(r, rc, err);
    return;
  }
  if (spec.kind != TY_JOB_KIND_GRAPH) {
    accept_job(ctl, r, &spec, blob, blob_len, NULL, 0, rid);
    return;
  }
  ty__submit_wait *sw = ty_xcalloc(1, sizeof *sw);
  *sw = (ty__submit_wait){.r = r, .spec = spec, .blob = blob, .blob_len = blob_len, .rid = rid,
                          .next = ctl->checking};
  ctl->checking = sw;
  ty__check_start(ctl, r, &sw->spec, spec.parallelism != TY_PARALLELISM_DATA, on_checked, sw);
}

/* ---- ListJobs, GetJob ------------------------------------------------------------------- */

bool ty__job_matches(const ty_job *j, const ty_list_filter *f) {
  if (!j->committed) return false;
  if (f->user[0] && strcmp(f->user, j->spec.user) != 0) return false;
  if (f->queue[0] && strcmp(f->queue, j->spec.queue) != 0) return false;
  if (f->n_states == 0) return true;
  for (size_t i = 0; i < f->n_states; i++)
    if (f->states[i] == j->state) return true;
  return false;
}

/* Answers in id order; with a limit, the newest `limit` matching jobs. */
void ty__h_list_jobs(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_list_filter f;
  int decoded = ty__conv_list_jobs_req(p, n, &f);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a ListJobsRequest");
    return;
  }
  ty_job **sel = ty_wire_calloc(ctl->n_jobs, sizeof(*sel));
  bool *full = ty_wire_calloc(ctl->n_jobs, sizeof(*full));
  if (!sel || !full) {
    free(sel);
    free(full);
    ty__list_filter_close(&f);
    ty__reply_finishf(r, TY_ENOMEM, "no memory to list %zu jobs", ctl->n_jobs);
    return;
  }
  size_t k = 0;
  for (size_t i = ctl->n_jobs; i-- > 0;) {
    if (f.limit && k == f.limit) break;
    if (ty__job_matches(ctl->jobs[i], &f)) sel[k++] = ctl->jobs[i];
  }
  for (size_t a = 0, b = k ? k - 1 : 0; a < b; a++, b--) {
    ty_job *tmp = sel[a];
    sel[a] = sel[b];
    sel[b] = tmp;
  }
  for (size_t i = 0; i < k; i++) full[i] = ty__auth_sees_job(r, sel[i]);
  int rc = ty__conv_list_jobs_resp(sel, full, k, &r->out);
  free(sel);
  free(full);
  ty__list_filter_close(&f);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}

typedef struct ev_list {
  ty_event_copy *v;
  size_t n, cap;
} ev_list;

static int collect_event(const ty_event_row *e, void *ud) {
  ev_list *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = ty_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = (ty_event_copy){.time_ms = e->time_ms, .from_state = e->from_state,
                                 .to_state = e->to_state, .reason = ty_strdup(e->reason)};
  return 0;
}

void ty__h_get_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t id;
  bool with_plan = false;
  int decoded = ty__conv_get_job_req(p, n, &id, &with_plan);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a GetJobRequest");
    return;
  }
  ty_job *j = ty__job_find(ctl, id);
  if (!j || !j->committed) {
    ty__reply_finishf(r, TY_ENOTFOUND, "job %llu not found", (unsigned long long)id);
    return;
  }
  ev_list evs = {0};
  if (ty_store_job_events(ctl->store, id, collect_event, &evs) != 0)
    ty_warn("GetJob %llu: cannot read events: %s", (unsigned long long)id,
            ty_store_errmsg(ctl->store));
  int rc = ty__conv_get_job_resp(j, ty__auth_sees_job(r, j), evs.v, evs.n, &r->out);
  if (rc == 0) rc = ty__graph_append_job(ctl, j, &r->out);
  if (rc == 0 && with_plan && j->plan_len && ty__auth_sees_job(r, j)) rc = ty__conv_job_plan(j->plan, j->plan_len, &r->out);
  for (size_t i = 0; i < evs.n; i++) free(evs.v[i].reason);
  free(evs.v);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}

/* ---- CancelJob ----------------------------------------------------------------------------- */

typedef struct cancel_ctx {
  ty_reply *r;
  ty_cancel_result *res;
  size_t n;
} cancel_ctx;

static void on_cancel_committed(int status, void *ud) {
  cancel_ctx *cc = ud;
  ty_controller *ctl = cc->r->ctl;
  int first_err = 0;
  const char *first_msg = "";
  for (size_t i = 0; i < cc->n; i++) {
    ty_cancel_result *res = &cc->res[i];
    if (res->status == 0 && status != 0) {
      res->status = ty_errf(res->message, sizeof(res->message), TY_ESTORE,
                            "job %llu: the cancellation was not stored",
                            (unsigned long long)res->job_id);
    }
    if (res->status == 0) {
      ty_job *j = ty__job_find(ctl, res->job_id);
      if (j && j->live_ranks) ty__job_kill(ctl, j);
    } else if (!first_err) {
      first_err = res->status;
      first_msg = res->message;
    }
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
  free(cc->res);
  free(cc);
}

static void cancel_one(ty_controller *ctl, ty_reply *r, uint64_t id, ty_cancel_result *res,
                       ty_txn *t) {
  res->job_id = id;
  ty_job *j = ty__job_find(ctl, id);
  char *msg = res->message;
  size_t len = sizeof(res->message);
  const char *user = r->who.user;
  if (!j || !j->committed) {
    res->status = ty_errf(msg, len, TY_ENOTFOUND, "job %llu not found", (unsigned long long)id);
  } else if ((res->status = ty__auth_job(r, j, "cancel", msg, len)) != 0) {
    ty_warn("refused CancelJob from %s: %s", user, msg);
    ty__auth_count(ctl, r->method, "not_owner");
  } else if (ty_job_check_transition(j->state, TY_JOB_CANCELLED) != 0) {
    res->status = ty_errf(msg, len, TY_ESTATE, "job %llu is already %s", (unsigned long long)id,
                          ty_job_state_name(j->state));
  } else {
    char why[TY_ERR_LEN], actor[128];
    snprintf(why, sizeof(why), "cancelled by %.64s", user);
    snprintf(actor, sizeof(actor), "user:%.64s", user);
    ty__job_transition(ctl, j, TY_JOB_CANCELLED, why, actor, t);
  }
}

void ty__h_cancel(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t *ids = NULL;
  size_t n_ids = 0;
  int decoded = ty__conv_cancel_req(p, n, &ids, &n_ids);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a CancelJobRequest");
    return;
  }
  if (n_ids == 0) {
    free(ids);
    ty__reply_finish(r, TY_EINVAL, "job_ids: at least one job id is required");
    return;
  }
  /* One result per id the client sent: its size is the request's. */
  ty_cancel_result *res = ty_wire_calloc(n_ids, sizeof(*res));
  if (!res) {
    free(ids);
    ty__reply_finishf(r, TY_ENOMEM, "job_ids: no memory to cancel %zu jobs at once", n_ids);
    return;
  }
  cancel_ctx *cc = ty_xcalloc(1, sizeof(*cc));
  cc->r = r;
  cc->n = n_ids;
  cc->res = res;
  ty_txn *t = ty_txn_create();
  for (size_t i = 0; i < n_ids; i++) cancel_one(ctl, r, ids[i], &cc->res[i], t);
  free(ids);
  if (ty_txn_len(t) == 0) {
    ty_txn_destroy(t);
    on_cancel_committed(0, cc);
    return;
  }
  ty__commit(ctl, t, on_cancel_committed, cc);
}

/* ---- ListNodes, GetTaskLocations ---------------------------------------------------------------- */

void ty__h_list_nodes(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  (void)p, (void)n; /* ListNodesRequest has no fields */
  int rc = ty__conv_list_nodes_resp(ctl->nodes, ctl->n_nodes, &r->out);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
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
  ty_job *j = ty__job_find(ctl, id);
  int rc = (!j || !j->committed)
               ? ty_errf(err, sizeof(err), TY_ENOTFOUND, "job %llu not found", (unsigned long long)id)
               : 0;
  /* Tokens read the job's logs and type into it: its owner's or an operator's. */
  if (rc == 0 && want_tokens && (rc = ty__auth_job(r, j, "tokens for", err, sizeof(err))) != 0)
    r->refusal = "not_owner";
  if (rc != 0) {
    ty__reply_finish(r, rc, err);
    return;
  }
  size_t token_len = 0;
  uint8_t *tokens = NULL;
  if (want_tokens && j->n_ranks && !(tokens = ty__token_issue(ctl, j, &token_len))) {
    ty__reply_finishf(r, TY_ENOMEM, "no memory for the tokens of %u ranks", j->n_ranks);
    return;
  }
  rc = ty__conv_task_locations_resp(j, tokens, token_len, &r->out);
  free(tokens);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}
