/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_conn: one TCP stream carrying frames both ways. Reads go straight
 * into the frame reader's buffer (no copy), each frame is decoded and
 * dispatched: REQUESTs to on_request, answers to the call that asked.
 *
 * Invariants:
 *   - Everything runs on the loop thread; callbacks may call back into the
 *     conn (reply, call, cancel, close) from anywhere, so the dispatch loop
 *     re-checks the state after every callback and never touches a call after
 *     handing it its final answer.
 *   - Each call (our request) is in `calls` until its final answer, its
 *     timeout, its cancel or the close, whichever comes first; exactly one of
 *     those invokes its callback with final=true. Answers arriving later are
 *     ignored.
 *   - Each peer request is in `inbound` from its arrival until we reply or
 *     end its stream; a CANCEL marks it cancelled and tells its cancel
 *     callback, after which sends for it fail with TY_ECLOSED.
 *   - The conn is freed only from the last close callback of its handles.
 *   - Flow control: reading is on exactly while the conn is open, fewer than
 *     max_inflight peer requests are unanswered and the write queue is not
 *     pressured (ty_rpc_limits). Frames already buffered when reading stops
 *     wait in the frame reader and are dispatched first when it resumes.
 *   - A peer that half-closes (EOF after whole frames) still gets the answers
 *     to its requests in flight; the conn closes when the last one is
 *     queued, ending its open streams (it can no longer cancel them).
 *   - Fairness: at most FRAMES_PER_TURN frames are dispatched per turn.
 *     A conn with whole frames left yields: it stops reading and joins its
 *     server's backlog, which serves backlogged conns round-robin within a
 *     budget per loop iteration (server.c), or, without a server, its kick
 *     timer. So peers pipelining thousands of requests each cost the loop
 *     a bounded amount per iteration, and a new request is served in the
 *     next poll, not after everyone's backlog.
 *
 * Tuned for many small request/response pairs (heartbeats) interleaved with
 * long streams (log following), hence TCP_NODELAY and write accounting.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  /* Small enough that a peer pipelining tiny requests pins little while it
   * waits for its turn; a large frame in progress grows the buffer anyway. */
  READ_CHUNK = 16 * 1024,
  DEFAULT_HIGH_WATER = 1024 * 1024,
  /* Frames dispatched per turn before other connections get theirs: one
   * read can hold thousands of pipelined requests. */
  FRAMES_PER_TURN = 16,
  /* How long an orderly close waits for the peer to take our last bytes. */
  CLOSE_LINGER_MS = 5000,
};

typedef struct call {
  ty_id_node node;  /* id = request id */
  uv_timer_t timer; /* only when timeout_ms > 0 */
  ty_rpc_conn *conn;
  ty_rpc_answer_cb cb;
  void *ud;
  uint32_t timeout_ms;
} call;

typedef struct inbound {
  ty_id_node node;
  bool cancelled;
  bool streaming; /* sent a STREAM frame: counted in conn->streaming */
  ty_rpc_cancel_cb cancel_cb;
  void *cancel_ud;
} inbound;

typedef struct wreq {
  uv_write_t req;
  ty_rpc_conn *conn;
  size_t len;
} wreq;

/* The frame follows the wreq in the same block, suitably aligned. */
#define WREQ_PREFIX ((sizeof(wreq) + 15u) & ~(size_t)15u)

/* ---- lifecycle ------------------------------------------------------------ */

int ty__conn_create(uv_loop_t *loop, const ty_rpc_conn_opts *opts, bool local,
                    ty_rpc_conn **out_conn) {
  ty_rpc_conn *c = calloc(1, sizeof *c);
  if (!c) return TY_ENOMEM;
  if (opts) c->opts = *opts;
  if (!c->opts.max_frame) c->opts.max_frame = TY_RPC_MAX_FRAME_DEFAULT;
  if (!c->opts.write_high_water) c->opts.write_high_water = DEFAULT_HIGH_WATER;
  ty_rpc_limits *l = &c->opts.limits;
  if (!l->max_inflight) l->max_inflight = TY_RPC_MAX_INFLIGHT_DEFAULT;
  if (!l->handshake_ms) l->handshake_ms = TY_RPC_HANDSHAKE_MS_DEFAULT;
  if (!l->idle_ms) l->idle_ms = TY_RPC_IDLE_MS_DEFAULT;
  c->loop = loop;
  c->next_id = 1;
  c->state = TY__CONN_CONNECTING;
  ty_frame_reader_init(&c->rd, c->opts.max_frame);
  c->local = local;
  int rc = local ? uv_pipe_init(loop, &c->pipe, 0) : uv_tcp_init(loop, &c->tcp);
  if (rc < 0) {
    ty_frame_reader_close(&c->rd);
    free(c);
    return rc;
  }
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->kick);
  c->open_handles = 3;
  snprintf(c->peer, sizeof c->peer, "(unconnected)");
  *out_conn = c;
  return 0;
}

void ty__conn_maybe_free(ty_rpc_conn *c) {
  if (c->open_handles > 0 || c->gai_pending) return;
  if (c->delivered && c->opts.on_close) c->opts.on_close(c, c->close_reason, c->opts.ud);
  if (c->server) ty__server_forget(c->server, c);
  if (c->counted) c->opts.limits.stats->open--;
  for (ty_id_node *n; (n = ty_idmap_pop(&c->inbound));)
    free(n);
  ty_idmap_close(&c->inbound);
  ty_idmap_close(&c->calls);
  ty_frame_reader_close(&c->rd);
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  ty_rpc_conn *c = h->data;
  c->open_handles--;
  ty__conn_maybe_free(c);
}

static void close_handles(ty_rpc_conn *c) {
  if (c->handles_closing) return;
  c->handles_closing = true;
  c->tcp.data = c->timer.data = c->kick.data = c;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  close_handles(container_of(req, ty_rpc_conn, shutdown_req));
}

static void on_linger_expired(uv_timer_t *t) {
  close_handles(container_of(t, ty_rpc_conn, timer));
}

static void free_call(uv_handle_t *h) {
  free(container_of((uv_timer_t *)h, call, timer));
}

/* Releases a call already removed from `calls`. */
static void release_call(call *k) {
  if (k->timeout_ms) {
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, free_call);
  } else {
    free(k);
  }
}

/* Answers every outstanding call with TY_ECLOSED. Callbacks may cancel other
 * calls meanwhile, so pop one at a time instead of iterating. */
static void fail_calls(ty_rpc_conn *c) {
  for (ty_id_node *n; (n = ty_idmap_pop(&c->calls));) {
    call *k = container_of(n, call, node);
    k->cb(c, TY_ECLOSED, NULL, true, k->ud);
    release_call(k);
  }
}

/* Tells producers of still-open peer requests that nobody will read on. */
static void cancel_inbound(ty_rpc_conn *c) {
  c->streaming = 0;
  for (ty_id_node *n; (n = ty_idmap_pop(&c->inbound));) {
    inbound *in = container_of(n, inbound, node);
    if (!in->cancelled && in->cancel_cb) in->cancel_cb(c, n->id, in->cancel_ud);
    free(in);
  }
}

void ty__conn_begin_close(ty_rpc_conn *c, int reason, bool graceful) {
  if (c->state == TY__CONN_CLOSING) return;
  bool was_open = c->state == TY__CONN_OPEN;
  c->state = TY__CONN_CLOSING;
  c->close_reason = reason;
  if (was_open) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  uv_timer_stop(&c->kick);
  fail_calls(c);
  cancel_inbound(c);
  if (graceful && was_open &&
      uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
    uv_timer_start(&c->timer, on_linger_expired, CLOSE_LINGER_MS, 0);
    return;
  }
  close_handles(c);
}

void ty_rpc_close(ty_rpc_conn *c) {
  if (c) ty__conn_begin_close(c, 0, true);
}

/* A protocol violation: one log line, then close only this connection. */
static void protocol_error(ty_rpc_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void protocol_error(ty_rpc_conn *c, int code, const char *fmt, ...) {
  char reason[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(reason, sizeof reason, code, fmt, ap);
  va_end(ap);
  ty_warn("closing connection from %s: %s", c->peer, reason);
  if (c->counted) c->opts.limits.stats->closed_protocol++;
  ty__conn_begin_close(c, code, false);
}

/* ---- flow control ----------------------------------------------------------- */

static int dispatch_frames(ty_rpc_conn *c, int budget);
static void on_kick(uv_timer_t *t);
static void update_reading(ty_rpc_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* A half-closed peer's requests are all answered (its open streams, which
 * it can no longer cancel, end with the close). */
static bool eof_answered(const ty_rpc_conn *c) {
  return c->peer_eof && c->inbound.count == c->streaming;
}

/* Open streams are not in flight: 130 watches on one conn must not stop it
 * reading their CANCELs and its close (the streams would outlive it). */
static bool may_read(const ty_rpc_conn *c) {
  return c->state == TY__CONN_OPEN && !c->peer_eof && !c->pressured &&
         c->inbound.count - c->streaming < c->opts.limits.max_inflight &&
         c->streaming < TY_RPC_MAX_STREAMS &&
         !(c->server && c->held >= ty__server_share(c->server));
}

static void start_reading(ty_rpc_conn *c) {
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0) {
    ty_info("closing connection from %s: cannot read: %s", c->peer, ty_strerror(rc));
    ty__conn_begin_close(c, rc, false);
    return;
  }
  c->reading = true;
}

/* Stops reading until the frames buffered are served (its turn comes
 * again from the server's backlog or the kick timer). */
static void yield(ty_rpc_conn *c) {
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  if (c->server)
    ty__server_backlog(c->server, c);
  else
    uv_timer_start(&c->kick, on_kick, 0, 0);
}

void ty__conn_update_reading(ty_rpc_conn *c) {
  update_reading(c);
}

int ty__conn_serve(ty_rpc_conn *c) {
  int n = dispatch_frames(c, FRAMES_PER_TURN);
  if (c->state != TY__CONN_OPEN) return n;
  if (c->peer_eof) {
    if (eof_answered(c)) ty__conn_begin_close(c, UV_EOF, true);
  } else if (!may_read(c)) {
    update_reading(c); /* a limit holds it; resuming kicks it */
  } else if (ty_frame_reader_has_frame(&c->rd)) {
    yield(c);
  } else {
    ty_frame_reader_trim(&c->rd);
    if (!c->reading) start_reading(c);
  }
  return n;
}

/* Serves what arrived while reading was stopped. Runs from the loop, so a
 * reply that frees room never re-enters the request callback that sent it. */
static void on_kick(uv_timer_t *t) {
  ty__conn_serve(container_of(t, ty_rpc_conn, kick));
}

/* Brings reading in line with the limits: stops at once, resumes from the
 * loop (on_kick). */
static void update_reading(ty_rpc_conn *c) {
  if (c->state != TY__CONN_OPEN) return;
  if (!may_read(c)) {
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  } else if (!c->reading && !uv_is_active((uv_handle_t *)&c->kick)) {
    uv_timer_start(&c->kick, on_kick, 0, 0);
  }
}

/* ---- writing ---------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  wreq *w = container_of(req, wreq, req);
  ty_rpc_conn *c = w->conn;
  c->queued -= w->len;
  c->held -= WREQ_PREFIX + w->len;
  if (c->server) ty__server_queued(c->server, WREQ_PREFIX + w->len, false);
  free(w);
  if (status == 0) c->last_progress = uv_now(c->loop);
  if (status < 0 && status != UV_ECANCELED && c->state == TY__CONN_OPEN) {
    ty_info("closing connection from %s: write failed: %s", c->peer, ty_strerror(status));
    ty__conn_begin_close(c, status, false);
    return;
  }
  if (c->pressured && c->queued < c->opts.write_high_water / 2) {
    c->pressured = false;
    if (c->drain_cb && c->state == TY__CONN_OPEN) c->drain_cb(c, c->drain_ud);
    update_reading(c);
  } else if (!c->reading) {
    update_reading(c); /* it may have held more than its share of the server's budget */
  }
}

/* Encodes and queues one frame, without touching the request tables. */
static int send_msg(ty_rpc_conn *c, const ty_rpc_msg *m) {
  if (c->state != TY__CONN_OPEN) return TY_ECLOSED;
  uint8_t *block;
  size_t len;
  int rc = ty__rpc_encode_prefixed(m, WREQ_PREFIX, &block, &len);
  if (rc < 0) return rc;
  if (len - TY_RPC_FRAME_HEADER > c->opts.max_frame || len > UINT_MAX) {
    free(block);
    return TY_ETOOBIG;
  }
  wreq *w = (wreq *)block;
  w->conn = c;
  w->len = len;
  uv_buf_t buf = uv_buf_init((char *)block + WREQ_PREFIX, (unsigned)len);
  rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(block);
    return rc;
  }
  c->queued += len;
  c->held += WREQ_PREFIX + len;
  if (c->server) ty__server_queued(c->server, WREQ_PREFIX + len, true);
  if (c->queued >= c->opts.write_high_water && !c->pressured) {
    c->pressured = true;
    update_reading(c);
  }
  return 0;
}

static int send_answer(ty_rpc_conn *c, ty_rpc_kind kind, uint64_t id, int status,
                       const char *message, const void *payload, size_t len) {
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = id,
                  .kind = kind,
                  .status = status,
                  .message = message,
                  .payload = payload,
                  .payload_len = len};
  return send_msg(c, &m);
}

/* ---- calls we make ------------------------------------------------------------ */

static void on_call_timeout(uv_timer_t *t) {
  call *k = container_of(t, call, timer);
  ty_rpc_conn *c = k->conn;
  ty_idmap_del(&c->calls, k->node.id);
  /* Tell a streaming peer to stop; late answers are ignored either way. */
  send_answer(c, TY_RPC_CANCEL, k->node.id, 0, NULL, NULL, 0);
  k->cb(c, TY_ETIMEDOUT, NULL, true, k->ud);
  release_call(k);
}

int ty_rpc_call(ty_rpc_conn *c, const char *method, const void *payload, size_t len,
                const void *credential, size_t credential_len, uint32_t timeout_ms,
                ty_rpc_answer_cb cb, void *ud, uint64_t *out_request_id) {
  ty_rpc_creds creds = {.credential = credential, .credential_len = credential_len};
  return ty_rpc_call_ex(c, method, payload, len, &creds, timeout_ms, cb, ud, out_request_id);
}

int ty_rpc_call_ex(ty_rpc_conn *c, const char *method, const void *payload, size_t len,
                   const ty_rpc_creds *creds, uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud,
                   uint64_t *out_request_id) {
  static const ty_rpc_creds none = {0};
  if (!creds) creds = &none;
  if (!c || !method || !method[0] || !cb) return TY_EINVAL;
  if (c->state != TY__CONN_OPEN || c->peer_eof) return TY_ECLOSED; /* no answer could come */
  call *k = calloc(1, sizeof *k);
  if (!k) return TY_ENOMEM;
  *k = (call){.node.id = c->next_id++, .conn = c, .cb = cb, .ud = ud, .timeout_ms = timeout_ms};
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = k->node.id,
                  .kind = TY_RPC_REQUEST,
                  .method = method,
                  .credential = creds->credential,
                  .credential_len = creds->credential_len,
                  .payload = payload,
                  .payload_len = len,
                  .auth = creds->auth,
                  .auth_len = creds->auth_len};
  int rc = send_msg(c, &m);
  if (rc == 0) rc = ty_idmap_put(&c->calls, &k->node);
  if (rc < 0) {
    /* A frame already queued for a call we could not record is answered
     * by nobody: its answer is ignored like a late one. */
    free(k);
    return rc;
  }
  if (timeout_ms) {
    uv_timer_init(c->loop, &k->timer);
    uv_timer_start(&k->timer, on_call_timeout, timeout_ms, 0);
  }
  if (out_request_id) *out_request_id = k->node.id;
  return 0;
}

int ty_rpc_cancel(ty_rpc_conn *c, uint64_t request_id) {
  if (!c) return TY_EINVAL;
  ty_id_node *n = ty_idmap_del(&c->calls, request_id);
  if (!n) return TY_ENOTFOUND;
  call *k = container_of(n, call, node);
  send_answer(c, TY_RPC_CANCEL, request_id, 0, NULL, NULL, 0);
  k->cb(c, TY_ECLOSED, NULL, true, k->ud);
  release_call(k);
  return 0;
}

/* The server refused the connection (TY_RPC_REFUSAL_ID): every call
 * waiting on it gets the refusal as its answer, then it closes. */
static void refused(ty_rpc_conn *c, const ty_rpc_msg *m) {
  ty_debug("%s refused the connection: %s", c->peer, m->message ? m->message : "");
  for (ty_id_node *n; (n = ty_idmap_pop(&c->calls));) {
    call *k = container_of(n, call, node);
    if (k->timeout_ms) uv_timer_stop(&k->timer);
    k->cb(c, m->status, m, true, k->ud);
    release_call(k);
  }
  ty__conn_begin_close(c, m->status, false);
}

/* RESPONSE or END: the final answer. */
static void finish_call(ty_rpc_conn *c, const ty_rpc_msg *m) {
  if (m->request_id == TY_RPC_REFUSAL_ID && m->kind == TY_RPC_RESPONSE && !c->accepted) {
    refused(c, m);
    return;
  }
  ty_id_node *n = ty_idmap_del(&c->calls, m->request_id);
  if (!n) {
    ty_debug("%s: ignoring a late answer to request %" PRIu64, c->peer, m->request_id);
    return;
  }
  call *k = container_of(n, call, node);
  if (k->timeout_ms) uv_timer_stop(&k->timer);
  k->cb(c, m->status, m, true, k->ud);
  release_call(k);
}

static void stream_item(ty_rpc_conn *c, const ty_rpc_msg *m) {
  ty_id_node *n = ty_idmap_get(&c->calls, m->request_id);
  if (!n) return; /* after a timeout or cancel, until the peer stops */
  call *k = container_of(n, call, node);
  /* For streams the timeout bounds the silence between frames. */
  if (k->timeout_ms) uv_timer_start(&k->timer, on_call_timeout, k->timeout_ms, 0);
  k->cb(c, 0, m, false, k->ud); /* may cancel k: do not touch it after */
}

/* ---- requests the peer makes -------------------------------------------------- */

static void on_request_frame(ty_rpc_conn *c, const ty_rpc_msg *m) {
  if (m->version != TY_RPC_VERSION) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "protocol version %u is not supported; this side speaks %u",
             m->version, TY_RPC_VERSION);
    ty_info("%s: refused %s: %s", c->peer, m->method, msg);
    send_answer(c, TY_RPC_RESPONSE, m->request_id, TY_EVERSION, msg, NULL, 0);
    return;
  }
  inbound *in = calloc(1, sizeof *in);
  if (!in) {
    send_answer(c, TY_RPC_RESPONSE, m->request_id, TY_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  in->node.id = m->request_id;
  if (ty_idmap_put(&c->inbound, &in->node) < 0) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "request_id %" PRIu64 " is already in use", m->request_id);
    free(in);
    send_answer(c, TY_RPC_RESPONSE, m->request_id, TY_EINVAL, msg, NULL, 0);
    return;
  }
  if (c->opts.on_request) {
    c->opts.on_request(c, m, c->opts.ud);
  } else {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "no handler for method %.100s", m->method);
    ty_rpc_reply(c, m->request_id, TY_ENOTFOUND, msg, NULL, 0);
  }
}

static void on_cancel_frame(ty_rpc_conn *c, const ty_rpc_msg *m) {
  ty_id_node *n = ty_idmap_get(&c->inbound, m->request_id);
  if (!n) return; /* already answered: the CANCEL crossed our last frame */
  inbound *in = container_of(n, inbound, node);
  if (in->cancelled) return;
  in->cancelled = true;
  if (in->cancel_cb) in->cancel_cb(c, m->request_id, in->cancel_ud);
}

/* Finds the open peer request `id`; `take` also removes it. */
static int lookup_inbound(ty_rpc_conn *c, uint64_t id, bool take) {
  if (!c) return TY_EINVAL;
  if (c->state != TY__CONN_OPEN) return TY_ECLOSED;
  ty_id_node *n = take ? ty_idmap_del(&c->inbound, id) : ty_idmap_get(&c->inbound, id);
  if (!n) return TY_ENOTFOUND;
  inbound *in = container_of(n, inbound, node);
  bool cancelled = in->cancelled;
  if (take) {
    c->streaming -= in->streaming;
    free(in);
    update_reading(c);
    /* The last answer a half-closed peer waited for: close once it is queued. */
    if (eof_answered(c)) uv_timer_start(&c->kick, on_kick, 0, 0);
  }
  return cancelled ? TY_ECLOSED : 0;
}

int ty_rpc_reply(ty_rpc_conn *c, uint64_t request_id, int status, const char *message,
                 const void *payload, size_t len) {
  int rc = lookup_inbound(c, request_id, true);
  if (rc < 0) return rc;
  rc = send_answer(c, TY_RPC_RESPONSE, request_id, status, message, payload, len);
  if (rc == TY_ETOOBIG) {
    /* Nothing went out: without an answer the caller would wait for its
     * timeout and see "did not answer". It learns why instead. */
    char why[200];
    snprintf(why, sizeof why,
             "the answer is %zu bytes, more than the largest frame (%zu bytes): ask for less "
             "(a filter, a limit)",
             len, c->opts.max_frame);
    (void)send_answer(c, TY_RPC_RESPONSE, request_id, TY_ETOOBIG, why, NULL, 0);
  }
  return rc;
}

int ty_rpc_stream_send(ty_rpc_conn *c, uint64_t request_id, const void *payload, size_t len) {
  int rc = lookup_inbound(c, request_id, false);
  if (rc < 0) return rc;
  inbound *in = container_of(ty_idmap_get(&c->inbound, request_id), inbound, node);
  if (!in->streaming) { /* answered: no longer in flight */
    in->streaming = true;
    c->streaming++;
    update_reading(c);
    if (eof_answered(c)) uv_timer_start(&c->kick, on_kick, 0, 0); /* after this frame */
  }
  return send_answer(c, TY_RPC_STREAM, request_id, 0, NULL, payload, len);
}

int ty_rpc_stream_end(ty_rpc_conn *c, uint64_t request_id, int status, const char *message) {
  int rc = lookup_inbound(c, request_id, true);
  if (rc < 0) return rc;
  return send_answer(c, TY_RPC_END, request_id, status, message, NULL, 0);
}

int ty_rpc_set_cancel_cb(ty_rpc_conn *c, uint64_t request_id, ty_rpc_cancel_cb cb, void *ud) {
  if (!c) return TY_EINVAL;
  ty_id_node *n = ty_idmap_get(&c->inbound, request_id);
  if (!n) return TY_ENOTFOUND;
  inbound *in = container_of(n, inbound, node);
  in->cancel_cb = cb;
  in->cancel_ud = ud;
  return in->cancelled ? TY_ECLOSED : 0;
}

/* ---- reading ------------------------------------------------------------------ */

static void dispatch(ty_rpc_conn *c, const ty_rpc_msg *m) {
  switch (m->kind) {
  case TY_RPC_REQUEST:
    on_request_frame(c, m);
    break;
  case TY_RPC_RESPONSE:
  case TY_RPC_END:
    finish_call(c, m);
    break;
  case TY_RPC_STREAM:
    stream_item(c, m);
    break;
  case TY_RPC_CANCEL:
    on_cancel_frame(c, m);
    break;
  }
}

static uint32_t announced_len(const ty_frame_reader *r) {
  const uint8_t *p = r->buf + r->off;
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A deadline-bound close: one log line, one count. */
static void close_for(ty_rpc_conn *c, size_t counter, bool graceful, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void close_for(ty_rpc_conn *c, size_t counter, bool graceful, const char *fmt, ...) {
  char why[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  ty_info("closing connection from %s: %s", c->peer, why);
  if (c->counted) (*(uint64_t *)((char *)c->opts.limits.stats + counter))++;
  ty__conn_begin_close(c, TY_ETIMEDOUT, graceful);
}

void ty__conn_evict(ty_rpc_conn *c, const char *cap) {
  close_for(c, offsetof(ty_conn_stats, closed_unproven), false,
            "%s and a newer connection came; this one never had a request admitted", cap);
}

void ty__conn_refuse(ty_rpc_conn *c, const char *why) {
  char msg[TY_ERR_LEN];
  snprintf(msg, sizeof msg, "the server is busy: %s; retry later", why);
  /* libuv writes at once to an empty queue: the frame is in the kernel's
   * buffer, and the descriptor is freed now, not after a linger, so a
   * burst of refusals cannot itself run the process out of descriptors. */
  (void)send_answer(c, TY_RPC_RESPONSE, TY_RPC_REFUSAL_ID, UV_EBUSY, msg, NULL, 0);
  ty__conn_begin_close(c, UV_EBUSY, false);
}

void ty_rpc_conn_proven(ty_rpc_conn *c) {
  if (c) c->proven = true;
}

size_t ty_rpc_inflight(const ty_rpc_conn *c) {
  return c->inbound.count - c->streaming;
}

/* The accepted conn's one timer while open: the handshake deadline until
 * the first whole frame, then the idle timeout, re-armed lazily from
 * last_progress so that busy conns never touch the timer heap per frame. */
static void on_deadline(uv_timer_t *t) {
  ty_rpc_conn *c = container_of(t, ty_rpc_conn, timer);
  if (c->state != TY__CONN_OPEN) return;
  const ty_rpc_limits *l = &c->opts.limits;
  if (!c->got_frame) {
    close_for(c, offsetof(ty_conn_stats, closed_handshake), false,
              "no whole request within %u ms of connecting", l->handshake_ms);
    return;
  }
  uint64_t quiet = uv_now(c->loop) - c->last_progress;
  if (quiet < l->idle_ms) {
    uv_timer_start(t, on_deadline, l->idle_ms - quiet, 0);
  } else if (c->queued > 0) {
    close_for(c, offsetof(ty_conn_stats, closed_stalled), false,
              "the peer has not read its answers for %" PRIu64 " ms (%zu bytes queued)", quiet,
              c->queued);
  } else if (c->inbound.count == 0 && c->calls.count == 0) {
    close_for(c, offsetof(ty_conn_stats, closed_idle), true, "idle for %" PRIu64 " ms", quiet);
  } else {
    uv_timer_start(t, on_deadline, l->idle_ms, 0); /* a quiet stream: not idle */
  }
}

static void got_frame(ty_rpc_conn *c) {
  c->last_progress = uv_now(c->loop);
  if (c->got_frame) return;
  c->got_frame = true;
  if (c->accepted) uv_timer_start(&c->timer, on_deadline, c->opts.limits.idle_ms, 0);
}

/* Dispatches up to `budget` whole frames while the limits allow; returns
 * how many. Protocol errors close the conn. */
static int dispatch_frames(ty_rpc_conn *c, int budget) {
  int n = 0;
  for (; n < budget && c->state == TY__CONN_OPEN && may_read(c); n++) {
    const uint8_t *body;
    size_t len;
    int rc = ty_frame_reader_next(&c->rd, &body, &len);
    if (rc == 0) return n;
    if (rc == TY_ETOOBIG) {
      protocol_error(c, rc, "frame of %" PRIu32 " bytes exceeds the maximum of %zu",
                     announced_len(&c->rd), c->rd.max_frame);
      return n;
    }
    if (rc < 0) {
      protocol_error(c, rc, "zero-length frame");
      return n;
    }
    ty_rpc_msg m;
    void *owner;
    rc = ty_rpc_decode(body, len, &m, &owner);
    if (rc < 0) {
      protocol_error(c, rc, "malformed envelope in a frame of %zu bytes", len);
      return n;
    }
    got_frame(c);
    dispatch(c, &m);
    ty_rpc_msg_free(owner);
  }
  return n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  ty_rpc_conn *c = container_of((uv_tcp_t *)h, ty_rpc_conn, tcp);
  uint8_t *space;
  size_t n;
  if (ty_frame_reader_space(&c->rd, READ_CHUNK, &space, &n) < 0) {
    *buf = uv_buf_init(NULL, 0); /* read callback sees UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init((char *)space, n > UINT_MAX ? UINT_MAX : (unsigned)n);
}

/* The peer half-closed after whole frames: its requests in flight are
 * still answered (a client may shut down its sending side once it has sent
 * them all), then the conn closes (ty__conn_serve), ending its open
 * streams, which it could no longer cancel. It counts against the caps and
 * deadlines meanwhile. Our own calls can get no answer now: they fail. */
static void on_peer_eof(ty_rpc_conn *c) {
  c->peer_eof = true;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  fail_calls(c);
  if (c->state == TY__CONN_OPEN && eof_answered(c)) ty__conn_begin_close(c, UV_EOF, true);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  ty_rpc_conn *c = container_of((uv_tcp_t *)s, ty_rpc_conn, tcp);
  if (c->state != TY__CONN_OPEN) return;
  if (nread > 0) {
    ty_frame_reader_commit(&c->rd, (size_t)nread);
    ty__conn_serve(c);
  } else if (nread == UV_EOF) {
    size_t pending = ty_frame_reader_pending(&c->rd);
    if (pending > 0)
      protocol_error(c, TY_EPROTO, "connection ended inside a frame (%zu bytes unread)", pending);
    else
      on_peer_eof(c);
  } else if (nread < 0) {
    ty_info("closing connection from %s: read failed: %s", c->peer, ty_strerror((int)nread));
    ty__conn_begin_close(c, (int)nread, false);
  }
}

static void format_peer(ty_rpc_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0) return;
  c->addr = ss;
  if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
  }
}

int ty__conn_start(ty_rpc_conn *c) {
  if (c->local)
    ty__conn_local_peer(c);
  else
    uv_tcp_nodelay(&c->tcp, 1);
  if (!c->local) format_peer(c);
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0) return rc;
  c->reading = true;
  c->state = TY__CONN_OPEN;
  c->delivered = true;
  c->last_progress = uv_now(c->loop);
  return 0;
}

void ty__conn_admitted(ty_rpc_conn *c) {
  ty_conn_stats *st = c->opts.limits.stats;
  if (st) {
    st->open++;
    st->accepted++;
  }
  c->counted = st != NULL;
  c->accepted = true;
  uv_timer_start(&c->timer, on_deadline, c->opts.limits.handshake_ms, 0);
}

bool ty__conn_same_addr(const ty_rpc_conn *a, const ty_rpc_conn *b) {
  if (a->addr.ss_family != b->addr.ss_family) return false;
  if (a->local) /* one "address" per user: the kernel's uid */
    return a->has_cred && b->has_cred && a->peer_uid == b->peer_uid;
  if (a->addr.ss_family == AF_INET)
    return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
  if (a->addr.ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->addr)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
  return false;
}

/* ---- small accessors ------------------------------------------------------------ */

size_t ty_rpc_write_queued(const ty_rpc_conn *c) {
  return c ? c->queued : 0;
}

bool ty_rpc_write_pressure(const ty_rpc_conn *c) {
  return c && c->queued >= c->opts.write_high_water;
}

void ty_rpc_set_drain_cb(ty_rpc_conn *c, void (*cb)(ty_rpc_conn *c, void *ud), void *ud) {
  c->drain_cb = cb;
  c->drain_ud = ud;
}

const char *ty_rpc_peer(const ty_rpc_conn *c) {
  return c ? c->peer : "(none)";
}

int ty_rpc_local_host(const ty_rpc_conn *c, char *out, size_t n) {
  if (c->local) return UV_EAFNOSUPPORT; /* no IP address on a Unix socket */
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len);
  if (rc != 0) return rc;
  if (ss.ss_family == AF_INET6) return uv_ip6_name((const struct sockaddr_in6 *)&ss, out, n);
  return uv_ip4_name((const struct sockaddr_in *)&ss, out, n);
}
void ty_rpc_set_ud(ty_rpc_conn *c, void *ud) {
  c->opts.ud = ud;
}
void *ty_rpc_get_ud(const ty_rpc_conn *c) {
  return c->opts.ud;
}
uv_loop_t *ty_rpc_loop(const ty_rpc_conn *c) {
  return c->loop;
}
