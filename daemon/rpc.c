/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RPC dispatch for traind: one handler per method in a designated-initializer
 * table. Every request becomes a ty_reply (reply.c) that the handler
 * finishes, at once or after its commit.
 *
 * Each method names who may call it (auth.c): clients with their own
 * credential, workers with the cluster service's, or anyone holding the
 * job-scoped token the handler checks. A request is checked in this order:
 * its frame (lib/rpc), its caps and decoding (proto/convert.c's table, here,
 * on the loop: cheap, and answered with the field at fault), its credential
 * (off the loop, auth.c), then who may do what (the handler). It runs only
 * once its credential verified, in the order requests arrived; a method
 * that reads the store on the pool (ListJobs, GetHistory) may then wait at
 * the store readers' gate (store_gate.c).
 *
 * Worker methods (Heartbeat, TaskUpdate) are refused with TY_ESTATE on a
 * connection that has not sent RegisterNode first, and on such a connection
 * RegisterNode is taken only while no other request of it is in flight:
 * both before any credential check, so that requests of clients posing as
 * workers never queue on the workers' credential thread (auth.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "proto/methods.h"

typedef void (*handler_fn)(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

typedef enum {
  M_SUBMIT,
  M_LIST_JOBS,
  M_GET_JOB,
  M_CANCEL,
  M_LIST_NODES,
  M_LOCATIONS,
  M_REGISTER,
  M_HEARTBEAT,
  M_TASK_UPDATE,
  M_LIST_QUEUES,
  M_UPDATE_QUEUE,
  M_UPDATE_NODE,
  M_UPDATE_JOB,
  M_EXPLAIN_JOB,
  M_GET_SHARES,
  M_RDV_PUT,
  M_RDV_GET,
  M_REPORT_PROGRESS,
  M_GET_HISTORY,
  M_GET_NODE,
  M_PLAN_JOB,
  M_WATCH_JOB,
  M_WEB_TOKEN,
  M_RECONFIGURE,
  M_ADMIN_EVENTS,
  M_COUNT
} method_id;

#define CLIENT TY_AUTH_CLASS_CLIENT
#define WORKER TY_AUTH_CLASS_WORKER
#define TOKEN TY_AUTH_CLASS_TOKEN

static const struct {
  const char *name;
  handler_fn fn;
  ty_auth_class who;
  bool needs_registration;
  bool reads_store; /* on the pool: through the store readers' gate (store_gate.c) */
  /* Answers from memory and from store rows a write queued before it may
   * add (a job's or a node's events): runs once those writes are stored. */
  bool after_writes;
} methods[M_COUNT] = {
    [M_SUBMIT] = {TY_M_SUBMIT_JOB, ty__h_submit, CLIENT, false},
    [M_LIST_JOBS] = {TY_M_LIST_JOBS, ty__h_list_jobs, CLIENT, false, true},
    [M_GET_JOB] = {TY_M_GET_JOB, ty__h_get_job, CLIENT, false, false, true},
    [M_CANCEL] = {TY_M_CANCEL_JOB, ty__h_cancel, CLIENT, false},
    [M_LIST_NODES] = {TY_M_LIST_NODES, ty__h_list_nodes, CLIENT, false},
    [M_LOCATIONS] = {TY_M_GET_TASK_LOCATIONS, ty__h_task_locations, CLIENT, false},
    [M_REGISTER] = {TY_M_REGISTER_NODE, ty__h_register, WORKER, false},
    [M_HEARTBEAT] = {TY_M_HEARTBEAT, ty__h_heartbeat, WORKER, true},
    [M_TASK_UPDATE] = {TY_M_TASK_UPDATE, ty__h_task_update, WORKER, true},
    /* The scheduler's operations (admin.c). */
    [M_LIST_QUEUES] = {TY_M_LIST_QUEUES, ty__h_list_queues, CLIENT, false},
    [M_UPDATE_QUEUE] = {TY_M_UPDATE_QUEUE, ty__h_update_queue, CLIENT, false},
    [M_UPDATE_NODE] = {TY_M_UPDATE_NODE, ty__h_update_node, CLIENT, false},
    [M_UPDATE_JOB] = {TY_M_UPDATE_JOB, ty__h_update_job, CLIENT, false},
    [M_EXPLAIN_JOB] = {TY_M_EXPLAIN_JOB, ty__h_explain_job, CLIENT, false},
    [M_GET_SHARES] = {TY_M_GET_SHARES, ty__h_get_shares, CLIENT, false},
    /* Graph jobs (graph.c): ranks rendezvous with their job's token, workers
     * report progress. */
    [M_RDV_PUT] = {TY_M_RENDEZVOUS_PUT, ty__h_rendezvous_put, TOKEN, false},
    [M_RDV_GET] = {TY_M_RENDEZVOUS_GET, ty__h_rendezvous_get, TOKEN, false},
    [M_REPORT_PROGRESS] = {TY_M_REPORT_PROGRESS, ty__h_report_progress, WORKER, true},
    /* Accounting (history.c). */
    [M_GET_HISTORY] = {TY_M_GET_HISTORY, ty__h_get_history, CLIENT, false, true},
    [M_GET_NODE] = {TY_M_GET_NODE, ty__h_get_node, CLIENT, false, false, true},
    /* Plans a graph job as a submit would, without submitting it (graph.c). */
    [M_PLAN_JOB] = {TY_M_PLAN_JOB, ty__h_plan_job, CLIENT, false},
    /* The job pushed as it changes (watch.c). */
    [M_WATCH_JOB] = {TY_M_WATCH_JOB, ty__h_watch_job, CLIENT, false},
    /* The web console's per-user tokens (web_token.c). */
    [M_WEB_TOKEN] = {TY_M_WEB_TOKEN, ty__h_web_token, CLIENT, false},
    /* --config read again (reconfig.c; operators only, as SIGHUP). */
    [M_RECONFIGURE] = {TY_M_RECONFIGURE, ty__h_reconfigure, CLIENT, false},
    [M_ADMIN_EVENTS] = {TY_M_LIST_ADMIN_EVENTS, ty__h_list_admin_events, CLIENT, false},
};

static int method_of(const char *name) {
  int m = 0;
  while (m < M_COUNT && strcmp(methods[m].name, name) != 0)
    m++;
  return m;
}

/* A request waiting for the writes queued before it (after_writes). */
typedef struct after_writes {
  ty_reply *r;
  handler_fn fn;
  size_t n;
  uint8_t p[];
} after_writes;

static void on_writes_before_stored(int status, void *ud) {
  after_writes *w = ud;
  (void)status; /* a write that failed is retried (resync.c); memory says what happened */
  w->fn(w->r->ctl, w->r, w->p, w->n);
  free(w);
}

/* With writes in flight, runs fn once they are stored (an empty txn: the
 * committer answers in order) and says so (true). State comes from memory
 * and events from the store, whose rows a transition queues after memory
 * changed: read in between, `show` said COMPLETED with a history ending at
 * RUNNING, `node show` UP without its register event. */
static bool deferred_after_writes(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n,
                                  handler_fn fn) {
  if (!ctl->commit || ctl->stopping || ty_committer_inflight(ctl->commit) == 0) return false;
  after_writes *w = malloc(sizeof *w + n);
  if (!w) return false; /* answered at once */
  *w = (after_writes){.r = r, .fn = fn, .n = n};
  if (n) memcpy(w->p, p, n);
  ty_committer_submit(ctl->commit, ty_txn_create(), on_writes_before_stored, w);
  return true;
}

/* The request was admitted (auth.c): its credential verified, r->who set. */
static void run(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n, const uint8_t *cred,
                size_t cred_len) {
  int m = method_of(r->method);
  if (methods[m].needs_registration && !ty__node_by_conn(ctl, r->conn)) {
    ty__reply_finishf(r, TY_ESTATE, "%s before RegisterNode on this connection", methods[m].name);
    return;
  }
  if (methods[m].reads_store && !ty__gate_admit(ctl, r, p, n, methods[m].fn)) return;
  if (methods[m].after_writes && deferred_after_writes(ctl, r, p, n, methods[m].fn)) return;
  r->credential = cred;
  r->credential_len = cred_len;
  methods[m].fn(ctl, r, p, n);
  /* The credential was borrowed for the synchronous call only. */
}

/* A worker's method on a connection that is no registered node's: only
 * RegisterNode, and only as the connection's one request in flight (a
 * worker sends it alone and waits for its answer). Refused before the
 * credential is checked: worker methods are checked on the workers' own
 * credential thread, ahead of which any client could otherwise queue
 * thousands of checks (one munged round trip each, even for a replayed
 * credential) and hold back every node's heartbeat past --node-timeout-ms. */
static bool worker_call_refused(ty_controller *ctl, ty_reply *r, int m) {
  if (methods[m].who != WORKER || ty__node_by_conn(ctl, r->conn)) return false;
  if (methods[m].needs_registration) {
    ty__reply_finishf(r, TY_ESTATE, "%s before RegisterNode on this connection", methods[m].name);
    return true;
  }
  if (ty_rpc_inflight(r->conn) <= 1) return false;
  ty__reply_finishf(r, TY_ESTATE,
                    "%s while another request is in flight on this connection (a worker "
                    "sends RegisterNode alone and waits for its answer)",
                    methods[m].name);
  return true;
}

void ty__rpc_on_request(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud) {
  ty_controller *ctl = ud;
  int m = method_of(req->method);
  if (m == M_COUNT) {
    ty_reply *r = ty__reply_new(ctl, c, req, "unknown");
    ty__reply_finishf(r, TY_ENOTFOUND, "unknown method \"%.64s\"", req->method);
    return;
  }
  ty_reply *r = ty__reply_new(ctl, c, req, methods[m].name);
  if (req->version != TY_RPC_VERSION) {
    ty__reply_finishf(r, TY_EVERSION, "protocol version %u is not supported (this is %u)",
                      req->version, TY_RPC_VERSION);
    return;
  }
  if (ctl->stopping) {
    ty__reply_finish(r, TY_ECLOSED, "the controller is shutting down");
    return;
  }
  if (ty__local_refuses(r, methods[m].who)) return; /* a worker's method on the socket */
  if (worker_call_refused(ctl, r, m)) return;
  /* The caps and the decode first: bad input is answered at once, without
   * a trip to munged, and the admission queue copies only bounded requests. */
  char err[TY_ERR_LEN];
  if (ty__conv_check_request(methods[m].name, req->payload, req->payload_len, err, sizeof(err))) {
    ty__reply_finish(r, TY_EINVAL, err);
    return;
  }
  ty__auth_admit(ctl, r, methods[m].who, req, run);
}

void ty__rpc_on_close(ty_rpc_conn *c, int reason, void *ud) {
  ty_controller *ctl = ud;
  for (ty_reply *r = ctl->replies; r; r = r->next)
    if (r->conn == c) {
      r->conn = NULL;
      ty__auth_withdraw(r); /* its credential check, if still queued, is skipped */
    }
  ty__gate_conn_closed(ctl, c);
  ty_cluster_node *n = ty__node_by_conn(ctl, c);
  if (!n) return;
  /* The node goes DOWN only after --node-timeout-ms without a new session. */
  ty_warn("node %s: connection from %s closed (%s); DOWN in %u ms unless it returns", n->name,
          ty_rpc_peer(c), reason ? ty_strerror(reason) : "orderly", ctl->cfg.node_timeout_ms);
  n->conn = NULL;
  if (n->leaving) n->running_tasks = 0; /* a stopping worker exits once its tasks ended */
}
