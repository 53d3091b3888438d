/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SubmitJob: a job (or an array) checked, created in memory and answered
 * only once its rows and events are committed (group commit); a graph
 * job's submit first waits for its model check and plan (check.c, a child
 * process); a test-only submit is answered with an estimate and creates
 * nothing (submit_test.c). The other client methods are rpc_client.c's.
 *
 * A submit with an array creates every element in the one request and the
 * one transaction: ids in task order from the array's id (the first
 * element's). In memory each element is a job; in the store the array is
 * one record until its elements leave it one by one (store.c, jobs.c).
 * A graph job's model_bytes are written to a file in the state directory
 * before the commit and the job keeps only its path, so neither memory nor
 * the stored spec holds them.
 *
 * A submit with `watch` (rlaunch) is answered, once durable, by the job's
 * watch stream (watch.c) instead of a SubmitJobResponse. An array cannot
 * be watched so: its elements are jobs of their own (WatchJob each).
 *
 * The caller is r->who (auth.c): a job belongs to the uid that submitted
 * it, whatever its `user` field said.
 *
 * Retried submits: a SubmitJob carrying a request id that its user already
 * submitted is answered with the job (an array's first element) that id
 * created, once that job's commit is durable, so a client that lost the
 * connection before the answer can send the same request again without
 * creating a second job. A retry that arrives while the first submit's
 * model is still being checked waits for that check and gets the first
 * submit's answer. The ids are found among the jobs in memory (live, and
 * the cache of recently finished ones), then in the store by its
 * (uid, request_id) index. An id is kept with a hash of the Job its submit
 * sent: a repeat sending another Job is refused (TY_EEXIST), not answered
 * with the first job.
 */
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "ops/plan/plan.h"

/* ---- SubmitJob ---------------------------------------------------------------------- */

/* A durable submit's answer: its id (and an array's element count), or
 * with `watch` the job's watch stream (watch.c), whose first event carries
 * the id. */
static void answer_stored(ty_controller *ctl, ty_reply *r, ty_job *j, uint32_t array_n) {
  if (!r->watch) {
    ty__conv_submit_resp(j->id, array_n, &r->out);
    ty__reply_finish(r, 0, NULL);
    return;
  }
  ty_rpc_conn *c = r->conn;
  uint64_t id = r->request_id;
  bool tokens = r->watch_tokens, timing = r->watch_timing;
  uint32_t uid = r->who.uid;
  ty__reply_streaming(r);
  ty__watch_start(ctl, c, id, uid, true, j, tokens, timing); /* its submitter: its owner */
}

typedef struct submit_ctx {
  ty_reply *r;
  uint64_t first;
  uint32_t n; /* jobs created (an array's elements, else 1) */
  bool array;
} submit_ctx;

/* The submit was not stored: its jobs and their model file go. */
static void submit_undo(ty_controller *ctl, const submit_ctx *sc) {
  ty_job *first = ty__job_find(ctl, sc->first);
  if (first && first->model_file) ty__model_remove(first->model_file);
  for (uint32_t k = 0; k < sc->n; k++) {
    ty__job_remove(ctl, sc->first + k);
    ty__deps_forget(ctl, sc->first + k);
  }
}

static void on_submit_committed(int status, void *ud) {
  submit_ctx *sc = ud;
  ty_controller *ctl = sc->r->ctl;
  if (status != 0 || !ty__job_find(ctl, sc->first)) {
    submit_undo(ctl, sc);
    ty__reply_not_stored(sc->r, status, "the job was not stored, so it was not accepted", "retry");
    free(sc);
    return;
  }
  uint64_t now = uv_hrtime();
  size_t at, n = ty__live_between(ctl, sc->first, sc->first + sc->n, &at);
  for (size_t k = 0; k < n; k++) {
    ty_job *j = ctl->jobs[at + k]; /* the calls below add and remove no live job */
    j->committed = true;
    j->clock.committed = now;
    ty__job_dirty(ctl, j);
    ty__deps_watch(ctl, j);
  }
  ty_metric_inc(ctl->m.submitted, NULL, sc->n);
  ty__sched_request_submit(ctl, sc->first, sc->n);
  answer_stored(ctl, sc->r, ty__job_find(ctl, sc->first), sc->array ? sc->n : 0);
  free(sc);
}

int ty__submit_check_placeable(ty_controller *ctl, ty_job_spec *s, char *err, size_t len) {
  int rc = ty__sched_check_spec(ctl, s, err, len); /* queue state, time limits (admin.c) */
  if (rc != 0) return rc;
  char why[TY_ERR_LEN];
  if (ty__sched_fits(ctl, s, why, sizeof(why)) != 0)
    return ty_errf(err, len, TY_EINVAL, "job.%s", why);
  return 0;
}

/* A new PENDING job with id `id` owning spec, blob and plan. */
static ty_job *job_new(uint64_t id, const ty_job_spec *spec, uint8_t *blob, size_t len,
                       uint8_t *plan, size_t plan_len, int64_t now) {
  ty_job *j = ty_xcalloc(1, sizeof(*j));
  j->id = id;
  j->spec = *spec;
  j->blob = blob;
  j->blob_len = len;
  j->plan = plan;
  j->plan_len = plan_len;
  j->state = TY_JOB_PENDING;
  j->reason = ty_strdup("submitted");
  j->submit_ms = now;
  j->dep = TY__DEP_MET;
  j->held = spec->hold;
  if (j->held) ty__sched_list_held(j);
  ty__job_lists(j);
  return j;
}

/* The job's row and its submit event; TY_ENOMEM when the spec cannot be
 * copied into the txn. */
static int submit_txn(ty_job *j, ty_txn *t) {
  int rc = ty__job_insert(j, t);
  if (rc != 0) return rc;
  char actor[300];
  snprintf(actor, sizeof(actor), "user:%s", j->spec.user);
  ty_event_row ev = {.job_id = j->id,
                     .time_ms = j->submit_ms,
                     .from_state = 0,
                     .to_state = TY_JOB_PENDING,
                     .reason = j->held ? "submitted held" : "submitted",
                     .actor = actor};
  ty_txn_add_event(t, &ev);
  return 0;
}

/* An array's elements each copy the job (element_new): n of a job of
 * blob_len bytes must fit TY_ARRAY_MAX_BYTES, so memory grows with what a
 * request sends, not with what it asks for. A graph job's model bytes are
 * not copied (model_to_file). */
static int check_array_bytes(const ty_job_spec *spec, size_t blob_len, uint32_t n, char *err,
                             size_t len) {
  uint64_t each = blob_len > spec->model_len ? blob_len - spec->model_len : blob_len;
  if (n < 2 || (uint64_t)n * each <= TY_ARRAY_MAX_BYTES) return 0;
  return ty_errf(err, len, TY_EINVAL,
                 "job.array: %u elements of a job of %llu bytes would be %llu MiB in the "
                 "controller (each element is a copy of the job); at most %llu MiB: submit fewer "
                 "elements, or move what makes the job large (its script, arguments or "
                 "environment) into a file the command reads",
                 n, (unsigned long long)each, (unsigned long long)(((uint64_t)n * each) >> 20),
                 (unsigned long long)(TY_ARRAY_MAX_BYTES >> 20));
}

/* --max-user-jobs: the n jobs of a submit must fit beside the jobs its
 * user has not seen end. */
static int check_user_jobs(const ty_controller *ctl, const ty_job_spec *spec, uint32_t n, char *err,
                           size_t len) {
  uint32_t max = ctl->cfg.max_user_jobs, has = ty__user_live_jobs(ctl, spec->uid);
  if (max == UINT32_MAX || (uint64_t)has + n <= max) return 0;
  return ty_errf(err, len, TY_ESTATE,
                 "job: user %s has %u jobs that have not ended, and this submit of %u more would "
                 "pass the limit of %u per user (traind --max-user-jobs); wait for some to end or "
                 "cancel them",
                 spec->user, has, n, max);
}

/* Everything a submit is checked against before anything is created (a
 * graph job's model is checked after this, in a child process: check.c). */
static int check_submit(ty_controller *ctl, ty_job_spec *spec, size_t blob_len, uint32_t *out_n,
                        char *err, size_t len) {
  int rc = ty__submit_check_placeable(ctl, spec, err, len);
  *out_n = 1;
  if (rc == 0 && (spec->array.n || spec->array.given)) /* an empty one is refused */
    rc = ty_array_check("job.array", &spec->array, out_n, err, len);
  if (rc == 0 && (unsigned)spec->on_invalid_dep > TY_DEP_INVALID_KEEP)
    rc = ty_errf(err, len, TY_EINVAL,
                 "job.on_invalid_dependency: %d is not one (0 the controller's default, 1 kill, "
                 "2 keep)",
                 (int)spec->on_invalid_dep);
  if (rc == 0) rc = check_array_bytes(spec, blob_len, *out_n, err, len);
  if (rc == 0) rc = check_user_jobs(ctl, spec, *out_n, err, len);
  return rc;
}

/* Element k of the submit: its own copy of the spec but for argv and env,
 * its stored spec and plan (no request id: the first job answers for the
 * array). A pending element holds no argv and env (a batch script and an
 * environment per element): it is trimmed, and its launch decodes them
 * from its stored spec, which holds the first's (ty__job_untrim). */
static int element_new(const ty_job *first, uint32_t task, uint32_t k, ty_job **out) {
  ty_job_spec spec, from = first->spec;
  uint8_t *blob = NULL, *plan = NULL;
  from.argv = from.env = NULL, from.argc = from.envc = 0;
  int rc = ty_job_spec_copy(&from, &spec);
  if (rc == 0 && (ty_wire_bytes(first->blob, first->blob_len, &blob) != 0 ||
                  (first->plan_len && ty_wire_bytes(first->plan, first->plan_len, &plan) != 0))) {
    ty_job_spec_close(&spec);
    free(blob);
    rc = TY_ENOMEM;
  }
  if (rc != 0) return rc;
  ty_job *j =
      job_new(first->id + k, &spec, blob, first->blob_len, plan, first->plan_len, first->submit_ms);
  j->array_id = first->id;
  j->array_task = task;
  j->model_file = first->model_file ? ty_strdup(first->model_file) : NULL;
  j->trimmed = true;
  *out = j;
  return 0;
}

/* An array's one stored record: its first element's row and the count
 * (store.c); its elements stay `unsplit` until each is written (jobs.c). */
static int array_txn(ty_job *first, uint32_t n, ty_txn *t) {
  ty_job_row row;
  char *nodes, *alloc;
  ty__job_row(first, &row, &nodes, &alloc);
  int rc = ty_txn_insert_array(t, &row, n);
  free(nodes);
  free(alloc);
  return rc;
}

/* Job k of a submit of n into txn: a single job's row and submit event, an
 * array's one record with its first element, nothing for the others. */
static int store_job(ty_job *j, uint32_t k, uint32_t n, bool array, ty_txn *t) {
  if (!array) return submit_txn(j, t);
  return k == 0 ? array_txn(j, n, t) : 0;
}

/* The jobs of a submit (n of them from `first`): each resolves its
 * dependencies and goes into txn (one job's row, or the array's record)
 * and the live set. On error nothing is left in the live set and err says
 * why. */
static int create_jobs(ty_controller *ctl, ty_job *first, const uint32_t *tasks, uint32_t n,
                       ty_txn *t, char *err, size_t len) {
  int rc = 0;
  uint32_t added = 0;
  for (uint32_t k = 0; rc == 0 && k < n; k++) {
    ty_job *j = first;
    if (k > 0 && (rc = element_new(first, tasks[k], k, &j)) != 0) {
      ty_errf(err, len, rc, "job.array: no memory for %u elements; it was not accepted", n);
      break;
    }
    if (tasks) j->array_id = first->id, j->array_task = tasks[k], j->unsplit = true;
    rc = ty__deps_resolve(ctl, j, false, err, len);
    if (rc == 0 && (rc = store_job(j, k, n, tasks != NULL, t)) != 0)
      ty_errf(err, len, rc, "job: no memory to store a job this large; it was not accepted");
    if (rc == 0 || k == 0)
      ty__job_add(ctl, j), added++;
    else
      ty__job_free(j);
  }
  if (rc == 0) return 0;
  if (first->model_file) ty__model_remove(first->model_file);
  uint64_t id = first->id;
  for (uint32_t k = added; k-- > 0;)
    ty__job_remove(ctl, id + k);
  /* Adding them advanced next_id: a refused submit uses up no id (nothing
   * ran between, so none above was given out). */
  ctl->next_id = id;
  return rc;
}

/* A graph job's model_bytes to a file: the spec and the stored spec keep
 * no copy. */
static int model_to_file(ty_controller *ctl, ty_job_spec *spec, uint64_t id, char **out_path,
                         char *err, size_t len) {
  *out_path = NULL;
  if (spec->kind != TY_JOB_KIND_GRAPH || spec->model_len == 0) return 0;
  int rc = ty__model_write(ctl, id, spec->model_bytes, spec->model_len, out_path, err, len);
  if (rc != 0) return rc;
  free(spec->model_bytes);
  spec->model_bytes = NULL;
  spec->model_len = 0;
  return 0;
}

/* The first job of a submit from the checked spec, owning the request id:
 * its stored spec is the submitted Job (msg, as decoded) encoded with the
 * defaults validation filled in and its submitter (never the Job as sent:
 * its run_as is the client's word). NULL, with msg freed (the rest still
 * the caller's), when it cannot be encoded. */
static ty_job *first_job(ty_controller *ctl, ty_job_spec *spec, ty__job_msg *msg, uint8_t *plan,
                         size_t plan_len, char *model_file, char *rid, uint64_t rhash) {
  uint8_t *norm = NULL;
  size_t norm_len = 0;
  int rc = ty__conv_normalize(msg, spec, &norm, &norm_len);
  ty__job_msg_free(msg);
  if (rc != 0) {
    free(norm);
    return NULL;
  }
  ty_job *j = job_new(ctl->next_id, spec, norm, norm_len, plan, plan_len, ty_now_ms());
  j->model_file = model_file;
  j->request_id = rid;
  j->request_hash = rhash;
  return j;
}

/* Stores a checked submit (taking spec, msg, plan and request id, kept
 * with the hash of the Job sent: n jobs, an array's elements or one job)
 * and answers once it is committed. The first job, or NULL when it was
 * refused (then answered). */
static ty_job *accept_jobs(ty_controller *ctl, ty_reply *r, ty_job_spec *spec, ty__job_msg *msg,
                           uint8_t *plan, size_t plan_len, uint32_t n, char *rid, uint64_t rhash) {
  char err[TY_ERR_LEN], *model = NULL;
  uint32_t *tasks = NULL;
  size_t nt = 0;
  int rc = 0;
  if (spec->array.n && ty_array_tasks(&spec->array, &tasks, &nt) != 0)
    rc = ty_errf(err, sizeof(err), TY_ENOMEM, "job.array: no memory for %u elements", n);
  if (rc == 0) rc = model_to_file(ctl, spec, ctl->next_id, &model, err, sizeof(err));
  if (rc != 0) {
    ty_job_spec_close(spec);
    ty__job_msg_free(msg), free(plan), free(tasks), free(rid);
    ty__reply_finish(r, rc, err);
    return NULL;
  }
  ty_job *first = first_job(ctl, spec, msg, plan, plan_len, model, rid, rhash);
  if (!first) {
    if (model) ty__model_remove(model);
    free(model), free(tasks), free(plan), free(rid);
    ty_job_spec_close(spec);
    ty__reply_finish(r, TY_ENOMEM, "job: no memory to store a job this large; it was not accepted");
    return NULL;
  }
  ty_txn *t = ty_txn_create();
  rc = create_jobs(ctl, first, tasks, n, t, err, sizeof(err));
  free(tasks);
  if (rc != 0) {
    ty_txn_destroy(t);
    ty__reply_finish(r, rc, err);
    return NULL;
  }
  if (first->spec.array.n) ty__array_note(ctl, first->id, &first->spec.array, n)->unsplit = n;
  submit_ctx *sc = ty_xcalloc(1, sizeof(*sc));
  *sc = (submit_ctx){r, first->id, n, first->spec.array.n > 0};
  r->job_id = first->id;
  first->clock.received = r->t0_ns;
  first->clock.queued = uv_hrtime();
  ty__commit(ctl, t, on_submit_committed, sc);
  return first;
}

/* The elements a submit of spec created (0 when it is not an array). */
static uint32_t array_tasks(const ty_job_spec *spec) {
  uint32_t n = 0;
  char err[TY_ERR_LEN];
  return spec->array.n && ty_array_check("job.array", &spec->array, &n, err, sizeof(err)) == 0 ? n
                                                                                               : 0;
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
  answer_stored(r->ctl, r, j, array_tasks(&j->spec));
}

/* r answers with job j once j is durable. */
static void answer_with_job(ty_controller *ctl, ty_reply *r, const ty_job *j) {
  r->job_id = j->id;
  if (j->committed)
    on_retry_committed(0, r);
  else
    ty__commit(ctl, ty_txn_create(), on_retry_committed, r);
}

/* A graph job waiting for its model check (check.c), on ctl->checking
 * while it waits, with the retries of its request id that came meanwhile. */
struct ty__submit_wait {
  ty_reply *r;
  ty_job_spec spec;
  ty__job_msg *msg;   /* the Job as sent, decoded */
  uint32_t n;         /* jobs the submit creates (an array's elements) */
  char *rid;          /* "" = none */
  uint64_t rhash;     /* of the Job sent (job_hash) */
  ty_reply **retries; /* answered as r is */
  size_t n_retries;
  struct ty__submit_wait *next;
};

static void unlink_wait(ty_controller *ctl, ty__submit_wait *sw) {
  ty__submit_wait **p = &ctl->checking;
  while (*p && *p != sw)
    p = &(*p)->next;
  if (*p) *p = sw->next;
}

static void on_checked(ty_controller *ctl, ty__check_result *res, void *ud) {
  ty__submit_wait *sw = ud;
  unlink_wait(ctl, sw);
  int rc = res->status ? res->status : ctl->stopping ? TY_ECLOSED : 0;
  const char *why =
      res->status ? res->message : "the controller is shutting down; the job was not accepted";
  ty_job *j = NULL;
  if (rc == 0) {
    j = accept_jobs(ctl, sw->r, &sw->spec, sw->msg, res->plan, res->plan_len, sw->n, sw->rid,
                    sw->rhash);
    res->plan = NULL;
    if (!j) {
      rc = TY_ENOMEM;
      why = "the first submit with this request_id was not accepted; retry";
    }
  } else {
    ty__reply_finish(sw->r, rc, why);
    ty_job_spec_close(&sw->spec);
    ty__job_msg_free(sw->msg);
    free(sw->rid);
  }
  for (size_t i = 0; i < sw->n_retries; i++) {
    if (j)
      answer_with_job(ctl, sw->retries[i], j);
    else
      ty__reply_finish(sw->retries[i], rc, why);
  }
  free(sw->retries);
  free(sw);
}

/* The hash a request id is kept with: the first 8 bytes of the SHA-256 of
 * the Job as sent (re-encoded by protobuf-c, so field order does not
 * matter), never 0 (0 = not kept). */
static uint64_t job_hash(const uint8_t *blob, size_t len) {
  struct sha256_ctx h;
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_init(&h);
  sha256_update(&h, len, blob);
  sha256_digest(&h, sizeof d, d);
  uint64_t v = ty_get_be(d, 8);
  return v ? v : 1;
}

/* A retry must send the job its request id was first used for: true, with
 * r refused TY_EEXIST, when it sent another (a client reusing ids). id 0:
 * that job's model is still being checked (it has no id yet). */
static bool other_job(ty_reply *r, const char *rid, uint64_t id, uint64_t kept, uint64_t rhash) {
  if (!kept || kept == rhash) return false;
  if (id)
    ty__reply_finishf(r, TY_EEXIST, "request_id %s was used for job %llu with a different job", rid,
                      (unsigned long long)id);
  else
    ty__reply_finishf(r, TY_EEXIST,
                      "request_id %s was used for a job whose model is being checked, with a "
                      "different job",
                      rid);
  return true;
}

/* Answers a submit whose request id its submitter (the credential's uid,
 * never a name the client sent) already used: a stored job, or one whose
 * check is running, or a refusal when the Job sent differs from that
 * one's (rhash). False when the id is new for this uid, whoever else used
 * it. */
static bool answer_retry(ty_controller *ctl, ty_reply *r, uint32_t uid, const char *rid,
                         uint64_t rhash) {
  if (!rid[0]) return false;
  ty_job *j = ty__job_by_request(ctl, uid, rid);
  if (j && other_job(r, rid, j->id, j->request_hash, rhash)) return true;
  if (j) {
    ty_info("SubmitJob from %s: request_id %s is job %llu's; answering with it",
            r->conn ? ty_rpc_peer(r->conn) : "(gone)", rid, (unsigned long long)j->id);
    answer_with_job(ctl, r, j);
    return true;
  }
  for (ty__submit_wait *sw = ctl->checking; sw; sw = sw->next) {
    if (sw->spec.uid != uid || strcmp(sw->rid, rid) != 0) continue;
    if (other_job(r, rid, 0, sw->rhash, rhash)) return true;
    ty_info("SubmitJob from %s: request_id %s is being checked; answering as its first submit",
            r->conn ? ty_rpc_peer(r->conn) : "(gone)", rid);
    sw->retries = ty_xrealloc(sw->retries, (sw->n_retries + 1) * sizeof(*sw->retries));
    sw->retries[sw->n_retries++] = r;
    return true;
  }
  /* A job that ended and left memory: its row answers (it is durable). */
  uint64_t id = 0, kept = 0;
  if (ty_store_find_request(ctl->store, uid, rid, &id, &kept) != 0) return false;
  if (other_job(r, rid, id, kept, rhash)) return true;
  if (r->watch && (j = ty__job_get(ctl, id)) != NULL) {
    answer_stored(ctl, r, j, 0); /* a watched submit is never an array's */
    return true;
  }
  ty_array_counts c;
  if (ty_store_array_counts(ctl->store, id, &c) != 0) c.total = 0;
  ty__conv_submit_resp(id, c.total, &r->out);
  ty__reply_finish(r, 0, NULL);
  return true;
}

void ty__h_submit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_job_spec spec;
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  char err[TY_ERR_LEN], *rid = NULL;
  ty__watch_req w;
  ty__job_msg *msg = NULL;
  int rc = ty__conv_submit(p, n, &spec, &blob, &blob_len, &msg, &rid, &w);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a SubmitJobRequest carrying a job");
    return;
  }
  r->watch = w.watch, r->watch_tokens = w.want_tokens, r->watch_timing = w.timing;
  /* A test-only submit is an estimate, not submit load: it is counted as a
   * request of its own kind, as Slurm's sdiag counts REQUEST_JOB_WILL_RUN
   * apart from REQUEST_SUBMIT_BATCH_JOB (docs/metrics.md). */
  if (w.test_only) r->method = TY__METHOD_SUBMIT_TEST_ONLY;
  uint32_t count = 1;
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
  if (rc == 0 && spec.priority > 0 && !r->operator) {
    /* As UpdateJob: users may only lower a priority (Slurm's sbatch
     * --priority and a negative --nice are for operators). */
    rc = ty_errf(err, sizeof(err), TY_EPERM,
                 "job.priority: %d: only operators submit above 0 (--priority, or --nice below "
                 "0); a user may lower it (--nice N, N >= 0)",
                 spec.priority);
    r->refusal = "not_operator";
  }
  if (rc == 0 && r->watch && spec.array.n)
    rc = ty_errf(err, sizeof(err), TY_EINVAL,
                 "watch: a job array cannot be watched as it is submitted (its elements are "
                 "jobs of their own); submit it without watch and watch each element");
  if (rc == 0 && r->watch && w.test_only)
    rc = ty_errf(err, sizeof(err), TY_EINVAL,
                 "test_only: a test-only submit creates no job to watch; ask without watch");
  if (rc == 0 && r->watch) rc = ty__watch_admit(ctl, &r->who, err, sizeof(err));
  /* A test-only submit creates nothing, so its request id answers nothing. */
  uint64_t rhash = job_hash(blob, blob_len);
  bool retry = rc == 0 && !w.test_only && answer_retry(ctl, r, spec.uid, rid, rhash);
  if (rc == 0 && !retry) rc = ty__queue_admit(ctl, r, spec.queue, "submit", err, sizeof(err));
  if (rc == 0 && !retry) rc = check_submit(ctl, &spec, blob_len, &count, err, sizeof(err));
  free(blob); /* kept for its hash and size only: the stored spec is made from msg */
  if (rc != 0 || retry || w.test_only) {
    ty__job_msg_free(msg);
    free(rid);
    if (rc == 0 && w.test_only) {
      ty__submit_test(ctl, r, &spec); /* every check above passed: the estimate */
      return;
    }
    ty_job_spec_close(&spec);
    if (rc != 0) ty__reply_finish(r, rc, err);
    return;
  }
  if (spec.kind != TY_JOB_KIND_GRAPH) {
    accept_jobs(ctl, r, &spec, msg, NULL, 0, count, rid, rhash);
    return;
  }
  ty__submit_wait *sw = ty_xcalloc(1, sizeof *sw);
  *sw = (ty__submit_wait){.r = r,
                          .spec = spec,
                          .msg = msg,
                          .n = count,
                          .rid = rid,
                          .rhash = rhash,
                          .next = ctl->checking};
  ctl->checking = sw;
  ty__check_start(ctl, r, &sw->spec, spec.parallelism != TY_PARALLELISM_DATA, on_checked, sw);
}
