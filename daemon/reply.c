/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Answers to RPC requests: a ty_reply is created for every request (rpc.c)
 * and finished by its handler, at once or after its commit.
 * ty__reply_finish answers it, counts it in trainyard_rpc_requests_total /
 * trainyard_rpc_duration_seconds and logs refusals with the method, the
 * peer and the reason. Outstanding replies are kept in a list so a closing
 * connection can detach them (their answer is then dropped).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

static void unlink_reply(ty_controller *ctl, ty_reply *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    ctl->replies = r->next;
  if (r->next) r->next->prev = r->prev;
}

/* A refusal's line, at most TY_RATELOG_BURST per peer address per 10 s (a
 * peer sending requests without a credential once wrote 10 MB/s of them);
 * every refusal is still counted in trainyard_rpc_requests_total. */
static void log_refusal(ty_controller *ctl, const ty_reply *r, int status, const char *message) {
  const char *peer = r->sink ? "the web console" : r->conn ? ty_rpc_peer(r->conn) : "(gone)";
  char addr[64];
  snprintf(addr, sizeof addr, "%s", peer);
  char *colon = strrchr(addr, ':');
  if (colon && r->conn) *colon = '\0'; /* the address, not the connection's port */
  uint32_t dropped = 0;
  if (!ty_ratelog_admit(&ctl->refusal_log, addr, ty_mono_ms(), &dropped)) return;
  char more[128] = "";
  if (dropped)
    snprintf(more, sizeof more, " [%" PRIu32 " more refusals from %s not logged]", dropped, addr);
  ty_warn("refused %s from %s%s%s%s: %s (%s)%s", r->method, peer, r->who.user[0] ? " (" : "",
          r->who.user, r->who.user[0] ? ")" : "",
          message && message[0] ? message : ty_strerror(status), ty_error_label(status), more);
}

void ty__reply_finish(ty_reply *r, int status, const char *message) {
  ty_controller *ctl = r->ctl;
  if (status != 0) log_refusal(ctl, r, status, message);
  if (status == TY_EPERM && !r->refusal_counted)
    ty__auth_count(ctl, r->method, r->refusal ? r->refusal : "denied");
  if (r->sink) {
    r->sink(r, status, message);
  } else if (r->conn) {
    int rc = ty_rpc_reply(r->conn, r->request_id, status, message, status == 0 ? r->out.data : NULL,
                          status == 0 ? r->out.len : 0);
    if (rc == TY_ETOOBIG) { /* the caller was answered that instead (lib/rpc) */
      ty_warn("refused %s from %s: its answer of %zu bytes is over the frame limit (--max-frame)",
              r->method, ty_rpc_peer(r->conn), r->out.len);
      status = rc;
    } else if (rc != 0) {
      ty_debug("reply to %s failed: %s", r->method, ty_strerror(rc));
    }
  }
  const char *labels[] = {r->method, ty_error_label(status)};
  ty_metric_inc(ctl->m.rpc_total, labels, 1);
  ty_metric_observe(ctl->m.rpc_seconds, labels, (double)(uv_hrtime() - r->t0_ns) / 1e9);
  if (r->gated) ty__gate_leave(ctl, r);
  unlink_reply(ctl, r);
  ty_buf_close(&r->out);
  free(r);
}

void ty__reply_streaming(ty_reply *r) {
  ty_controller *ctl = r->ctl;
  const char *labels[] = {r->method, ty_error_label(0)};
  ty_metric_inc(ctl->m.rpc_total, labels, 1);
  ty_metric_observe(ctl->m.rpc_seconds, labels, (double)(uv_hrtime() - r->t0_ns) / 1e9);
  if (r->gated) ty__gate_leave(ctl, r);
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

void ty__reply_not_stored(ty_reply *r, int status, const char *what, const char *then) {
  if (status == TY_ECLOSED) {
    ty__reply_finishf(r, TY_ECLOSED, "%s: the controller is stopping; %s", what, then);
    return;
  }
  char why[256] = "";
  if (r->ctl->commit) ty_committer_last_error(r->ctl->commit, why, sizeof why);
  ty__reply_finishf(r, TY_ESTORE, "%s: the controller's store failed (%s); %s", what,
                    why[0] ? why : "see its log", then);
}

void ty__reply_bad_payload(ty_reply *r, int rc, const char *what) {
  if (rc == TY_ENOMEM)
    ty__reply_finishf(r, rc, "out of memory decoding %s", what);
  else
    ty__reply_finishf(r, TY_EPROTO, "payload is not %s", what);
}

ty_reply *ty__reply_new(ty_controller *ctl, ty_rpc_conn *c, const ty_rpc_msg *req,
                        const char *method) {
  ty_reply *r = ty_xcalloc(1, sizeof(*r));
  r->ctl = ctl;
  r->conn = c;
  r->request_id = req->request_id;
  r->method = method;
  r->t0_ns = uv_hrtime();
  ty_buf_init(&r->out);
  r->next = ctl->replies;
  if (r->next) r->next->prev = r;
  ctl->replies = r;
  return r;
}

ty_reply *ty__reply_local(ty_controller *ctl, const char *method, const ty_auth_id *who,
                          void (*sink)(ty_reply *r, int status, const char *message), void *ud) {
  ty_rpc_msg req = {0};
  ty_reply *r = ty__reply_new(ctl, NULL, &req, method);
  r->who = *who;
  r->operator= ty_policy_is_operator(&ctl->policy, who, ctl->self.uid);
  r->sink = sink;
  r->sink_ud = ud;
  return r;
}
