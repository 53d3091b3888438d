/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UpdateJob's handler: the job, element ("123_7") or array (by its id) a
 * request names, checked against the caller (the owner or an operator),
 * and the change applied to it (admin_job.c says what each action does).
 * On an array the action applies to each element that can take it (a hold
 * to the pending ones) and fails only when none could; a signal is all or
 * none. Each change is applied in memory and written, with an event naming
 * the actor ("user:alice") and what changed, in one group-committed
 * transaction answered once durable; an array of more than
 * TY__CHANGE_CHUNKED_ABOVE elements a chunk of them per loop turn, a
 * transaction each, answered once the last is durable (chunked_change), so
 * heartbeats and other requests are served meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* The job, element or array a names, if the caller (r->who) owns it or is
 * an operator (an array's elements have one owner). */
static int find_job(ty_controller *ctl, ty_reply *r, const ty_admin_req *a, ty_job **out, char *err,
                    size_t len) {
  ty_job_ref ref = {a->job_id, a->has_task, a->task};
  char name[48];
  ty_job_ref_format(&ref, name, sizeof(name));
  ty_job *j = ty__job_ref(ctl, &ref);
  if (!j || !j->committed) return ty_errf(err, len, TY_ENOTFOUND, "job %s not found", name);
  char op[64];
  snprintf(op, sizeof op, "update (%.32s)", a->action[0] ? a->action : "change");
  int rc = ty__auth_job(r, j, op, err, len);
  if (rc != 0) r->refusal = "not_owner";
  *out = j;
  return rc;
}

static int by_id(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* The ids of array_id's elements a change applies to, sorted, each once:
 * the live ones and, with stored (`job requeue`: every element, as
 * scontrol's), those ended and gone from memory (--job-cache,
 * --min-job-age) too, from the store. */
static int array_targets(ty_controller *ctl, uint64_t array_id, bool stored, ty__ids *out) {
  for (size_t i = 0; i < ctl->n_jobs; i++)
    if (ctl->jobs[i]->array_id == array_id && ctl->jobs[i]->committed)
      ty__ids_add(ctl->jobs[i]->id, out);
  int rc = stored ? ty_store_array_rows(ctl->store, array_id, ty__ids_add, out) : 0;
  if (out->n > 1) qsort(out->v, out->n, sizeof(*out->v), by_id);
  size_t k = 0;
  for (size_t i = 0; i < out->n; i++)
    if (k == 0 || out->v[k - 1] != out->v[i]) out->v[k++] = out->v[i];
  out->n = k;
  return rc;
}

/* What a change did: the first job changed (by id: a job may be freed
 * between the turns of a chunked change), how many were, and how many of
 * an array's elements were refused because a node of theirs is away
 * (state_known), with the first such refusal; the first other failure's
 * code and message. */
typedef struct change_tally {
  uint64_t first;
  uint32_t changed, refused;
  char refusal[TY_ERR_LEN];
  int failed;
  char err[TY_ERR_LEN];
} change_tally;

/* A signal is all or none: one element whose node is away refuses it for
 * every element of the array (TY_ESTATE and err), before any is signalled. */
static int signal_refused(ty_controller *ctl, const ty_admin_req *a, const ty__ids *ids, char *err,
                          size_t len) {
  char e[TY_ERR_LEN], first[TY_ERR_LEN];
  uint32_t refused = 0;
  for (size_t i = 0; i < ids->n; i++) {
    ty_job *x = ty__job_get(ctl, ids->v[i]);
    if (!x || ty__admin_state_known(x, a, e, sizeof e) == 0) continue;
    if (!refused++) snprintf(first, sizeof first, "%s", e);
  }
  if (!refused) return 0;
  return ty_errf(err, len, TY_ESTATE,
                 "array %llu: %u element%s refused the signal, so no element was signalled: %s",
                 (unsigned long long)a->job_id, refused, refused == 1 ? "" : "s", first);
}

/* The change on j alone (ids NULL), or on the array elements ids->v[from,
 * to), each read again now: one gone from memory is skipped, one whose node
 * is away (state_known) is counted refused. Changes and their events go in
 * t; *tl counts them. */
static void change_range(ty_controller *ctl, ty_reply *r, ty_job *j, const ty_admin_req *a,
                         const char *actor, const ty__ids *ids, size_t from, size_t to,
                         change_tally *tl, ty_txn *t) {
  char why[TY_ERR_LEN], e[TY_ERR_LEN];
  for (size_t i = ids ? from : 0; i < (ids ? to : 1); i++) {
    ty_job *x = ids ? ty__job_get(ctl, ids->v[i]) : j;
    if (!x) continue;
    if (ids && ty__admin_state_known(x, a, e, sizeof e) != 0) {
      if (!tl->refused++) snprintf(tl->refusal, sizeof tl->refusal, "%s", e);
      continue;
    }
    why[0] = '\0';
    int rc = ty__admin_job_change(ctl, r, x, a, actor, t, why, sizeof(why), e, sizeof(e));
    if (rc != 0) {
      if (!tl->failed) tl->failed = rc, snprintf(tl->err, sizeof tl->err, "%s", e);
      continue;
    }
    ty__admin_record(ctl, x, why, actor, r->who.user, t);
    if (!tl->changed++) tl->first = x->id;
    if (x->requeue_asked && !x->kill_sent) ty__job_kill(ctl, x);
  }
}

/* 0 when the change changed a job, or the code and err of why none was:
 * the refusal of an element whose node is away, else the first failure. */
static int tally_result(const ty_admin_req *a, const change_tally *tl, char *err, size_t len) {
  if (tl->changed) return 0;
  if (tl->refused) return ty_errf(err, len, TY_ESTATE, "%s", tl->refusal);
  if (tl->failed) return ty_errf(err, len, tl->failed, "%s", tl->err);
  return ty_errf(err, len, TY_ESTATE, "array %llu has no element left to change",
                 (unsigned long long)a->job_id);
}

/* The answer of a change that changed a job: the first one changed (the
 * caller may change it: may see it), the counts and the first refusal;
 * ty__admin_committed sends it once durable. */
static void encode_answer(ty_controller *ctl, ty_reply *r, const change_tally *tl) {
  ty_job *first = ty__job_get(ctl, tl->first);
  const ty_buf *info = first ? ty__job_info(ctl, first, TY__INFO_FULL) : NULL;
  ty__conv_update_job_resp(info ? info->data : NULL, info ? info->len : 0, tl->changed, tl->refused,
                           tl->refused ? tl->refusal : NULL, &r->out);
}

/* A whole array's elements above this many are changed this many per loop
 * turn, each chunk in a transaction of its own: a change to 100,000 elements
 * took 21-48 s of the loop in one turn, long enough for the workers, their
 * heartbeats unanswered, to fence their tasks. Heartbeats and other
 * requests are served between chunks. */
enum { TY__CHANGE_CHUNK = 1000, TY__CHANGE_CHUNKED_ABOVE = 2000 };
/* Chunks written at once: the next waits for the store, which writes
 * slower than the loop changes, so that other writes (and GetJob, which
 * waits for the writes before it) wait for two chunks, not for the rest of
 * the array. */
enum { TY__CHANGE_IN_FLIGHT = 2 };

/* A chunked change: the request, its arguments and the elements' ids,
 * driven by an idle handle, a chunk per turn. Its answer is sent once the
 * last chunk is durable; a connection closing meanwhile detaches r
 * (reply.c), which is answered and freed all the same. */
typedef struct chunked_change {
  uv_idle_t idle;
  ty_controller *ctl;
  ty_reply *r;
  ty_admin_req a;
  char actor[96];
  ty__ids ids;
  size_t next;      /* the first element not yet changed */
  uint32_t commits; /* chunks' transactions not yet durable */
  int store_rc;     /* the first of them that was not stored */
  bool submitted;   /* no chunk left to run: the last commit answers */
  bool stopped;     /* the controller stopped before every chunk ran */
  change_tally tl;
} chunked_change;

static void on_chunked_closed(uv_handle_t *h) {
  chunked_change *cc = h->data;
  ty__admin_req_close(&cc->a);
  free(cc->ids.v);
  free(cc);
}

/* The answer of a chunked change, as the single-shot one's, once every
 * chunk submitted is durable; then the handle closes and frees it. */
static void chunked_answer(chunked_change *cc) {
  ty_reply *r = cc->r;
  char err[TY_ERR_LEN];
  int rc = tally_result(&cc->a, &cc->tl, err, sizeof err);
  if (cc->stopped) {
    ty__reply_finishf(r, TY_ECLOSED,
                      "array %llu: the controller is stopping; %u of its %zu elements were "
                      "changed, the others were not (run the change again once it is back)",
                      (unsigned long long)cc->a.job_id, cc->tl.changed, cc->ids.n);
  } else if (rc != 0) {
    if (rc == TY_EPERM && !r->refusal) r->refusal = "not_operator";
    ty__reply_finish(r, rc, err);
  } else if (cc->store_rc != 0) {
    ty__admin_committed(cc->store_rc, r);
  } else {
    encode_answer(cc->ctl, r, &cc->tl);
    ty__admin_committed(0, r);
  }
  uv_close((uv_handle_t *)&cc->idle, on_chunked_closed);
}

static void on_chunk_turn(uv_idle_t *h);

/* A chunk durable: the next may run; once the last is, the answer. */
static void on_chunk_committed(int status, void *ud) {
  chunked_change *cc = ud;
  cc->commits--;
  if (status != 0 && !cc->store_rc) cc->store_rc = status;
  if (!cc->submitted)
    uv_idle_start(&cc->idle, on_chunk_turn);
  else if (!cc->commits)
    chunked_answer(cc);
}

/* One turn: the next chunk, in a transaction of its own (submitted in
 * order, so stored in order), the handle stopped while TY__CHANGE_IN_FLIGHT
 * are not yet durable; or, once the controller stops, none more. */
static void on_chunk_turn(uv_idle_t *h) {
  chunked_change *cc = h->data;
  ty_controller *ctl = cc->ctl;
  if (ctl->stopping) {
    cc->stopped = cc->submitted = true;
    uv_idle_stop(h);
    if (!cc->commits) chunked_answer(cc);
    return;
  }
  size_t to = cc->next + TY__CHANGE_CHUNK < cc->ids.n ? cc->next + TY__CHANGE_CHUNK : cc->ids.n;
  ty_txn *t = ty_txn_create();
  change_range(ctl, cc->r, NULL, &cc->a, cc->actor, &cc->ids, cc->next, to, &cc->tl, t);
  cc->next = to;
  cc->submitted = to == cc->ids.n;
  cc->commits++;
  if (cc->submitted || cc->commits >= TY__CHANGE_IN_FLIGHT) uv_idle_stop(h);
  ty__commit(ctl, t, on_chunk_committed, cc); /* may answer at once: the last use of cc */
}

/* Starts the change of ids' elements in chunks; takes *a and *ids. */
static void chunked_start(ty_controller *ctl, ty_reply *r, ty_admin_req *a, const char *actor,
                          ty__ids *ids) {
  chunked_change *cc = ty_xcalloc(1, sizeof(*cc));
  cc->ctl = ctl, cc->r = r, cc->a = *a, cc->ids = *ids;
  snprintf(cc->actor, sizeof cc->actor, "%s", actor);
  *a = (ty_admin_req){0}, *ids = (ty__ids){0};
  uv_idle_init(ctl->loop, &cc->idle);
  cc->idle.data = cc;
  uv_idle_start(&cc->idle, on_chunk_turn);
}

/* The elements of the array a names (array_targets; for a signal, none if
 * one is refused), or none when a names a job or one element. */
static int targets(ty_controller *ctl, const ty_admin_req *a, ty__ids *ids, char *err, size_t len) {
  int rc = array_targets(ctl, a->job_id, !strcmp(a->action, "requeue"), ids);
  if (rc != 0)
    return ty_errf(err, len, rc, "array %llu: cannot read its elements from the store",
                   (unsigned long long)a->job_id);
  return strcmp(a->action, "signal") ? 0 : signal_refused(ctl, a, ids, err, len);
}

/* The change on j, or on every element of the array j's id names: at once
 * for a job or up to TY__CHANGE_CHUNKED_ABOVE elements (answered once
 * durable), else in chunks (chunked_start). */
static void change_all(ty_controller *ctl, ty_reply *r, ty_job *j, ty_admin_req *a,
                       const char *actor) {
  char err[TY_ERR_LEN];
  bool array = !a->has_task && j->array_id == a->job_id;
  ty__ids ids = {0};
  int rc = array ? targets(ctl, a, &ids, err, sizeof err) : 0;
  if (rc == 0 && ids.n > TY__CHANGE_CHUNKED_ABOVE) {
    chunked_start(ctl, r, a, actor, &ids);
    return;
  }
  change_tally tl = {0};
  ty_txn *t = ty_txn_create();
  if (rc == 0) change_range(ctl, r, j, a, actor, array ? &ids : NULL, 0, ids.n, &tl, t);
  free(ids.v);
  if (rc == 0) rc = tally_result(a, &tl, err, sizeof err);
  if (rc != 0) {
    if (rc == TY_EPERM && !r->refusal) r->refusal = "not_operator";
    ty_txn_destroy(t);
    ty__reply_finish(r, rc, err);
    return;
  }
  encode_answer(ctl, r, &tl);
  ty__commit(ctl, t, ty__admin_committed, r);
}

void ty__h_update_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_admin_req a;
  char err[TY_ERR_LEN], actor[96];
  int rc = ty__conv_update_job_req(p, n, &a);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "an UpdateJobRequest");
    return;
  }
  ty_job *j = NULL;
  rc = find_job(ctl, r, &a, &j, err, sizeof(err));
  if (rc != 0) {
    if (rc == TY_EPERM && !r->refusal) r->refusal = "not_operator";
    ty__admin_req_close(&a);
    ty__reply_finish(r, rc, err);
    return;
  }
  ty__actor_of(r->who.user, actor, sizeof(actor));
  change_all(ctl, r, j, &a, actor);
  ty__admin_req_close(&a); /* zeroed when a chunked change took it */
}
