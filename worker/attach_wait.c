/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attaches that arrive before their task: the controller sends LaunchTask
 * on its own connection and the placement to rlaunch on another, so
 * rlaunch's Attach often reaches the worker first. Such an attach (with
 * AttachRequest.wait_ms) is held here, a copy of its request kept, until
 * the launch of that job and rank (attach.c then answers it as if it had
 * just arrived), its deadline (TY_ENOTFOUND saying how long it waited), the
 * client's cancel or its connection's end. Nothing here polls: the launch,
 * the deadline's timer and the connection's events are the only wake-ups.
 *
 * A launch that failed leaves no task behind, so the last FAILURES of them
 * are remembered: an attach that comes after its launch failed is answered
 * at once with the launch's error instead of waiting for its deadline.
 *
 * A node holds at most MAX_WAITS of them (a client cannot make the worker
 * keep unbounded copies); the list is plain, as the launches it waits for
 * come a few at a time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker_internal.h"

#define MAX_WAITS 1024u
#define FAILURES 32u

typedef struct failure {
  uint64_t job_id;
  uint32_t rank;
  int rc; /* 0 = empty slot */
  char msg[TY_ERR_LEN];
} failure;

typedef struct waiter {
  struct waiter *next;
  ty__attach_waits *w;
  ty_rpc_conn *conn;
  uint64_t request_id, job_id;
  uint32_t rank, wait_ms;
  uint64_t arrived_ns;
  uv_timer_t timer;
  uint8_t *payload, *cred; /* copies: the request's buffers live only in its callback */
  size_t payload_len, cred_len;
} waiter;

struct ty__attach_waits {
  uv_loop_t *loop;
  char *node;
  ty__attach_resume_fn resume;
  void *ud;
  waiter *head;
  size_t n, open_timers;
  failure failed[FAILURES]; /* a ring, newest at next_failure - 1 */
  size_t next_failure;
  bool destroying;
};

ty__attach_waits *ty__attach_waits_create(uv_loop_t *loop, const char *node,
                                          ty__attach_resume_fn resume, void *ud) {
  ty__attach_waits *w = ty_xcalloc(1, sizeof *w);
  *w = (ty__attach_waits){.loop = loop, .node = ty_strdup(node), .resume = resume, .ud = ud};
  return w;
}

static void maybe_free(ty__attach_waits *w) {
  if (!w->destroying || w->head || w->open_timers) return;
  free(w->node);
  free(w);
}

static void on_timer_closed(uv_handle_t *h) {
  waiter *x = h->data;
  ty__attach_waits *w = x->w;
  free(x->payload);
  free(x->cred);
  free(x);
  w->open_timers--;
  maybe_free(w);
}

/* Takes x off the list and frees it (once its timer has closed). */
static void drop(waiter *x) {
  ty__attach_waits *w = x->w;
  for (waiter **p = &w->head; *p; p = &(*p)->next) {
    if (*p == x) {
      *p = x->next;
      break;
    }
  }
  w->n--;
  uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static void on_deadline(uv_timer_t *h) {
  waiter *x = h->data;
  char msg[TY_ERR_LEN];
  snprintf(msg, sizeof msg,
           "job %" PRIu64 " rank %" PRIu32 " has no interactive task on node %s: none was "
           "launched within the %" PRIu32 " ms the attach waited",
           x->job_id, x->rank, x->w->node, x->wait_ms);
  (void)ty_rpc_stream_end(x->conn, x->request_id, TY_ENOTFOUND, msg);
  drop(x);
}

static void on_cancel(ty_rpc_conn *c, uint64_t request_id, void *ud) {
  waiter *x = ud;
  (void)c, (void)request_id;
  (void)ty_rpc_stream_end(x->conn, x->request_id, TY_ECLOSED, NULL);
  drop(x);
}

static uint8_t *copy(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1); /* n is the client's */
  if (c && n) memcpy(c, p, n);
  return c;
}

int ty__attach_waits_failed(const ty__attach_waits *w, uint64_t job_id, uint32_t rank, char *err,
                            size_t err_len) {
  for (size_t i = 0; w && i < FAILURES; i++) {
    const failure *f = &w->failed[(w->next_failure + FAILURES - 1 - i) % FAILURES];
    if (f->rc && f->job_id == job_id && f->rank == rank)
      return ty_errf(err, err_len, f->rc, "%s", f->msg);
  }
  return 0;
}

int ty__attach_waits_add(ty__attach_waits *w, ty_rpc_conn *c, const ty_rpc_msg *m, uint64_t job_id,
                         uint32_t rank, uint32_t wait_ms, char *err, size_t err_len) {
  if (w->n >= MAX_WAITS)
    return ty_errf(err, err_len, TY_ESTATE,
                   "node %s already holds %u attaches waiting for their tasks; retry later",
                   w->node, MAX_WAITS);
  waiter *x = calloc(1, sizeof *x);
  if (x) {
    *x = (waiter){.w = w,
                  .conn = c,
                  .request_id = m->request_id,
                  .job_id = job_id,
                  .rank = rank,
                  .wait_ms = wait_ms,
                  .arrived_ns = uv_hrtime(),
                  .payload = copy(m->payload, m->payload_len),
                  .payload_len = m->payload_len,
                  .cred = copy(m->credential, m->credential_len),
                  .cred_len = m->credential_len};
  }
  if (!x || !x->payload || !x->cred) {
    if (x) free(x->payload), free(x->cred);
    free(x);
    return ty_errf(err, err_len, TY_ENOMEM, "no memory on node %s to hold the attach", w->node);
  }
  if (ty_rpc_set_cancel_cb(c, m->request_id, on_cancel, x) != 0) {
    free(x->payload), free(x->cred), free(x);
    return ty_errf(err, err_len, TY_ECLOSED, "the attach was cancelled");
  }
  uv_timer_init(w->loop, &x->timer);
  x->timer.data = x;
  w->open_timers++;
  uv_timer_start(&x->timer, on_deadline, wait_ms, 0);
  x->next = w->head;
  w->head = x;
  w->n++;
  return 0;
}

static void forget_failure(ty__attach_waits *w, uint64_t job_id, uint32_t rank) {
  for (size_t i = 0; i < FAILURES; i++)
    if (w->failed[i].job_id == job_id && w->failed[i].rank == rank) w->failed[i].rc = 0;
}

static const failure *remember_failure(ty__attach_waits *w, uint64_t job_id, uint32_t rank, int rc,
                                       const char *err) {
  failure *f = &w->failed[w->next_failure++ % FAILURES];
  *f = (failure){.job_id = job_id, .rank = rank, .rc = rc};
  snprintf(f->msg, sizeof f->msg, "launch failed on %s: %s", w->node,
           err && err[0] ? err : ty_strerror(rc));
  return f;
}

void ty__attach_waits_wake(ty__attach_waits *w, uint64_t job_id, uint32_t rank, int launch_rc,
                           const char *launch_err) {
  if (!w) return;
  const failure *f = NULL;
  if (launch_rc != 0)
    f = remember_failure(w, job_id, rank, launch_rc, launch_err);
  else
    forget_failure(w, job_id, rank); /* launched again: the old failure is over */
  for (waiter *x = w->head, *next; x; x = next) {
    next = x->next;
    if (x->job_id != job_id || x->rank != rank) continue;
    ty_rpc_msg m = {.request_id = x->request_id,
                    .kind = TY_RPC_REQUEST,
                    .method = "",
                    .message = "",
                    .credential = x->cred,
                    .credential_len = x->cred_len,
                    .payload = x->payload,
                    .payload_len = x->payload_len};
    uv_timer_stop(&x->timer);
    int64_t waited_us = (int64_t)((uv_hrtime() - x->arrived_ns) / 1000u);
    /* Off the list first: the resume may hold the same request again. */
    ty_rpc_set_cancel_cb(x->conn, x->request_id, NULL, NULL);
    drop(x);
    w->resume(w->ud, x->conn, &m, launch_rc, f ? f->msg : NULL, waited_us);
  }
}

void ty__attach_waits_conn_closed(ty__attach_waits *w, ty_rpc_conn *c) {
  for (waiter *x = w ? w->head : NULL, *next; x; x = next) {
    next = x->next;
    if (x->conn == c) drop(x); /* the request is already released with its conn */
  }
}

void ty__attach_waits_destroy(ty__attach_waits *w) {
  if (!w) return;
  w->destroying = true;
  while (w->head) {
    waiter *x = w->head;
    (void)ty_rpc_stream_end(x->conn, x->request_id, TY_ESTATE, "the worker is shutting down");
    drop(x);
  }
  maybe_free(w);
}
