/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's session with the controller (docs/cluster-protocol.md,
 * "Worker session"): connect out, RegisterNode first, then Heartbeat at the
 * interval the controller chose; LaunchTask and KillTask arrive as requests
 * on the same connection; TaskUpdate reports every ended task until the
 * controller answers 0.
 *
 * Invariants:
 *   - Tasks never depend on the session: losing the controller only stops the
 *     heartbeats. Reconnects back off 250 ms, doubling to 5 s, forever; a
 *     successful registration resets the backoff.
 *   - An ended task's report is forgotten (ty_tasks_ack, that record by its
 *     end time) only after a 0 answer to the TaskUpdate or to the
 *     RegisterNode that carried it; a TaskUpdate awaiting its answer is not
 *     sent again on the same connection.
 *   - The session struct outlives its connection: it is freed only after the
 *     connection's close callback, its timers' close callbacks and its
 *     credential operations' callbacks ran.
 *   - Authentication (docs/security.md): every call to the controller carries
 *     the worker's credential (MUNGE of root, or the cluster key), made off
 *     the loop by the ty_auth_queue in call order; LaunchTask and KillTask
 *     run only once their credential verified as the cluster's service
 *     (root, the service user, or the cluster key), in arrival order. A
 *     credential made or checked for a connection that has since closed is
 *     dropped (conn_gen tells).
 *   - Fencing (docs/cluster-protocol.md, "Partitions and fencing"): the
 *     worker holds a lease on its tasks, renewed by every answer from the
 *     controller. When no answer came for the lease (shorter than the
 *     controller's node timeout, after which the controller requeues the
 *     node's jobs elsewhere), the worker SIGKILLs its running tasks, so a
 *     cut-off node never runs a job that also runs elsewhere. A connection
 *     *refused* by the controller's host holds the lease: the host answers
 *     and no controller runs there, and a restarted one grants every node
 *     its node timeout from its start, so tasks survive controller restarts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rpc/rpc.h"
#include "proto/methods.h"
#include "worker/worker_internal.h"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 5000u
#define CONNECT_TIMEOUT_MS 5000u
#define CALL_TIMEOUT_MS 10000u
#define RETRY_UPDATES_MS 1000u
#define DEFAULT_HEARTBEAT_MS 2000u
/* A controller that tells no node timeout (older than the field): two
 * thirds of traind's default 15 s. */
#define DEFAULT_LEASE_MS 10000u

struct ty_worker_session {
  uv_loop_t *loop;
  ty_worker_session_opts o;
  char *host, *name, *io_addr;
  ty_rpc_conn *conn;
  bool connecting;
  bool registered;
  bool destroying;
  bool warned_unreachable; /* one warning per outage, the retries at debug */
  uint32_t backoff_ms;
  uint32_t heartbeat_ms;
  uv_timer_t reconnect_timer;
  uv_timer_t heartbeat_timer;
  uv_timer_t retry_timer; /* resends TaskUpdates the controller refused */
  uv_timer_t lease_timer; /* checks the lease (fencing) */
  uint32_t lease_ms;      /* in force; 0 = no fencing */
  int64_t last_contact;   /* ty_mono_ms() of the controller's last answer */
  bool refused;           /* the last connect was refused: no controller runs */
  char denied[200];       /* why the controller refused the last RegisterNode; "" = it did not */
  bool fenced;            /* this outage's tasks are killed */
  bool leaving;           /* SIGTERM: every heartbeat says the worker is stopping */
  int open_handles;
  ty__graph_worker *graph;       /* graph jobs: trainrun launches, progress (graph_task.c) */
  uint64_t conn_gen;             /* +1 per connection */
  struct update_call *ends_sent; /* TaskUpdates of ends not yet answered */
  size_t auth_pending;           /* credential operations not yet called back */
  ty_auth_queue *own_queue;      /* when the opts gave none */
};

/* The tasks an in-flight RegisterNode carried, acknowledged by its answer. */
typedef struct carried {
  ty_worker_session *s;
  size_t n, cap;
  struct {
    uint64_t job_id;
    uint32_t rank;
    int64_t ended_ms;
  } * items;
} carried;

static void connect_now(ty_worker_session *s);
static void send_pending_updates(ty_worker_session *s);

static void on_reconnect_timer(uv_timer_t *h) {
  connect_now(h->data);
}
static void on_retry_timer(uv_timer_t *h) {
  send_pending_updates(h->data);
}

/* ---- the lease ---------------------------------------------------------------- */

static void contact(ty_worker_session *s) {
  s->last_contact = ty_mono_ms();
  s->fenced = false;
}

static void on_lease_timer(uv_timer_t *h) {
  ty_worker_session *s = h->data;
  if (!s->lease_ms || s->fenced || ty_tasks_running(s->o.tasks) == 0) return;
  if (s->refused) {
    contact(s);
    return;
  }
  int64_t silent = ty_mono_ms() - s->last_contact;
  if (silent <= (int64_t)s->lease_ms) return;
  char why[400];
  if (s->denied[0])
    snprintf(why, sizeof why,
             "fenced: node %s was refused by the controller for %lld ms (lease %u ms): %s", s->name,
             (long long)silent, s->lease_ms, s->denied);
  else
    snprintf(why, sizeof why,
             "fenced: node %s had no answer from the controller for %lld ms (lease %u ms)", s->name,
             (long long)silent, s->lease_ms);
  uint32_t n = ty_tasks_fence(s->o.tasks, why);
  s->fenced = true;
  ty_warn("session: %s; killed its %u running tasks (the controller requeues their jobs after its "
          "node timeout)",
          why, n);
}

/* At registration: the lease in force, from --lease-ms or the controller's
 * node timeout, checked 8 times per lease. */
static void set_lease(ty_worker_session *s, uint32_t node_timeout_ms) {
  uint32_t lease = s->o.lease_ms;
  if (lease == TY_LEASE_AUTO)
    lease = node_timeout_ms ? (uint32_t)((uint64_t)node_timeout_ms * 2 / 3) : DEFAULT_LEASE_MS;
  if (lease && node_timeout_ms && lease >= node_timeout_ms)
    ty_warn("session: --lease-ms %u is not shorter than the controller's node timeout (%u ms): "
            "a cut-off node's tasks may still run when their jobs start elsewhere",
            lease, node_timeout_ms);
  if (lease != s->lease_ms || !uv_is_active((uv_handle_t *)&s->lease_timer)) {
    uint32_t every = lease / 8 < 20 ? 20 : lease / 8 > 1000 ? 1000 : lease / 8;
    if (lease)
      uv_timer_start(&s->lease_timer, on_lease_timer, every, every);
    else
      uv_timer_stop(&s->lease_timer);
    if (lease != s->lease_ms)
      ty_info("session: lease %u ms%s", lease, lease ? "" : " (no fencing: --lease-ms 0)");
  }
  s->lease_ms = lease;
}

/* ---- lifetime --------------------------------------------------------------- */

static void maybe_free(ty_worker_session *s) {
  if (!s->destroying || s->open_handles > 0 || s->conn || s->connecting || s->auth_pending) return;
  ty_auth_queue_destroy(s->own_queue);
  free(s->host);
  free(s->name);
  free(s->io_addr);
  ty__graph_worker_destroy(s->graph);
  free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  ty_worker_session *s = h->data;
  s->open_handles--;
  maybe_free(s);
}

static void schedule_reconnect(ty_worker_session *s) {
  if (s->destroying) return;
  ty_debug("session: reconnecting to %s:%d in %u ms", s->host, s->o.port, s->backoff_ms);
  uv_timer_start(&s->reconnect_timer, on_reconnect_timer, s->backoff_ms, 0);
  s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void on_conn_close(ty_rpc_conn *c, int reason, void *ud) {
  (void)ud;
  ty_worker_session *s = ty_rpc_get_ud(c);
  if (s->conn != c) return;
  if (!s->destroying && (s->registered || reason != 0))
    ty_warn("session: connection to controller %s closed (%s)", ty_rpc_peer(c),
            reason ? ty_strerror(reason) : "orderly");
  s->conn = NULL;
  s->registered = false;
  uv_timer_stop(&s->heartbeat_timer);
  uv_timer_stop(&s->retry_timer);
  if (s->destroying) {
    maybe_free(s);
    return;
  }
  schedule_reconnect(s);
}

/* ---- signed calls ------------------------------------------------------------------ */

typedef struct signed_call {
  ty_worker_session *s;
  uint64_t gen;
  uint32_t timeout_ms;
  ty_rpc_answer_cb cb;
  void *ud;
} signed_call;

static void on_signed(const ty_auth_done *d, void *ud) {
  signed_call *k = ud;
  ty_worker_session *s = k->s;
  ty_rpc_conn *c = !s->destroying && s->conn_gen == k->gen ? s->conn : NULL;
  ty_auth_send(c, d, k->timeout_ms, k->cb, k->ud, "session");
  free(k);
  s->auth_pending--;
  maybe_free(s);
}

void ty__session_call(ty_worker_session *s, const char *method, const ty_buf *payload,
                      uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud) {
  signed_call *k = ty_xcalloc(1, sizeof *k);
  *k = (signed_call){s, s->conn_gen, timeout_ms, cb, ud};
  s->auth_pending++;
  ty_auth_op op = {.kind = TY_AUTH_OP_SIGN,
                   .auth = s->o.auth,
                   .method = method,
                   .payload = payload->data,
                   .len = payload->len};
  ty_auth_queue_submit(s->o.queue, &op, on_signed, k);
}

/* ---- heartbeats -------------------------------------------------------------- */

static void on_heartbeat_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                                void *ud) {
  (void)msg;
  (void) final;
  if (status == 0) contact(ud);
  if (status == TY_ETIMEDOUT) {
    /* A controller that stops answering is as good as gone: start over. */
    ty_warn("session: heartbeat timed out; reconnecting");
    ty_rpc_close(c);
  } else if (status == TY_ENOTFOUND || status == TY_ESTATE) {
    /* The controller no longer knows this node (it lost its state, or
     * declared us DOWN): register again, which reports every task. */
    ty_warn("session: controller refused the heartbeat (%s); registering again",
            msg && msg->message[0] ? msg->message : ty_strerror(status));
    ty_rpc_close(c);
  } else if (status != 0 && status != TY_ECLOSED) {
    ty_warn("session: heartbeat refused: %s%s%s", ty_strerror(status), msg ? ": " : "",
            msg ? msg->message : "");
  }
}

static void heartbeat_now(ty_worker_session *s) {
  if (!s->conn || !s->registered) return;
  ty_buf b;
  ty_buf_init(&b);
  uint32_t timeout = s->heartbeat_ms * 3 > CALL_TIMEOUT_MS ? s->heartbeat_ms * 3 : CALL_TIMEOUT_MS;
  int rc = ty__encode_heartbeat(s->name, ty_tasks_running(s->o.tasks), s->leaving, &b);
  if (rc == 0)
    ty__session_call(s, TY_M_HEARTBEAT, &b, timeout, on_heartbeat_answer, s);
  else
    ty_warn("session: cannot send heartbeat: %s", ty_strerror(rc));
  ty_buf_close(&b);
}

static void send_heartbeat(uv_timer_t *h) {
  ty_worker_session *s = h->data;
  heartbeat_now(s);
  ty__graph_tick(s->graph, s);
}

/* Sent before the tasks are killed, on the same connection as their
 * reports: the controller marks the node leaving (no new jobs) before it
 * reads the first task end, so it never places a requeued job back here. */
void ty_worker_session_leaving(ty_worker_session *s) {
  s->leaving = true;
  heartbeat_now(s);
}

/* ---- task updates ---------------------------------------------------------- */

typedef struct update_call {
  ty_worker_session *s;
  uint64_t job_id;
  uint32_t rank;
  int64_t ended_ms;         /* with job_id and rank, which task's end */
  bool end;                 /* an end (acknowledged, then forgotten); else a --signal warning */
  struct update_call *next; /* on s->ends_sent while an end's answer is awaited */
} update_call;

/* r's end is sent and not yet answered: the retry timer's sweep does not
 * send it again (the answer to either copy makes the worker forget the
 * task). A later task of the same job and rank ended at another time. Every
 * call is answered, TY_ECLOSED when its connection goes, before the session
 * can be freed. */
static bool end_in_flight(const ty_worker_session *s, const ty_task_report *r) {
  for (const update_call *u = s->ends_sent; u; u = u->next)
    if (u->job_id == r->job_id && u->rank == r->rank && u->ended_ms == r->ended_ms) return true;
  return false;
}

static void end_answered(ty_worker_session *s, const update_call *u) {
  update_call **p = &s->ends_sent;
  while (*p && *p != u)
    p = &(*p)->next;
  if (*p) *p = u->next;
}

static void on_update_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                             void *ud) {
  (void)c;
  (void) final;
  update_call *u = ud;
  ty_worker_session *s = u->s;
  if (u->end) end_answered(s, u);
  if (status == 0) {
    /* Only an end's answer acknowledges it: a warning's answer may arrive
     * after the task ended, before the end itself was stored. */
    if (u->end) ty_tasks_ack(s->o.tasks, u->job_id, u->rank, u->ended_ms);
  } else if (status != TY_ECLOSED && u->end) {
    ty_warn("session: TaskUpdate for job %" PRIu64 " rank %" PRIu32 " refused: %s%s%s", u->job_id,
            u->rank, ty_strerror(status), msg ? ": " : "", msg ? msg->message : "");
    if (!s->destroying && s->registered && !uv_is_active((uv_handle_t *)&s->retry_timer))
      uv_timer_start(&s->retry_timer, on_retry_timer, RETRY_UPDATES_MS, 0);
  }
  free(u);
}

static void send_update(ty_worker_session *s, const ty_task_report *r) {
  ty_buf b;
  ty_buf_init(&b);
  bool end = r->state != TY_TASK_RUNNING;
  if (!s->conn || !s->registered || (end && end_in_flight(s, r)) ||
      ty__encode_task_update(r, &b) != 0) {
    ty_buf_close(&b);
    return;
  }
  update_call *u = ty_xcalloc(1, sizeof *u);
  u->s = s;
  u->job_id = r->job_id;
  u->rank = r->rank;
  u->ended_ms = r->ended_ms;
  u->end = end;
  if (end) u->next = s->ends_sent, s->ends_sent = u;
  ty__session_call(s, TY_M_TASK_UPDATE, &b, CALL_TIMEOUT_MS, on_update_answer, u);
  ty_buf_close(&b);
}

static void send_if_ended(const ty_task_report *r, void *ud) {
  if (r->state != TY_TASK_RUNNING) send_update(ud, r);
}

static void send_pending_updates(ty_worker_session *s) {
  ty_tasks_foreach(s->o.tasks, send_if_ended, s);
}

void ty_worker_session_task_ended(ty_worker_session *s, const ty_task_report *r) {
  if (!s) return;
  if (r->rank == 0 && s->conn && s->registered) ty__graph_report_now(s->graph, s, r->job_id);
  send_update(s, r);
}

static void count_unacked(const ty_task_report *r, void *ud) {
  if (r->state != TY_TASK_RUNNING) (*(uint32_t *)ud)++;
}

uint32_t ty_worker_session_unacked(const ty_worker_session *s) {
  uint32_t n = 0;
  ty_tasks_foreach(s->o.tasks, count_unacked, &n);
  return n;
}

bool ty_worker_session_registered(const ty_worker_session *s) {
  return s->registered;
}

/* ---- registration ------------------------------------------------------------ */

static void remember_ended(const ty_task_report *r, void *ud) {
  carried *c = ud;
  if (r->state == TY_TASK_RUNNING) return;
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 8;
    c->items = ty_xrealloc(c->items, c->cap * sizeof *c->items);
  }
  c->items[c->n].job_id = r->job_id;
  c->items[c->n].rank = r->rank;
  c->items[c->n].ended_ms = r->ended_ms;
  c->n++;
}

static void registered(ty_worker_session *s, carried *c, const ty_rpc_msg *msg) {
  uint32_t hb = 0, node_timeout = 0;
  if (ty__decode_register_response(msg->payload, msg->payload_len, &hb, &node_timeout) != 0 ||
      hb == 0)
    hb = DEFAULT_HEARTBEAT_MS;
  s->heartbeat_ms = hb;
  contact(s);
  s->refused = false;
  s->denied[0] = '\0';
  set_lease(s, node_timeout);
  s->registered = true;
  s->warned_unreachable = false;
  s->backoff_ms = BACKOFF_MIN_MS;
  for (size_t i = 0; i < c->n; i++)
    ty_tasks_ack(s->o.tasks, c->items[i].job_id, c->items[i].rank, c->items[i].ended_ms);
  ty_info("session: registered with controller %s as %s (heartbeat %u ms, %u running tasks)",
          ty_rpc_peer(s->conn), s->name, hb, ty_tasks_running(s->o.tasks));
  uv_timer_start(&s->heartbeat_timer, send_heartbeat, hb, hb);
  if (s->leaving) heartbeat_now(s); /* registering cleared it on the controller */
  /* Tasks that ended while RegisterNode was in flight were not in it. */
  send_pending_updates(s);
}

static void on_register_answer(ty_rpc_conn *conn, int status, const ty_rpc_msg *msg, bool final,
                               void *ud) {
  (void) final;
  carried *c = ud;
  ty_worker_session *s = c->s;
  if (s->destroying || s->conn != conn) {
    /* Answered after we gave up on this connection: nothing to do. */
  } else if (status == 0 && msg) {
    registered(s, c, msg);
  } else if (status != TY_ECLOSED) {
    ty_error("session: controller refused RegisterNode for %s: %s%s%s", s->name,
             ty_strerror(status), msg && msg->message[0] ? ": " : "", msg ? msg->message : "");
    snprintf(s->denied, sizeof s->denied, "%s",
             msg && msg->message[0] ? msg->message : ty_strerror(status));
    ty_rpc_close(conn); /* the close callback schedules the next attempt */
  }
  free(c->items);
  free(c);
}

/* Every task's report, for RegisterNode (borrowing the records' reasons). */
typedef struct reports {
  ty_task_report *v;
  size_t n, cap;
} reports;

static void add_report(const ty_task_report *r, void *ud) {
  reports *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = ty_xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = *r;
}

/* The task I/O address to register: --advertise's, or (a wildcard
 * listener without it) this end of the controller connection, the
 * interface the controller's network reaches. */
static const char *io_addr(ty_worker_session *s, char *buf, size_t n) {
  if (s->io_addr[0] || !s->conn) return s->io_addr;
  char host[64] = "";
  int rc = ty_rpc_local_host(s->conn, host, sizeof host);
  if (rc != 0) {
    ty_warn("session: cannot tell the local address facing the controller: %s", ty_strerror(rc));
    snprintf(host, sizeof host, "127.0.0.1");
  }
  if (strchr(host, ':'))
    snprintf(buf, n, "[%s]:%d", host, s->o.io_port);
  else
    snprintf(buf, n, "%s:%d", host, s->o.io_port);
  return buf;
}

static int encode_register(ty_worker_session *s, ty_buf *out) {
  reports l = {0};
  ty_tasks_foreach(s->o.tasks, add_report, &l);
  char buf[96];
  ty__node_status st = {.inv = s->o.inv,
                        .name = s->name,
                        .io_addr = io_addr(s, buf, sizeof buf),
                        .cpus_used = ty_tasks_cpus_used(s->o.tasks),
                        .gpus_used = ty_tasks_gpus_used(s->o.tasks),
                        .running = ty_tasks_running(s->o.tasks),
                        .tasks = l.v,
                        .n_tasks = l.n};
  int rc = ty__encode_register(&st, out);
  free(l.v);
  return rc;
}

static void send_register(ty_worker_session *s) {
  ty_buf b;
  ty_buf_init(&b);
  int rc = encode_register(s, &b);
  carried *c = ty_xcalloc(1, sizeof *c);
  c->s = s;
  ty_tasks_foreach(s->o.tasks, remember_ended, c);
  if (rc == 0) ty__session_call(s, TY_M_REGISTER_NODE, &b, CALL_TIMEOUT_MS, on_register_answer, c);
  ty_buf_close(&b);
  if (rc != 0) {
    ty_error("session: cannot send RegisterNode: %s", ty_strerror(rc));
    free(c->items);
    free(c);
    ty_rpc_close(s->conn);
  }
}

/* ---- requests from the controller -------------------------------------------- */

/* A LaunchTask is answered once its command exec'd (or failed to), so
 * the answer precedes the task's TaskUpdate on the connection. */
static void handle_launch(ty_worker_session *s, ty_rpc_conn *c, const ty_rpc_msg *req) {
  ty__launch l;
  if (ty__decode_launch(req->payload, req->payload_len, &l) != 0) {
    ty_rpc_reply(c, req->request_id, TY_EPROTO, "LaunchTaskRequest: malformed payload", NULL, 0);
    return;
  }
  char err[TY_ERR_LEN] = "";
  ty__graph_cmd gc;
  bool node_fault = false;
  int rc = ty__graph_prepare(s->graph, &l.spec, &gc, err, sizeof err);
  if (rc >= 0) rc = ty_tasks_launch_classified(s->o.tasks, &l.spec, &node_fault, err, sizeof err);
  if (rc != 0)
    ty_warn("launch of job %" PRIu64 " rank %" PRIu32 " failed%s: %s", l.spec.job_id, l.spec.rank,
            node_fault ? " for this node's reason" : "", err);
  /* A refusal because this worker stops, or a failure that is the node's,
   * says so in a field: the controller requeues the job and drains the
   * node on it, not on the message's words. */
  bool stopping = rc == TY_ESTATE && s->leaving;
  ty_buf b;
  ty_buf_init(&b);
  if ((stopping || node_fault) && ty__encode_launch_response(stopping, node_fault, &b) != 0)
    ty_buf_close(&b);
  ty_rpc_reply(c, req->request_id, rc, rc ? err : NULL, b.data, b.len);
  ty_buf_close(&b);
  ty__graph_cmd_close(&gc);
  ty__launch_free(&l);
}

static void handle_kill(ty_worker_session *s, ty_rpc_conn *c, const ty_rpc_msg *req) {
  uint64_t job = 0;
  int sig = 0;
  uint32_t grace = 0;
  bool batch_only = false;
  if (ty__decode_kill(req->payload, req->payload_len, &job, &sig, &grace, &batch_only) != 0) {
    ty_rpc_reply(c, req->request_id, TY_EPROTO, "KillTaskRequest: malformed payload", NULL, 0);
    return;
  }
  int rc = batch_only && sig > 0 ? ty_tasks_signal_batch(s->o.tasks, job, sig)
                                 : ty_tasks_kill(s->o.tasks, job, sig, grace);
  char msg[TY_ERR_LEN];
  snprintf(msg, sizeof msg, "signal: %d is not a signal number", sig);
  ty_rpc_reply(c, req->request_id, rc, rc ? msg : NULL, NULL, 0);
}

static void handle_set_limit(ty_worker_session *s, ty_rpc_conn *c, const ty_rpc_msg *req) {
  uint64_t job = 0;
  uint32_t secs = 0;
  if (ty__decode_set_limit(req->payload, req->payload_len, &job, &secs) != 0) {
    ty_rpc_reply(c, req->request_id, TY_EPROTO, "SetTaskLimitRequest: malformed payload", NULL, 0);
    return;
  }
  ty_rpc_reply(c, req->request_id, ty_tasks_set_limit(s->o.tasks, job, secs), NULL, NULL, 0);
}

/* One handler per method the controller may call on a worker. */
static const struct {
  const char *method;
  void (*fn)(ty_worker_session *s, ty_rpc_conn *c, const ty_rpc_msg *req);
} handlers[] = {
    {.method = TY_M_LAUNCH_TASK, .fn = handle_launch},
    {.method = TY_M_KILL_TASK, .fn = handle_kill},
    {.method = TY_M_SET_TASK_LIMIT, .fn = handle_set_limit},
};

/* A request whose credential is being checked. */
typedef struct inbound {
  ty_worker_session *s;
  uint64_t gen, request_id;
} inbound;

/* The credential verified (or the scheme is none): only the cluster's
 * service may launch or kill tasks here. */
static void on_verified(const ty_auth_done *d, void *ud) {
  inbound *in = ud;
  ty_worker_session *s = in->s;
  ty_rpc_conn *c = !s->destroying && s->conn_gen == in->gen ? s->conn : NULL;
  char msg[TY_ERR_LEN];
  if (!c) {
    /* The connection it came on is gone, and its request with it. */
  } else if (d->status != 0) {
    ty_warn("session: refused %s from the controller: %s", d->method, d->err);
    ty_rpc_reply(c, in->request_id, d->status, d->err, NULL, 0);
  } else if (d->id.authenticated && !ty_auth_id_is_service(&d->id, s->o.service_uid)) {
    snprintf(msg, sizeof msg,
             "%s: permission denied: %s (uid %u) is neither root nor the "
             "service user this worker accepts (--service-user)",
             d->method, d->id.user, d->id.uid);
    ty_warn("session: refused %s", msg);
    ty_rpc_reply(c, in->request_id, TY_EPERM, msg, NULL, 0);
  } else {
    ty_rpc_msg req = {.request_id = in->request_id,
                      .kind = TY_RPC_REQUEST,
                      .method = d->method,
                      .payload = d->payload,
                      .payload_len = d->len};
    size_t i = 0;
    while (i < TY_ARRAY_LEN(handlers) && strcmp(handlers[i].method, d->method) != 0)
      i++;
    handlers[i].fn(s, c, &req);
  }
  free(in);
  s->auth_pending--;
  maybe_free(s);
}

static void on_request(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud) {
  (void)ud;
  ty_worker_session *s = ty_rpc_get_ud(c);
  if (req->kind != TY_RPC_REQUEST) return;
  if (!s->registered) {
    ty_rpc_reply(c, req->request_id, TY_ESTATE, "worker is not registered yet", NULL, 0);
    return;
  }
  size_t i = 0;
  while (i < TY_ARRAY_LEN(handlers) && strcmp(handlers[i].method, req->method) != 0)
    i++;
  if (i == TY_ARRAY_LEN(handlers)) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "unknown method \"%.100s\" on worker %s", req->method, s->name);
    ty_rpc_reply(c, req->request_id, TY_ENOTFOUND, msg, NULL, 0);
    return;
  }
  /* Caps and decoding before the credential: bad input gets its field named
   * at once, and only bounded requests are copied into the auth queue. */
  char err[TY_ERR_LEN];
  if (ty__check_request(req->method, req->payload, req->payload_len, err, sizeof err) != 0) {
    ty_warn("session: refused %.64s from the controller: %s", req->method, err);
    ty_rpc_reply(c, req->request_id, TY_EINVAL, err, NULL, 0);
    return;
  }
  inbound *in = ty_xcalloc(1, sizeof *in);
  *in = (inbound){s, s->conn_gen, req->request_id};
  s->auth_pending++;
  ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY,
                   .auth = s->o.auth,
                   .method = req->method,
                   .payload = req->payload,
                   .len = req->payload_len,
                   .cred = req->auth,
                   .cred_len = req->auth_len};
  ty_auth_queue_submit(s->o.queue, &op, on_verified, in);
}

/* ---- connecting ------------------------------------------------------------------ */

static void on_connected(ty_rpc_conn *c, int status, void *ud) {
  ty_worker_session *s = ud;
  s->connecting = false;
  s->refused = status == UV_ECONNREFUSED;
  if (status != 0) {
    ty_log(s->warned_unreachable ? TY_LOG_DEBUG : TY_LOG_WARN,
           "session: cannot reach controller %s:%d: %s; retrying", s->host, s->o.port,
           ty_strerror(status));
    s->warned_unreachable = true;
    if (s->destroying) {
      maybe_free(s);
      return;
    }
    schedule_reconnect(s);
    return;
  }
  ty_rpc_set_ud(c, s);
  s->conn = c;
  s->conn_gen++;
  if (s->destroying) {
    ty_rpc_close(c);
    return;
  }
  send_register(s);
}

static void connect_now(ty_worker_session *s) {
  if (s->destroying || s->conn || s->connecting) return;
  ty_rpc_conn_opts opts = {.on_request = on_request, .on_close = on_conn_close, .ud = s};
  s->connecting = true;
  int rc = ty_rpc_connect(s->loop, s->host, s->o.port, &opts, CONNECT_TIMEOUT_MS, on_connected, s);
  if (rc != 0) {
    s->connecting = false;
    ty_warn("session: cannot connect to %s:%d: %s", s->host, s->o.port, ty_strerror(rc));
    schedule_reconnect(s);
  }
}

int ty_worker_session_create(uv_loop_t *loop, const ty_worker_session_opts *opts,
                             ty_worker_session **out_session) {
  if (!opts->host || !opts->name || !opts->inv || !opts->tasks || opts->port <= 0 ||
      opts->port > 65535)
    return TY_EINVAL;
  ty_worker_session *s = ty_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->o = *opts;
  if (!s->o.queue && ty_auth_queue_create(loop, &s->own_queue) != 0) {
    free(s);
    return TY_ENOMEM;
  }
  if (!s->o.queue) s->o.queue = s->own_queue;
  s->host = ty_strdup(opts->host);
  s->name = ty_strdup(opts->name);
  s->io_addr = ty_strdup(opts->io_addr ? opts->io_addr : "");
  s->backoff_ms = BACKOFF_MIN_MS;
  char ctl[300];
  snprintf(ctl, sizeof ctl, "%s:%d", opts->host, opts->port);
  s->graph = ty__graph_worker_create(opts->tasks, opts->trainrun, ctl);
  s->lease_ms = opts->lease_ms == TY_LEASE_AUTO ? DEFAULT_LEASE_MS : opts->lease_ms;
  contact(s);
  uv_timer_t *timers[] = {&s->reconnect_timer, &s->heartbeat_timer, &s->retry_timer,
                          &s->lease_timer};
  for (size_t i = 0; i < TY_ARRAY_LEN(timers); i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = s;
    s->open_handles++;
  }
  connect_now(s);
  *out_session = s;
  return 0;
}

void ty_worker_session_destroy(ty_worker_session *s) {
  if (!s || s->destroying) return;
  s->destroying = true;
  uv_close((uv_handle_t *)&s->reconnect_timer, on_timer_closed);
  uv_close((uv_handle_t *)&s->heartbeat_timer, on_timer_closed);
  uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
  uv_close((uv_handle_t *)&s->lease_timer, on_timer_closed);
  if (s->conn) ty_rpc_close(s->conn);
}
