/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job watches: WatchJob, and SubmitJob with `watch` (rlaunch). A watch is a
 * streaming answer that pushes the job (state, reason, placement with task
 * tokens, how it ended, and the launch's stage times) whenever it changes,
 * so a client waiting for its job asks nothing after its submit.
 *
 * When an event goes out: a change made by a transition (jobs.c) marks the
 * job's watches with the number of the txn that will carry it, and the
 * watches are flushed after each group-commit batch (controller.c), once
 * that txn is durable; a pending job's reason (the scheduling pass's, kept
 * in memory only) goes out after the pass. The RUNNING event thus follows
 * the RUNNING commit and its LaunchTask. After an event with a final state
 * the stream ends with END 0.
 *
 * A controller holds at most MAX_WATCHES (rlaunch keeps one per launch),
 * and one user at most MAX_USER_WATCHES of them: one user's watches (any
 * job's, theirs or not, 128 on a connection) once took every place, and
 * every other user's rlaunch was refused while they stayed. They are a
 * plain list, scanned per batch and at each admission (a few thousand
 * pointers), and a job counts its watches so an unwatched job's
 * transition costs one test.
 *
 * A pending rlaunch job (interactive, not --detach) needs its rlaunch: a
 * watch with task tokens, the one its submit opened. When the last such
 * watch closes while the job is pending (rlaunch killed, or its connection
 * lost), the scheduler leaves the job alone, and after the controller's
 * --rlaunch-gone-s (30 s), longer than rlaunch's reconnect backoff (it
 * sends its submit again, the same job's watch), the tick cancels it: it
 * never runs its command with nobody attached. A controller start counts
 * as such a close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/methods.h"

#define MAX_WATCHES 4096u
#define MAX_USER_WATCHES 256u /* one user's rlaunch sessions and submit --wait at once */

struct ty__watch {
  struct ty__watch *next;
  ty_rpc_conn *conn;
  uint64_t request_id, job_id;
  uint32_t uid; /* who asked: MAX_USER_WATCHES */
  bool full;    /* ... the job's owner or an operator: its exit code (ty__auth_sees_job) */
  bool want_tokens, timing;
  bool dirty;         /* the job changed since the last event */
  uint64_t dirty_txn; /* ... in this txn (sent once ctl->txn_done reaches it) */
};

int ty__watch_admit(const ty_controller *ctl, const ty_auth_id *who, char *err, size_t len) {
  if (ctl->n_watches >= MAX_WATCHES)
    return ty_errf(err, len, TY_ESTATE,
                   "the controller already holds %u job watches; retry, or ask with %s",
                   MAX_WATCHES, TY_M_GET_TASK_LOCATIONS);
  uint32_t mine = 0;
  for (const ty__watch *w = ctl->watches; w; w = w->next)
    mine += w->uid == who->uid;
  if (mine < MAX_USER_WATCHES) return 0;
  return ty_errf(err, len, TY_ESTATE,
                 "%s already holds %u job watches, as many as one user may (each rlaunch and "
                 "submit --wait keeps one while it runs); end some, or ask with %s",
                 who->user, mine, TY_M_GET_TASK_LOCATIONS);
}

static bool awaits_rlaunch(const ty_job *j) {
  return j->state == TY_JOB_PENDING && j->spec.interactive.on && !j->spec.interactive.detach;
}

/* The listing of j, a pending rlaunch job whose rlaunch just left: no pass
 * refreshes it while it waits (sched_pass.c leaves it out), so it says
 * when the tick cancels it instead of its last pass's reason. */
static void list_unattended(const ty_controller *ctl, ty_job *j) {
  time_t at = time(NULL) + (time_t)ty__rlaunch_gone_ms(ctl) / 1000;
  struct tm tm;
  char when[24] = "?", why[TY_ERR_LEN];
  if (gmtime_r(&at, &tm)) strftime(when, sizeof when, "%H:%M:%S UTC", &tm);
  snprintf(why, sizeof why, "rlaunch went away: cancelled at %s unless it reconnects", when);
  free(j->reason);
  j->reason = ty_strdup(why);
}

/* j, pending for its rlaunch, is left without one from now. */
static void unattended_now(const ty_controller *ctl, ty_job *j) {
  j->unattended_mono = ty_mono_ms();
  list_unattended(ctl, j);
}

void ty__watch_loaded(const ty_controller *ctl, ty_job *j) {
  if (awaits_rlaunch(j)) unattended_now(ctl, j);
}

/* rlaunch retries for 10 s, each reconnect taking at most 10 s more
 * (cli/rlaunch.c: CALL_TIMEOUT_MS): 30 s unless --rlaunch-gone-s says. */
int64_t ty__rlaunch_gone_ms(const ty_controller *ctl) {
  return (int64_t)(ctl->cfg.rlaunch_gone_s ? ctl->cfg.rlaunch_gone_s : 30) * 1000;
}

bool ty__watch_abandoned(const ty_job *j) {
  return j->unattended_mono && !j->attended && awaits_rlaunch(j);
}

void ty__watch_cancel_abandoned(ty_controller *ctl) {
  int64_t now = ty_mono_ms();
  ty_txn *t = NULL;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (!ty__watch_abandoned(j) || now - j->unattended_mono < ty__rlaunch_gone_ms(ctl)) continue;
    if (!t) t = ty_txn_create();
    ty__job_transition(ctl, j, TY_JOB_CANCELLED, "rlaunch went away while the job was pending",
                       "controller", t);
  }
  if (!t) return;
  ty__commit(ctl, t, NULL, NULL);
  ty__sched_request(ctl);
}

/* j lost a watch with task tokens: its rlaunch's, when pending. */
static void unattend(ty_controller *ctl, ty_job *j) {
  if (j->attended) j->attended--;
  if (j->attended || !awaits_rlaunch(j)) return;
  unattended_now(ctl, j);
  ty__watch_touch(ctl, j, false); /* in memory only */
  ty__job_dirty(ctl, j);
}

/* j gained a watch with task tokens. Its rlaunch back, the next pass
 * takes it again and lists its own reason for it. */
static void attend(ty_controller *ctl, ty_job *j) {
  if (ty__watch_abandoned(j)) ty__sched_request(ctl);
  j->attended++;
  j->unattended_mono = 0;
}

static void unlink_watch(ty_controller *ctl, ty__watch *w) {
  for (ty__watch **p = &ctl->watches; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  ty_job *j = ty__job_find(ctl, w->job_id);
  if (j && j->watched) j->watched--;
  if (j && w->want_tokens) unattend(ctl, j);
  ctl->n_watches--;
  free(w);
}

static void on_cancel(ty_rpc_conn *c, uint64_t request_id, void *ud) {
  ty_controller *ctl = ud;
  for (ty__watch *w = ctl->watches; w; w = w->next) {
    if (w->conn == c && w->request_id == request_id) {
      (void)ty_rpc_stream_end(c, request_id, TY_ECLOSED, NULL);
      unlink_watch(ctl, w);
      return;
    }
  }
}

/* Stage durations from the job's clock; 0 for a stage not reached. */
static uint64_t span_us(uint64_t from_ns, uint64_t to_ns) {
  return from_ns && to_ns > from_ns ? (to_ns - from_ns) / 1000u : 0;
}

static void fill_timing(const ty_job *j, ty_launch_timing *t) {
  const ty__launch_clock *k = &j->clock;
  *t = (ty_launch_timing){.checks_us = span_us(k->received, k->queued),
                          .commit_us = span_us(k->queued, k->committed),
                          .queued_us = span_us(k->committed, k->pass),
                          .pass_us = span_us(k->pass, k->placed),
                          .start_commit_us = span_us(k->placed, k->running),
                          .launch_us = span_us(k->running, k->launched),
                          .end_us = span_us(k->last_update, k->ended)};
}

/* Sends the job as it is now; false when the stream is over (its final
 * state sent, or the client gone), after ending it. */
static bool send_event(ty_controller *ctl, ty__watch *w, ty_job *j) {
  size_t token_len = 0;
  uint8_t *tokens = NULL;
  bool placed = j->n_slots && j->state != TY_JOB_PENDING;
  if (w->want_tokens && placed && j->n_ranks && !(tokens = ty__token_issue(ctl, j, &token_len))) {
    (void)ty_rpc_stream_end(w->conn, w->request_id, TY_ENOMEM, "no memory for the task tokens");
    return false;
  }
  ty_launch_timing t;
  if (w->timing) fill_timing(j, &t);
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty__conv_watch_event(j, w->full, tokens, token_len, w->timing ? &t : NULL, &b);
  free(tokens);
  if (rc == 0) rc = ty_rpc_stream_send(w->conn, w->request_id, b.data, b.len);
  ty_buf_close(&b);
  if (rc == 0 && !ty_job_state_terminal(j->state)) return true;
  (void)ty_rpc_stream_end(w->conn, w->request_id, rc, rc ? "cannot send the job's event" : NULL);
  return false;
}

void ty__watch_start(ty_controller *ctl, ty_rpc_conn *c, uint64_t request_id, uint32_t uid,
                     bool full, ty_job *j, bool want_tokens, bool timing) {
  if (!c) return; /* the client left while the submit committed */
  ty__watch *w = ty_xcalloc(1, sizeof *w);
  *w = (ty__watch){.next = ctl->watches,
                   .conn = c,
                   .request_id = request_id,
                   .job_id = j->id,
                   .uid = uid,
                   .full = full,
                   .want_tokens = want_tokens,
                   .timing = timing};
  ctl->watches = w;
  ctl->n_watches++;
  j->watched++;
  if (want_tokens) attend(ctl, j);
  if (ty_rpc_set_cancel_cb(c, request_id, on_cancel, ctl) != 0 || !send_event(ctl, w, j))
    unlink_watch(ctl, w);
}

void ty__watch_touch(ty_controller *ctl, const ty_job *j, bool in_txn) {
  if (!j->watched) return;
  for (ty__watch *w = ctl->watches; w; w = w->next) {
    if (w->job_id != j->id || w->dirty) continue;
    w->dirty = true;
    /* The txn being built is queued next; a reason kept in memory only is
     * sendable now. */
    w->dirty_txn = in_txn ? ctl->txn_queued + 1 : ctl->txn_done;
  }
}

void ty__watch_flush(ty_controller *ctl) {
  for (ty__watch *w = ctl->watches, *next; w; w = next) {
    next = w->next;
    if (!w->dirty || w->dirty_txn > ctl->txn_done) continue;
    w->dirty = false;
    ty_job *j = ty__job_find(ctl, w->job_id);
    if (j && ty_job_state_terminal(j->state) && !j->clock.ended) j->clock.ended = uv_hrtime();
    if (!j) (void)ty_rpc_stream_end(w->conn, w->request_id, TY_ENOTFOUND, "the job is gone");
    if (!j || !send_event(ctl, w, j)) unlink_watch(ctl, w);
  }
}

void ty__watch_stop_all(ty_controller *ctl) {
  while (ctl->watches) {
    ty__watch *w = ctl->watches;
    (void)ty_rpc_stream_end(w->conn, w->request_id, TY_ECLOSED, "the controller is shutting down");
    unlink_watch(ctl, w);
  }
}

/* ---- WatchJob ------------------------------------------------------------------------ */

void ty__h_watch_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty__watch_req req;
  char err[TY_ERR_LEN];
  int rc = ty__conv_watch_req(p, n, &req);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a WatchJobRequest");
    return;
  }
  ty_job *j = ty__job_get(ctl, req.job_id); /* a finished one: its final event, END */
  rc = (!j || !j->committed) ? ty_errf(err, sizeof(err), TY_ENOTFOUND, "job_id: job %llu not found",
                                       (unsigned long long)req.job_id)
                             : 0;
  /* Tokens read the job's logs and type into it: its owner's or an operator's. */
  if (rc == 0 && req.want_tokens &&
      (rc = ty__auth_job(r, j, "read or attach to the tasks of", err, sizeof(err))) != 0)
    r->refusal = "not_owner";
  if (rc == 0) rc = ty__watch_admit(ctl, &r->who, err, sizeof(err));
  if (rc != 0) {
    ty__reply_finish(r, rc, err);
    return;
  }
  ty_rpc_conn *c = r->conn;
  uint64_t id = r->request_id;
  uint32_t uid = r->who.uid;
  bool full = ty__auth_sees_job(r, j);
  ty__reply_streaming(r);
  ty__watch_start(ctl, c, id, uid, full, j, req.want_tokens, req.timing);
}
