/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's live updates as server-sent events (GET /api/events,
 * text/event-stream): instead of polling its documents, a page opens one
 * stream and is told when to fetch again, and a job page is sent its new
 * curve points themselves. The pages read it with fetch(), which sends
 * their token, and poll instead where the browser cannot read a stream or
 * the stream keeps failing (web/app.js).
 *
 * Events (each "event: NAME\ndata: JSON\n\n"):
 *   cluster   {"gen": N}  the live jobs or the nodes changed: fetch the
 *                         overview or the job list again (streams without
 *                         ?job=ID)
 *   job       {"id", "state"}  the watched job changed: fetch it again
 *   progress  the curve document of /api/jobs/ID/progress after the
 *             stream's cursor (?after=STEP&attempt=A, as that route), the
 *             points reported since; the cursor then moves on
 *
 * When: after each group commit (a transition is durable) and on the
 * controller's 1 s tick (progress reports and node changes are not
 * committed). Each stream remembers what it was last told, so a quiet
 * cluster sends nothing but the server's keep-alive comments.
 *
 * Bounds: the HTTP server's (TY_HTTP_STREAM_BUF_MAX queued per stream, a
 * client that far behind is closed and reconnects; the connection caps of
 * the console's listener). A stream's first progress event carries at most
 * the points after its cursor: a page opens the stream after fetching the
 * curve, so the backlog is small.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "lib/json/json.h"

typedef struct web_sub {
  struct web_sub *prev, *next;
  ty_controller *ctl;
  ty_http_stream *st;
  uint64_t job_id;       /* 0: the cluster only */
  uint64_t cluster_sig;  /* last cluster signature sent */
  uint64_t job_gen;      /* last job change sent */
  uint64_t progress_sig; /* last curve signature sent */
  uint32_t attempt;      /* the curve's cursor: points after (attempt, step) */
  uint64_t step;
} web_sub;

/* What the overview and the job list show changed: a live job, or a
 * node's state or load. */
static uint64_t cluster_sig(const ty_controller *ctl) {
  uint64_t h = ty_mix64(ctl->ls_gen);
  for (size_t i = 0; i < ctl->n_nodes; i++) {
    const ty_cluster_node *n = ctl->nodes[i];
    h = ty_mix2(h, ((uint64_t)n->state << 48) ^ ((uint64_t)n->cpus_used << 24) ^
                       ((uint64_t)n->running_tasks << 8) ^ n->gpus_used);
  }
  return h;
}

/* The curve's last point and length: what makes a new progress event. */
static uint64_t progress_sig(ty_controller *ctl, uint64_t job) {
  size_t n = 0;
  const ty__progress_point *p = ty__graph_history(ctl, job, &n);
  if (!n) return 0;
  const ty__progress_point *l = &p[n - 1];
  return ty_mix2(ty_mix2(n, l->step), ty_mix2(l->attempt, (uint64_t)l->time_ms)) ^
         (l->test_accuracy >= 0);
}

static void drop(web_sub *s) {
  ty__web_events *e = s->ctl->web_events;
  if (s->prev)
    s->prev->next = s->next;
  else
    e->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  e->n--;
  free(s);
}

static void on_closed(void *ud) {
  drop(ud);
}

/* Sends one event; false when the stream is gone (s freed). */
static bool send_event(web_sub *s, const char *name, const ty_buf *data) {
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_buf_printf(&b, "event: %s\ndata: ", name);
  if (rc == 0) rc = ty_buf_append(&b, data->data, data->len);
  if (rc == 0) rc = ty_buf_append(&b, "\n\n", 2);
  if (rc == 0)
    rc = ty_http_stream_send(s->st, b.data, b.len); /* on an error the stream is gone */
  else
    ty_http_stream_end(s->st); /* out of memory: end it, the client reconnects */
  ty_buf_close(&b);
  if (rc == 0) return true;
  drop(s);
  return false;
}

static bool send_cluster(web_sub *s, uint64_t sig) {
  s->cluster_sig = sig;
  ty_buf d;
  ty_buf_init(&d);
  ty_buf_printf(&d, "{\"gen\":%llu}", (unsigned long long)s->ctl->ls_gen);
  bool ok = send_event(s, "cluster", &d);
  ty_buf_close(&d);
  return ok;
}

static bool send_job(web_sub *s, const ty_job *j) {
  s->job_gen = j->changed_gen;
  ty_buf d;
  ty_buf_init(&d);
  ty_buf_printf(&d, "{\"id\":%llu,\"state\":\"%s\"}", (unsigned long long)j->id,
                ty_job_state_name(j->state));
  bool ok = send_event(s, "job", &d);
  ty_buf_close(&d);
  return ok;
}

/* The points after the cursor (from the cursor's own step: it may have
 * been completed since), then the cursor moves to the last one sent. */
static bool send_progress(web_sub *s, const ty_job *j, uint64_t sig) {
  s->progress_sig = sig;
  ty_buf d;
  ty_buf_init(&d);
  uint64_t after = s->step ? s->step - 1 : 0;
  if (ty__web_curve_json(s->ctl, j, s->attempt, after, &d) != 0) {
    ty_buf_close(&d);
    return true;
  }
  size_t n = 0;
  const ty__progress_point *p = ty__graph_history(s->ctl, j->id, &n);
  if (n) s->attempt = p[n - 1].attempt, s->step = p[n - 1].step;
  bool ok = send_event(s, "progress", &d);
  ty_buf_close(&d);
  return ok;
}

void ty__web_events_flush(ty_controller *ctl) {
  ty__web_events *e = ctl->web_events;
  if (!e || !e->subs) return;
  uint64_t sig = cluster_sig(ctl);
  for (web_sub *s = e->subs, *next; s; s = next) {
    next = s->next;
    if (!s->job_id) { /* the overview and the job list */
      if (s->cluster_sig != sig) send_cluster(s, sig);
      continue;
    }
    ty_job *j = ty__job_find(ctl, s->job_id);
    if (!j) continue; /* ended and out of memory: its last change went out */
    if (j->changed_gen != s->job_gen && !send_job(s, j)) continue;
    uint64_t ps = j->spec.kind == TY_JOB_KIND_GRAPH ? progress_sig(ctl, j->id) : 0;
    if (ps != s->progress_sig) send_progress(s, j, ps);
  }
}

int ty__web_events_open(ty_controller *ctl, uint64_t job_id, bool has_cursor, uint32_t attempt,
                        uint64_t step, ty_http_response *resp) {
  if (!ctl->web_events) ctl->web_events = ty_xcalloc(1, sizeof(*ctl->web_events));
  ty__web_events *e = ctl->web_events;
  web_sub *s = calloc(1, sizeof(*s));
  if (!s) return TY_ENOMEM;
  *s = (web_sub){.ctl = ctl, .job_id = job_id, .attempt = attempt, .step = step};
  s->st = ty_http_stream_start(resp, on_closed, s);
  if (!s->st) {
    free(s);
    return TY_ENOMEM;
  }
  s->next = e->subs;
  if (s->next) s->next->prev = s;
  e->subs = s;
  e->n++;
  /* What the page holds is current as of now: only changes from here on,
   * except the points after its cursor, sent at once. */
  s->cluster_sig = cluster_sig(ctl);
  ty_job *j = job_id ? ty__job_find(ctl, job_id) : NULL;
  if (j) s->job_gen = j->changed_gen;
  size_t n = 0;
  const ty__progress_point *p = j ? ty__graph_history(ctl, job_id, &n) : NULL;
  if (n && !has_cursor) { /* no curve on the page yet: from now on, not the backlog */
    s->progress_sig = progress_sig(ctl, job_id);
    s->attempt = p[n - 1].attempt, s->step = p[n - 1].step;
  }
  static const char hello[] = "retry: 3000\n\n";
  if (ty_http_stream_send(s->st, hello, sizeof hello - 1) != 0) {
    drop(s);
    return 0; /* closed already: the client retries */
  }
  ty__web_events_flush(ctl);
  return 0;
}

void ty__web_events_free(ty_controller *ctl) {
  ty__web_events *e = ctl->web_events;
  if (!e) return;
  while (e->subs) /* the server closed the streams first: normally none is left */
    drop(e->subs);
  free(e);
  ctl->web_events = NULL;
}
