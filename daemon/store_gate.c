/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store readers' gate: how many requests that read the store on
 * libuv's thread pool (ListJobs, GetHistory) run at once.
 *
 * A store reader runs when fewer than TY__GATE_GLOBAL of them run in all,
 * fewer than TY__GATE_PER_UID for its caller's uid and fewer than
 * TY__GATE_PER_CONN on its connection; otherwise it waits, not yet
 * handled, holding only its payload. A waiting request is still
 * unanswered, so it counts against its connection's --max-inflight: a
 * client pipelining store reads stops being read (lib/rpc's backpressure),
 * and the pool holds at most TY__GATE_GLOBAL store reads, so what else
 * queues there (clients' credential checks) waits behind a few reads, not
 * behind thousands, and answers being built are at most that many.
 *
 * When a reader finishes (its reply, reply.c), the kick timer runs the
 * oldest waiting requests that fit, at most TY__GATE_PER_KICK per turn of
 * the loop (a waiter answered at once must not make one turn serve all).
 * A waiter whose connection closed is dropped unrun; one whose caller is at
 * its cap is skipped, so one user's backlog never holds back another's.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

enum { TY__GATE_PER_KICK = 16 };

struct ty__gate_wait {
  struct ty__gate_wait *next;
  ty_reply *r;
  ty__gate_fn fn;
  size_t len;
  uint8_t payload[];
};

static size_t running_for(const ty_controller *ctl, const ty_rpc_conn *c, uint32_t uid,
                          size_t *for_uid) {
  size_t on_conn = 0;
  *for_uid = 0;
  for (size_t i = 0; i < ctl->gate_running; i++) {
    on_conn += ctl->gate_run[i].conn == c;
    *for_uid += ctl->gate_run[i].uid == uid;
  }
  return on_conn;
}

static bool fits(const ty_controller *ctl, const ty_reply *r) {
  if (ctl->gate_running >= TY__GATE_GLOBAL) return false;
  size_t for_uid;
  size_t on_conn = running_for(ctl, r->conn, r->who.uid, &for_uid);
  return on_conn < TY__GATE_PER_CONN && for_uid < TY__GATE_PER_UID;
}

static void enter(ty_controller *ctl, ty_reply *r) {
  ctl->gate_run[ctl->gate_running++] = (ty__gate_slot){r, r->conn, r->who.uid};
  r->gated = true;
}

bool ty__gate_admit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n, ty__gate_fn fn) {
  if (!ctl->gate_head && fits(ctl, r)) {
    enter(ctl, r);
    return true;
  }
  ty__gate_wait *w = malloc(sizeof(*w) + n);
  if (!w) {
    ty__reply_finish(r, TY_ENOMEM, "out of memory queueing a store read");
    return false;
  }
  *w = (ty__gate_wait){.r = r, .fn = fn, .len = n};
  if (n) memcpy(w->payload, p, n);
  if (ctl->gate_tail)
    ctl->gate_tail->next = w;
  else
    ctl->gate_head = w;
  ctl->gate_tail = w;
  ctl->gate_waiting++;
  return false;
}

/* Unlinks w (after prev, or the head). */
static void unlink_wait(ty_controller *ctl, ty__gate_wait *prev, ty__gate_wait *w) {
  if (prev)
    prev->next = w->next;
  else
    ctl->gate_head = w->next;
  if (ctl->gate_tail == w) ctl->gate_tail = prev;
  ctl->gate_waiting--;
}

/* Runs the oldest waiters that fit; drops those whose connection closed. */
static void on_kick(uv_timer_t *t) {
  ty_controller *ctl = t->data;
  int budget = TY__GATE_PER_KICK;
  ty__gate_wait *prev = NULL, *w = ctl->gate_head;
  while (w && budget > 0 && ctl->gate_running < TY__GATE_GLOBAL) {
    ty__gate_wait *next = w->next;
    if (w->r->conn && !ctl->stopping && !fits(ctl, w->r)) {
      prev = w, w = next;
      continue;
    }
    unlink_wait(ctl, prev, w);
    if (!w->r->conn || ctl->stopping) {
      ty__reply_finish(w->r, TY_ECLOSED, "connection closed");
    } else {
      enter(ctl, w->r);
      w->fn(ctl, w->r, w->payload, w->len);
      budget--;
    }
    free(w);
    w = prev ? prev->next : ctl->gate_head; /* the handler may have changed the list */
  }
  if (budget == 0 && ctl->gate_head && !ctl->stopping) uv_timer_start(t, on_kick, 0, 0);
}

void ty__gate_leave(ty_controller *ctl, ty_reply *r) {
  for (size_t i = 0; i < ctl->gate_running; i++)
    if (ctl->gate_run[i].r == r) {
      ctl->gate_run[i] = ctl->gate_run[--ctl->gate_running];
      break;
    }
  r->gated = false;
  if (ctl->gate_head && !ctl->stopping) uv_timer_start(&ctl->gate_kick, on_kick, 0, 0);
}

void ty__gate_conn_closed(ty_controller *ctl, const ty_rpc_conn *c) {
  for (size_t i = 0; i < ctl->gate_running; i++)
    if (ctl->gate_run[i].conn == c) ctl->gate_run[i].conn = NULL;
  /* Its waiters (their r->conn is now NULL) go without running. */
  for (ty__gate_wait *prev = NULL, *w = ctl->gate_head, *next; w; w = next) {
    next = w->next;
    if (w->r->conn) {
      prev = w;
      continue;
    }
    unlink_wait(ctl, prev, w);
    ty__reply_finish(w->r, TY_ECLOSED, "connection closed");
    free(w);
  }
}

void ty__gate_init(ty_controller *ctl) {
  uv_timer_init(ctl->loop, &ctl->gate_kick);
  ctl->gate_kick.data = ctl;
}

void ty__gate_stop(ty_controller *ctl) {
  for (ty__gate_wait *w = ctl->gate_head, *next; w; w = next) {
    next = w->next;
    ty__reply_finish(w->r, TY_ECLOSED, "the controller is shutting down");
    free(w);
  }
  ctl->gate_head = ctl->gate_tail = NULL;
  ctl->gate_waiting = 0;
  uv_timer_stop(&ctl->gate_kick);
}
