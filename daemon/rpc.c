/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RPC dispatch for traind: one handler per method in a designated-initializer
 * table. Every request becomes a ty_reply that the handler finishes, at once
 * or after its commit; ty__reply_finish answers it, counts it in
 * trainyard_rpc_requests_total / trainyard_rpc_duration_seconds and logs
 * refusals with the method, the peer and the reason.
 *
 * Worker methods (Heartbeat, TaskUpdate) are refused with TY_ESTATE on a
 * connection that has not sent RegisterNode first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"
#include "daemon/graph.h"
#include "proto/methods.h"

typedef void (*handler_fn)(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

typedef enum {
  M_SUBMIT, M_LIST_JOBS, M_GET_JOB, M_CANCEL, M_LIST_NODES, M_LOCATIONS, M_REGISTER,
  M_HEARTBEAT, M_TASK_UPDATE,
  M_LIST_QUEUES, M_UPDATE_QUEUE, M_UPDATE_NODE, M_UPDATE_JOB, M_EXPLAIN_JOB, M_GET_SHARES,
  M_RDV_PUT, M_RDV_GET, M_REPORT_PROGRESS,
  M_COUNT
} method_id;

static const struct {
  const char *name;
  handler_fn fn;
  bool needs_registration;
} methods[M_COUNT] = {
    [M_SUBMIT] = {TY_M_SUBMIT_JOB, ty__h_submit, false},
    [M_LIST_JOBS] = {TY_M_LIST_JOBS, ty__h_list_jobs, false},
    [M_GET_JOB] = {TY_M_GET_JOB, ty__h_get_job, false},
    [M_CANCEL] = {TY_M_CANCEL_JOB, ty__h_cancel, false},
    [M_LIST_NODES] = {TY_M_LIST_NODES, ty__h_list_nodes, false},
    [M_LOCATIONS] = {TY_M_GET_TASK_LOCATIONS, ty__h_task_locations, false},
    [M_REGISTER] = {TY_M_REGISTER_NODE, ty__h_register, false},
    [M_HEARTBEAT] = {TY_M_HEARTBEAT, ty__h_heartbeat, true},
    [M_TASK_UPDATE] = {TY_M_TASK_UPDATE, ty__h_task_update, true},
    /* The scheduler's operations (admin.c). */
    [M_LIST_QUEUES] = {TY_M_LIST_QUEUES, ty__h_list_queues, false},
    [M_UPDATE_QUEUE] = {TY_M_UPDATE_QUEUE, ty__h_update_queue, false},
    [M_UPDATE_NODE] = {TY_M_UPDATE_NODE, ty__h_update_node, false},
    [M_UPDATE_JOB] = {TY_M_UPDATE_JOB, ty__h_update_job, false},
    [M_EXPLAIN_JOB] = {TY_M_EXPLAIN_JOB, ty__h_explain_job, false},
    [M_GET_SHARES] = {TY_M_GET_SHARES, ty__h_get_shares, false},
    /* Graph jobs (graph.c): ranks rendezvous, workers report progress. */
    [M_RDV_PUT] = {TY_M_RENDEZVOUS_PUT, ty__h_rendezvous_put, false},
    [M_RDV_GET] = {TY_M_RENDEZVOUS_GET, ty__h_rendezvous_get, false},
    [M_REPORT_PROGRESS] = {TY_M_REPORT_PROGRESS, ty__h_report_progress, true},
};

static void unlink_reply(ty_controller *ctl, ty_reply *r) {
  if (r->prev) r->prev->next = r->next;
  else ctl->replies = r->next;
  if (r->next) r->next->prev = r->prev;
}

void ty__reply_finish(ty_reply *r, int status, const char *message) {
  ty_controller *ctl = r->ctl;
  if (status != 0)
    ty_warn("refused %s from %s: %s (%s)", r->method, r->conn ? ty_rpc_peer(r->conn) : "(gone)",
            message && message[0] ? message : ty_strerror(status), ty_error_label(status));
  if (r->conn) {
    int rc = ty_rpc_reply(r->conn, r->request_id, status, message, status == 0 ? r->out.data : NULL,
                          status == 0 ? r->out.len : 0);
    if (rc != 0) ty_debug("reply to %s failed: %s", r->method, ty_strerror(rc));
  }
  const char *labels[] = {r->method, ty_error_label(status)};
  ty_metric_inc(ctl->m.rpc_total, labels, 1);
  ty_metric_observe(ctl->m.rpc_seconds, labels, (double)(uv_hrtime() - r->t0_ns) / 1e9);
  unlink_reply(ctl, r);
  ty_buf_close(&r->out);
  free(r);
}

void ty__reply_finishf(ty_reply *r, int status, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(msg, sizeof(msg), status, fmt, ap);
  va_end(ap);
  ty__reply_finish(r, status, msg);
}

void ty__reply_bad_payload(ty_reply *r, int rc, const char *what) {
  if (rc == TY_ENOMEM) ty__reply_finishf(r, rc, "out of memory decoding %s", what);
  else ty__reply_finishf(r, TY_EPROTO, "payload is not %s", what);
}

static ty_reply *reply_new(ty_controller *ctl, ty_rpc_conn *c, const ty_rpc_msg *req,
                           const char *method) {
  ty_reply *r = ty_xcalloc(1, sizeof(*r));
  r->ctl = ctl;
  r->conn = c;
  r->request_id = req->request_id;
  r->method = method;
  r->t0_ns = uv_hrtime();
  r->credential = req->credential;
  r->credential_len = req->credential_len;
  ty_buf_init(&r->out);
  r->next = ctl->replies;
  if (r->next) r->next->prev = r;
  ctl->replies = r;
  return r;
}

void ty__rpc_on_request(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud) {
  ty_controller *ctl = ud;
  int m = 0;
  while (m < M_COUNT && strcmp(methods[m].name, req->method) != 0) m++;
  if (m == M_COUNT) {
    ty_reply *r = reply_new(ctl, c, req, "unknown");
    ty__reply_finishf(r, TY_ENOTFOUND, "unknown method \"%.64s\"", req->method);
    return;
  }
  ty_reply *r = reply_new(ctl, c, req, methods[m].name);
  if (req->version != TY_RPC_VERSION) {
    ty__reply_finishf(r, TY_EVERSION, "protocol version %u is not supported (this is %u)",
                      req->version, TY_RPC_VERSION);
    return;
  }
  if (ctl->stopping) {
    ty__reply_finish(r, TY_ECLOSED, "the controller is shutting down");
    return;
  }
  if (methods[m].needs_registration && !ty__node_by_conn(ctl, c)) {
    ty__reply_finishf(r, TY_ESTATE, "%s before RegisterNode on this connection",
                      methods[m].name);
    return;
  }
  methods[m].fn(ctl, r, req->payload, req->payload_len);
}

void ty__rpc_on_close(ty_rpc_conn *c, int reason, void *ud) {
  ty_controller *ctl = ud;
  for (ty_reply *r = ctl->replies; r; r = r->next)
    if (r->conn == c) r->conn = NULL;
  ty_cluster_node *n = ty__node_by_conn(ctl, c);
  if (!n) return;
  /* The node goes DOWN only after --node-timeout-ms without a new session. */
  ty_warn("node %s: connection from %s closed (%s); DOWN in %u ms unless it returns", n->name,
          ty_rpc_peer(c), reason ? ty_strerror(reason) : "orderly", ctl->cfg.node_timeout_ms);
  n->conn = NULL;
}
