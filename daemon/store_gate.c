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
 * When a reader finishes (its reply, reply.c), or a request arrives that
 * fits while others wait, the kick timer runs waiting requests that fit,
 * at most TY__GATE_PER_KICK per turn of the loop (a waiter answered at once
 * must not make one turn serve all). Of those that fit, the oldest of a
 * uid with the fewest reads running goes first: two users whose backlogs
 * keep every slot busy would otherwise take each freed slot for their own
 * older waiters, and a third user's request would wait for both backlogs.
 * A waiter whose connection closed is dropped unrun; one whose caller is
 * at its cap is skipped, so one user's backlog never holds back another's.
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

static void on_kick(uv_timer_t *t);

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
  if (!ctl->stopping && fits(ctl, r)) uv_timer_start(&ctl->gate_kick, on_kick, 0, 0);
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

/* The waiter to run next and the one before it (*prev): of those whose
 * connection closed or that fit, a closed one first, else the oldest of a
 * uid with the fewest reads running; NULL when none. */
static ty__gate_wait *next_waiter(const ty_controller *ctl, ty__gate_wait **prev) {
  ty__gate_wait *best = NULL, *before = NULL;
  size_t best_uid = SIZE_MAX;
  for (ty__gate_wait *p = NULL, *w = ctl->gate_head; w; p = w, w = w->next) {
    if (!w->r->conn || ctl->stopping) {
      *prev = p;
      return w;
    }
    size_t for_uid, on_conn = running_for(ctl, w->r->conn, w->r->who.uid, &for_uid);
    if (ctl->gate_running >= TY__GATE_GLOBAL || on_conn >= TY__GATE_PER_CONN ||
        for_uid >= TY__GATE_PER_UID || for_uid >= best_uid)
      continue;
    best = w, before = p, best_uid = for_uid;
    if (for_uid == 0) break; /* none goes before it */
  }
  *prev = before;
  return best;
}

/* Runs the waiters that fit (next_waiter's order); drops those whose
 * connection closed. */
static void on_kick(uv_timer_t *t) {
  ty_controller *ctl = t->data;
  int budget = TY__GATE_PER_KICK;
  ty__gate_wait *prev, *w;
  while (budget > 0 && (w = next_waiter(ctl, &prev)) != NULL) {
    unlink_wait(ctl, prev, w);
    if (!w->r->conn || ctl->stopping) {
      ty__reply_finish(w->r, TY_ECLOSED, "connection closed");
    } else {
      enter(ctl, w->r);
      w->fn(ctl, w->r, w->payload, w->len);
      budget--;
    }
    free(w);
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
