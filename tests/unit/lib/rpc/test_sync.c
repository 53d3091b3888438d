/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_sync, the blocking client without libuv, against the real server
 * of rpc_test_util (a ty_rpc_server on loopback) and against raw sockets
 * that answer with bad frames or call the client back.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "rpc_test_util.h"

static ty_rpc_sync *open_sync(int port) {
  ty_rpc_sync *c = NULL;
  int rc = ty_rpc_sync_open("127.0.0.1", port, 5000, &c);
  cr_assert_eq(rc, 0, "ty_rpc_sync_open: %s", ty_strerror(rc));
  return c;
}

static void expect_echo(ty_rpc_sync *c, const char *text) {
  ty_rpc_result r;
  int rc = ty_rpc_sync_call(c, "Echo", text, strlen(text), 5000, &r);
  cr_assert_eq(rc, 0, "Echo: %s", ty_strerror(rc));
  cr_assert_eq(r.status, 0);
  cr_assert_eq(r.payload_len, strlen(text));
  cr_assert(memcmp(r.payload, text, r.payload_len) == 0);
  ty_rpc_result_close(&r);
}

Test(sync, answers_and_error_statuses) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  expect_echo(c, "hello");
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Fail", NULL, 0, 5000, &r), 0);
  cr_assert_eq(r.status, TY_ENOTFOUND);
  cr_assert_str_eq(r.message, "job 99 not found");
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_call(c, "Nope", NULL, 0, 5000, &r), 0);
  cr_assert_eq(r.status, TY_ENOTFOUND);
  cr_assert_str_eq(r.message, "unknown method Nope");
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_call(c, NULL, NULL, 0, 5000, &r), TY_EINVAL);
  cr_assert_eq(r.status, TY_EINVAL);
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_requests(c), 3);
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

/* An answer over the server's frame limit cannot be sent: the caller is
 * answered ETOOBIG with the sizes, not left to its timeout. */
Test(sync, an_answer_over_the_frame_limit_is_refused_naming_its_size) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 4096), 0);
  ty_rpc_sync *c = open_sync(t.port);
  ty_rpc_result r;
  uint32_t n = 8192;
  cr_assert_eq(ty_rpc_sync_call(c, "Big", &n, sizeof n, 5000, &r), 0);
  cr_assert_eq(r.status, TY_ETOOBIG);
  cr_assert(strstr(r.message, "the answer is 8192 bytes, more than the largest frame (4096 bytes)"),
            "%s", r.message);
  ty_rpc_result_close(&r);
  expect_echo(c, "the connection still serves");
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

/* A unary call answered with a stream gets the END, the items skipped. */
Test(sync, a_streamed_answer_ends_the_call) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  uint32_t n = 50;
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Count", &n, sizeof n, 5000, &r), 0);
  cr_assert_eq(r.status, 0);
  cr_assert_eq(r.payload_len, 0);
  ty_rpc_result_close(&r);
  expect_echo(c, "after the stream");
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

typedef struct counted {
  uint32_t seen, stop_at;
  bool in_order;
} counted;

static int count_item(const uint8_t *p, size_t n, void *ud) {
  counted *k = ud;
  uint32_t i = UINT32_MAX;
  if (n == sizeof i) memcpy(&i, p, sizeof i);
  k->in_order &= i == k->seen;
  return ++k->seen == k->stop_at ? 42 : 0;
}

/* A streaming call gets every item in order, then the END; one whose
 * caller stops early returns its answer and leaves the connection usable. */
Test(sync, a_stream_delivers_its_items_then_its_end) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  uint32_t n = 300;
  counted k = {.in_order = true};
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_stream(c, "Count", &n, sizeof n, 5000, count_item, &k, &r), 0);
  cr_assert_eq(r.status, 0);
  cr_assert_eq(k.seen, n);
  cr_assert(k.in_order);
  ty_rpc_result_close(&r);
  k = (counted){.stop_at = 7, .in_order = true};
  cr_assert_eq(ty_rpc_sync_stream(c, "Count", &n, sizeof n, 5000, count_item, &k, &r), 42);
  cr_assert_eq(r.status, TY_ECLOSED);
  cr_assert_eq(k.seen, 7u);
  ty_rpc_result_close(&r);
  expect_echo(c, "after the stopped stream");
  cr_assert_eq(ty_rpc_sync_stream(c, "Fail", NULL, 0, 5000, count_item, &k, &r), 0);
  cr_assert_eq(r.status, TY_ENOTFOUND, "a unary answer ends a stream call");
  ty_rpc_result_close(&r);
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

/* A timed-out call leaves the connection usable; its late answer (Hold,
 * released from another connection) is skipped by the next call. */
Test(sync, timeout_then_late_answer_is_skipped) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Hold", NULL, 0, 50, &r), TY_ETIMEDOUT);
  cr_assert_eq(r.status, TY_ETIMEDOUT);
  cr_assert_str_eq(r.message, ty_strerror(TY_ETIMEDOUT));
  ty_rpc_result_close(&r);
  ty_rpc_sync *other = open_sync(t.port);
  cr_assert_eq(ty_rpc_sync_call(other, "Release", NULL, 0, 5000, &r), 0);
  ty_rpc_result_close(&r);
  ty_rpc_sync_close(other);
  expect_echo(c, "not the late answer");
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

Test(sync, closed_connection_ends_every_later_call) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Die", NULL, 0, 5000, &r), TY_ECLOSED);
  cr_assert_eq(r.status, TY_ECLOSED);
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_call(c, "Echo", "x", 1, 5000, &r), TY_ECLOSED);
  ty_rpc_result_close(&r);
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

Test(sync, refused_and_bad_arguments) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  int port = t.port;
  tserver_stop(&t);
  ty_rpc_sync *c = NULL;
  cr_assert_eq(ty_rpc_sync_open("127.0.0.1", port, 5000, &c), UV_ECONNREFUSED);
  cr_assert_null(c);
  cr_assert_eq(ty_rpc_sync_open("127.0.0.1", 0, 5000, &c), TY_EINVAL);
  cr_assert_eq(ty_rpc_sync_open("127.0.0.1", 70000, 5000, &c), TY_EINVAL);
  cr_assert_eq(ty_rpc_sync_open("", 80, 5000, &c), TY_EINVAL);
  cr_assert_eq(ty_rpc_sync_open(NULL, 80, 5000, &c), TY_EINVAL);
  cr_assert_eq(ty_rpc_sync_open("no such host.invalid", 80, 5000, &c), TY_ENOTFOUND);
  cr_assert_null(c);
  ty_rpc_sync_close(NULL);
}

Test(sync, ipv6_and_names) {
  tserver t;
  int rc = tserver_start(&t, "::1", 0);
  if (rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT) {
    cr_log_warn("no IPv6 loopback here: %s", ty_strerror(rc));
  } else {
    cr_assert_eq(rc, 0, "%s", ty_strerror(rc));
    ty_rpc_sync *c = NULL;
    cr_assert_eq(ty_rpc_sync_open("::1", t.port, 5000, &c), 0);
    expect_echo(c, "six");
    ty_rpc_sync_close(c);
    tserver_stop(&t);
  }
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = NULL;
  cr_assert_eq(ty_rpc_sync_open("localhost", t.port, 5000, &c), 0);
  expect_echo(c, "by name");
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

/* A full accept queue drops the SYN: the connect times out (as test_conn's). */
Test(sync, connect_timeout) {
  raw_full_listener l;
  cr_assert_eq(raw_full_listener_open(&l), 0);
  ty_rpc_sync *c = NULL;
  int rc = ty_rpc_sync_open("127.0.0.1", l.port, 200, &c);
  if (rc == 0) {
    cr_log_warn("accept queue did not fill; connect timeout not exercised");
    ty_rpc_sync_close(c);
  } else {
    cr_assert_eq(rc, TY_ETIMEDOUT, "%s", ty_strerror(rc));
  }
  raw_full_listener_close(&l);
}

/* ---- signing ---------------------------------------------------------------------- */

static int sign_method(void *ud, const char *method, const void *payload, size_t len, ty_buf *out) {
  (void)payload, (void)len;
  int *calls = ud;
  (*calls)++;
  if (!strcmp(method, "Refuse")) return TY_EPERM;
  return ty_buf_append(out, method, strlen(method));
}

Test(sync, every_request_is_signed_and_a_signer_error_sends_nothing) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  ty_rpc_sync *c = open_sync(t.port);
  int calls = 0;
  ty_rpc_sync_set_signer(c, sign_method, &calls);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Auth", NULL, 0, 5000, &r), 0);
  cr_assert_eq(r.payload_len, 4);
  cr_assert(memcmp(r.payload, "Auth", 4) == 0);
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_call(c, "Refuse", NULL, 0, 5000, &r), TY_EPERM);
  ty_rpc_result_close(&r);
  cr_assert_eq(calls, 2);
  cr_assert_eq(ty_rpc_sync_requests(c), 1);
  expect_echo(c, "still open");
  ty_rpc_sync_close(c);
  tserver_stop(&t);
}

/* ---- peers that misbehave: a raw socket answers ------------------------------------ */

typedef enum { ZERO_FRAME, HUGE_FRAME, GARBAGE, CALLS_BACK } misbehaviour;

typedef struct raw_peer {
  int lfd, port;
  misbehaviour what;
  pthread_t thread;
  int callback_status; /* CALLS_BACK: the status the client answered with */
} raw_peer;

/* Reads the client's request, then does `what`. */
static void *raw_peer_main(void *arg) {
  raw_peer *p = arg;
  int fd = accept(p->lfd, NULL, NULL);
  if (fd < 0) return NULL;
  ty_frame_reader rd;
  ty_frame_reader_init(&rd, 0);
  ty_rpc_msg req, m;
  void *owner = NULL, *owner2 = NULL;
  if (raw_read_msg(fd, &rd, &req, &owner) == 0) {
    static const uint8_t zero[4] = {0, 0, 0, 0}, huge[4] = {0x7f, 0xff, 0xff, 0xff};
    static const uint8_t garbage[9] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (p->what == ZERO_FRAME) raw_send_all(fd, zero, sizeof zero);
    if (p->what == HUGE_FRAME) raw_send_all(fd, huge, sizeof huge);
    if (p->what == GARBAGE) raw_send_all(fd, garbage, sizeof garbage);
    if (p->what == CALLS_BACK) {
      ty_rpc_msg call = {
          .version = TY_RPC_VERSION, .request_id = 7, .kind = TY_RPC_REQUEST, .method = "Ping"};
      raw_send_msg(fd, &call);
      if (raw_read_msg(fd, &rd, &m, &owner2) == 0 && m.kind == TY_RPC_RESPONSE && m.request_id == 7)
        p->callback_status = m.status;
      ty_rpc_msg answer = {.version = TY_RPC_VERSION,
                           .request_id = req.request_id,
                           .kind = TY_RPC_RESPONSE,
                           .payload = (const uint8_t *)"pong",
                           .payload_len = 4};
      raw_send_msg(fd, &answer);
    }
  }
  raw_wait_closed(fd);
  ty_rpc_msg_free(owner);
  ty_rpc_msg_free(owner2);
  ty_frame_reader_close(&rd);
  close(fd);
  return NULL;
}

static void raw_peer_start(raw_peer *p, misbehaviour what) {
  *p = (raw_peer){.what = what};
  p->lfd = raw_listen(1, &p->port);
  cr_assert_geq(p->lfd, 0);
  cr_assert_eq(pthread_create(&p->thread, NULL, raw_peer_main, p), 0);
}

static void raw_peer_stop(raw_peer *p) {
  pthread_join(p->thread, NULL);
  close(p->lfd);
}

/* A bad frame fails the call with its error and ends the connection. */
static void expect_bad_frame(misbehaviour what, int want) {
  raw_peer p;
  raw_peer_start(&p, what);
  ty_rpc_sync *c = open_sync(p.port);
  ty_rpc_result r;
  int rc = ty_rpc_sync_call(c, "Echo", "x", 1, 5000, &r);
  cr_assert_eq(rc, want, "%s, not %s", ty_strerror(rc), ty_strerror(want));
  cr_assert_eq(r.status, want);
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_sync_call(c, "Echo", "x", 1, 5000, &r), TY_ECLOSED);
  ty_rpc_result_close(&r);
  ty_rpc_sync_close(c); /* the peer sees EOF and ends */
  raw_peer_stop(&p);
}

Test(sync, zero_length_frame_is_a_protocol_error) {
  expect_bad_frame(ZERO_FRAME, TY_EPROTO);
}

Test(sync, oversized_frame_is_refused_before_it_arrives) {
  expect_bad_frame(HUGE_FRAME, TY_ETOOBIG);
}

Test(sync, undecodable_envelope_is_a_protocol_error) {
  expect_bad_frame(GARBAGE, TY_EPROTO);
}

Test(sync, a_request_from_the_peer_is_answered_not_found) {
  raw_peer p;
  raw_peer_start(&p, CALLS_BACK);
  ty_rpc_sync *c = open_sync(p.port);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_sync_call(c, "Echo", "x", 1, 5000, &r), 0);
  cr_assert_eq(r.payload_len, 4);
  cr_assert(memcmp(r.payload, "pong", 4) == 0);
  ty_rpc_result_close(&r);
  ty_rpc_sync_close(c);
  raw_peer_stop(&p);
  cr_assert_eq(p.callback_status, TY_ENOTFOUND);
}
