/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_client: a blocking client for CLIs and tests. It owns a private
 * uv_loop_t and one ty_rpc_conn; every call runs that loop until its answer,
 * timeout or the connection's end. A caller that must wait on several
 * things at once (rlaunch: a streamed answer, worker connections, signals,
 * stdin) starts calls with ty_rpc_client_start and runs the client's loop
 * itself. Not thread-safe: one client per thread.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <stdlib.h>
#include <string.h>

struct ty_rpc_client {
  uv_loop_t loop;
  ty_rpc_conn *conn; /* NULL once the connection has ended */
  uint8_t *cred;
  size_t cred_len;
  uint64_t requests;  /* sent so far */
  ty_rpc_signer sign; /* makes each request's auth credential, or NULL */
  void *sign_ud;
};

typedef struct call_wait {
  bool done;
  int rc;
  ty_rpc_client *client;
  ty_rpc_result *out;
  uint64_t id;
  int (*on_item)(const uint8_t *p, size_t n, void *ud);
  void *item_ud;
  int item_rc;
} call_wait;

/* Runs the loop until *done; TY_EINTERNAL when it runs dry first. */
static int run_until(uv_loop_t *loop, const bool *done) {
  while (!*done) {
    if (uv_run(loop, UV_RUN_ONCE) == 0 && !*done) return TY_EINTERNAL;
  }
  return 0;
}

static void on_conn_closed(ty_rpc_conn *c, int reason, void *ud) {
  (void)reason;
  ty_rpc_client *client = ud;
  if (client->conn == c) client->conn = NULL; /* not a newer one (reopen) */
}

static void on_open(ty_rpc_conn *c, int status, void *ud) {
  call_wait *w = ud;
  w->client->conn = c;
  w->rc = status;
  w->done = true;
}

static void drain_loop(ty_rpc_client *c) {
  uv_run(&c->loop, UV_RUN_DEFAULT); /* returns once every handle is closed */
  uv_loop_close(&c->loop);
}

int ty_rpc_client_open(const char *host, int port, uint32_t timeout_ms,
                       ty_rpc_client **out_client) {
  ty_rpc_client *c = calloc(1, sizeof *c);
  if (!c) return TY_ENOMEM;
  int rc = uv_loop_init(&c->loop);
  if (rc < 0) {
    free(c);
    return rc;
  }
  ty_rpc_conn_opts opts = {.on_close = on_conn_closed, .ud = c};
  call_wait w = {.client = c};
  rc = ty_rpc_connect(&c->loop, host, port, &opts, timeout_ms, on_open, &w);
  if (rc == 0) rc = run_until(&c->loop, &w.done);
  if (rc == 0) rc = w.rc;
  if (rc < 0) {
    drain_loop(c);
    free(c);
    return rc;
  }
  *out_client = c;
  return 0;
}

int ty_rpc_client_reopen(ty_rpc_client *c, const char *host, int port, uint32_t timeout_ms) {
  if (!c || !host) return TY_EINVAL;
  if (c->conn) ty_rpc_close(c->conn); /* its calls end with TY_ECLOSED */
  c->conn = NULL;
  ty_rpc_conn_opts opts = {.on_close = on_conn_closed, .ud = c};
  call_wait w = {.client = c};
  int rc = ty_rpc_connect(&c->loop, host, port, &opts, timeout_ms, on_open, &w);
  if (rc == 0) rc = run_until(&c->loop, &w.done);
  return rc == 0 ? w.rc : rc;
}

void ty_rpc_client_close(ty_rpc_client *c) {
  if (!c) return;
  if (c->conn) ty_rpc_close(c->conn);
  drain_loop(c);
  free(c->cred);
  free(c);
}

void ty_rpc_client_set_credential(ty_rpc_client *c, const void *cred, size_t len) {
  if (!c) return;
  free(c->cred);
  c->cred = NULL;
  c->cred_len = 0;
  if (!cred || !len) return;
  c->cred = ty_xmalloc(len);
  memcpy(c->cred, cred, len);
  c->cred_len = len;
}

void ty_rpc_client_set_signer(ty_rpc_client *c, ty_rpc_signer sign, void *ud) {
  if (!c) return;
  c->sign = sign;
  c->sign_ud = ud;
}

static void on_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final, void *ud) {
  call_wait *w = ud;
  if (!final) {
    if (!w->on_item || w->item_rc) return;
    w->item_rc = w->on_item(msg->payload, msg->payload_len, w->item_ud);
    if (w->item_rc) ty_rpc_cancel(c, w->id); /* calls us again, final */
    return;
  }
  w->done = true;
  if (w->item_rc) {
    ty__rpc_result_fill(w->out, TY_ECLOSED, "cancelled by the caller", NULL, 0);
    w->rc = w->item_rc;
  } else if (msg) {
    ty__rpc_result_fill(w->out, msg->status, msg->message, msg->payload, msg->payload_len);
  } else {
    ty__rpc_result_fill(w->out, status, ty_strerror(status), NULL, 0);
    w->rc = status;
  }
}

/* The one place a request leaves the client, with its credential. */
static int send_call(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                     uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud, uint64_t *out_id) {
  if (!c || !method) return TY_EINVAL;
  int rc = c->conn ? 0 : TY_ECLOSED;
  ty_buf auth;
  ty_buf_init(&auth);
  if (rc == 0 && c->sign) rc = c->sign(c->sign_ud, method, payload, len, &auth);
  ty_rpc_creds creds = {.credential = c->cred,
                        .credential_len = c->cred_len,
                        .auth = auth.data,
                        .auth_len = auth.len};
  if (rc == 0)
    rc = ty_rpc_call_ex(c->conn, method, payload, len, &creds, timeout_ms, cb, ud, out_id);
  ty_buf_close(&auth);
  if (rc == 0) c->requests++;
  return rc;
}

static int run_call(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                    uint32_t timeout_ms, call_wait *w) {
  *w->out = (ty_rpc_result){0};
  int rc = send_call(c, method, payload, len, timeout_ms, on_answer, w, &w->id);
  if (rc == 0) rc = run_until(&c->loop, &w->done);
  if (rc == 0) return w->rc;
  ty__rpc_result_fill(w->out, rc, ty_strerror(rc), NULL, 0);
  return rc;
}

int ty_rpc_client_call(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                       uint32_t timeout_ms, ty_rpc_result *out) {
  call_wait w = {.client = c, .out = out};
  return run_call(c, method, payload, len, timeout_ms, &w);
}

int ty_rpc_client_stream(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                         uint32_t idle_timeout_ms,
                         int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                         ty_rpc_result *out) {
  call_wait w = {.client = c, .out = out, .on_item = on_item, .item_ud = ud};
  return run_call(c, method, payload, len, idle_timeout_ms, &w);
}

uv_loop_t *ty_rpc_client_loop(ty_rpc_client *c) {
  return c ? &c->loop : NULL;
}

int ty_rpc_client_start(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                        uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud,
                        uint64_t *out_request_id) {
  if (!cb) return TY_EINVAL;
  return send_call(c, method, payload, len, timeout_ms, cb, ud, out_request_id);
}

int ty_rpc_client_cancel(ty_rpc_client *c, uint64_t request_id) {
  if (!c) return TY_EINVAL;
  return c->conn ? ty_rpc_cancel(c->conn, request_id) : TY_ECLOSED;
}

uint64_t ty_rpc_client_requests(const ty_rpc_client *c) {
  return c ? c->requests : 0;
}
