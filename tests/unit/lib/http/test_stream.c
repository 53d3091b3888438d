/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The handler side of lib/http/server.c over real sockets: answers a
 * handler gives later (ty_http_defer), and event streams
 * (ty_http_stream_*): the head and the events reach the client, a client
 * that stops reading is closed once TY_HTTP_STREAM_BUF_MAX bytes wait for
 * it, and the owner hears when the client goes; at the per-address cap a
 * request being answered is never the one closed to make room, an event
 * stream may be. The server runs on a
 * libuv loop in a second thread; what its callbacks learn is read through
 * atomics.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/http/http.h"
#include "loop.h"

typedef struct fixture {
  http_loop l;
  uv_timer_t tick;        /* pushes events, answers deferred requests */
  ty_http_stream *stream; /* loop thread only */
  ty_http_later *later;   /* loop thread only */
  atomic_int closed;      /* on_closed ran */
  atomic_int overflowed;  /* a send said the client is too far behind */
  atomic_long sent;       /* bytes queued on the stream */
  /* /held: answers deferred until `release` (loop thread only, but n_held) */
  ty_http_later *held[TY_HTTP_MAX_CONNS_PER_ADDR];
  atomic_int n_held, release;
  atomic_int quiet; /* the stream gets no events */
} fixture;

static fixture fx;

static void on_closed(void *ud) {
  (void)ud;
  fx.stream = NULL;
  atomic_store(&fx.closed, 1);
}

/* Every ms: the deferred answer, then 8 KiB events while a stream is open. */
static void on_tick(uv_timer_t *t) {
  (void)t;
  if (fx.later) ty_http_later_answer(fx.later, 200, "text/plain", "later\n", 6);
  fx.later = NULL;
  if (atomic_load(&fx.release))
    for (int i = 0; i < atomic_load(&fx.n_held); i++) {
      if (fx.held[i]) ty_http_later_answer(fx.held[i], 200, "text/plain", "later\n", 6);
      fx.held[i] = NULL;
    }
  static char event[8192];
  if (!event[0]) {
    memset(event, 'x', sizeof event);
    memcpy(event, "data: ", 6);
    memcpy(event + sizeof event - 2, "\n\n", 2);
  }
  if (!fx.stream || atomic_load(&fx.quiet)) return;
  if (ty_http_stream_send(fx.stream, event, sizeof event) != 0) {
    fx.stream = NULL; /* closed by the server: on_closed does not run */
    atomic_store(&fx.overflowed, 1);
    return;
  }
  atomic_fetch_add(&fx.sent, (long)sizeof event);
}

static void handler(void *ud, const ty_http_request *req, bool loopback, ty_http_response *resp) {
  (void)ud, (void)loopback;
  if (!strcmp(req->target, "/later")) {
    fx.later = ty_http_defer(resp);
    cr_assert(fx.later);
  } else if (!strcmp(req->target, "/held")) {
    int i = atomic_load(&fx.n_held);
    cr_assert_lt(i, TY_HTTP_MAX_CONNS_PER_ADDR);
    cr_assert((fx.held[i] = ty_http_defer(resp)));
    atomic_store(&fx.n_held, i + 1);
  } else if (!strcmp(req->target, "/stream")) {
    fx.stream = ty_http_stream_start(resp, on_closed, NULL);
    cr_assert(fx.stream);
  } else {
    resp->status = 404;
  }
}

static void close_tick(void) {
  uv_close((uv_handle_t *)&fx.tick, NULL);
}

static void setup(void) {
  memset(&fx, 0, sizeof fx);
  http_loop_init(&fx.l);
  cr_assert_eq(ty_http_serve(&fx.l.loop, "127.0.0.1", 0, fx.l.m, "web", handler, NULL, &fx.l.http),
               0);
  cr_assert_eq(uv_timer_init(&fx.l.loop, &fx.tick), 0);
  cr_assert_eq(uv_timer_start(&fx.tick, on_tick, 1, 1), 0);
  fx.l.on_stop = close_tick;
  http_loop_run(&fx.l);
}

static void teardown(void) {
  http_loop_stop(&fx.l);
}

TestSuite(http_stream, .init = setup, .fini = teardown, .timeout = 60);

static int open_client(const char *path, int rcvbuf) {
  int fd = http_loop_connect(&fx.l, NULL, rcvbuf);
  char req[128];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  return fd;
}

/* Reads until `needle` shows up among the first 64 KiB; what was read. */
static const char *read_until(int fd, const char *needle) {
  static char buf[65536];
  size_t len = 0;
  while (len < sizeof buf - 1) {
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    cr_assert_gt(n, 0, "no \"%s\" before the end", needle);
    len += (size_t)n;
    buf[len] = '\0';
    if (strstr(buf, needle)) return buf;
  }
  cr_assert_fail("no \"%s\" in the first 64 KiB", needle);
  return NULL;
}

static void wait_flag(atomic_int *f, const char *what) {
  for (int i = 0; !atomic_load(f); i++) {
    cr_assert_lt(i, 2000, "%s never happened", what);
    usleep(10000);
  }
}

Test(http_stream, a_deferred_answer_arrives) {
  int fd = open_client("/later", 0);
  cr_expect(strstr(read_until(fd, "later\n"), "HTTP/1.1 200 OK\r\n"));
  close(fd);
}

Test(http_stream, events_reach_the_client_and_its_leaving_is_heard) {
  int fd = open_client("/stream", 0);
  cr_expect(strstr(read_until(fd, "data: xxxx"), "Content-Type: text/event-stream"));
  close(fd);
  wait_flag(&fx.closed, "on_closed after the client left");
  cr_expect(!atomic_load(&fx.overflowed));
}

/* A client that reads nothing: once the kernel's buffers are full, the
 * queue grows to TY_HTTP_STREAM_BUF_MAX and the server closes the stream
 * instead of holding more. */
Test(http_stream, a_client_that_stops_reading_is_closed_at_the_bound) {
  int fd = open_client("/stream", 4096);
  wait_flag(&fx.overflowed, "the close of a stalled stream");
  cr_expect(!atomic_load(&fx.closed), "on_closed ran for a close its owner caused");
  /* What was queued when it closed is bounded: kernel buffers plus the bound. */
  cr_expect_lt(atomic_load(&fx.sent), 64L << 20);
  char buf[65536];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  cr_expect_eq(n, 0, "the server ended the stream");
  close(fd);
}

/* Opens n /held requests and waits until the handler holds them all. */
static void hold(int *fds, int n) {
  for (int i = 0; i < n; i++)
    fds[i] = open_client("/held", 0);
  for (int i = 0; atomic_load(&fx.n_held) < n; i++) {
    cr_assert_lt(i, 2000, "the handler holds %d of %d", atomic_load(&fx.n_held), n);
    usleep(10000);
  }
}

/* Every connection of an address is being answered: a new one is closed,
 * not one of them, and each still gets its answer. */
Test(http_stream, requests_being_answered_are_not_closed_at_the_per_address_cap) {
  enum { N = TY_HTTP_MAX_CONNS_PER_ADDR };
  int fds[N];
  hold(fds, N);
  int extra = http_loop_connect(&fx.l, NULL, 0);
  char b[64];
  cr_expect_eq(recv(extra, b, sizeof b, 0), 0, "the connection over the cap was kept");
  close(extra);
  atomic_store(&fx.release, 1);
  for (int i = 0; i < N; i++) {
    cr_expect(strstr(read_until(fds[i], "later\n"), "HTTP/1.1 200 OK\r\n"));
    close(fds[i]);
  }
}

/* With the others being answered, the address's event stream is the one
 * closed to make room (the console's page reconnects it). */
Test(http_stream, an_event_stream_makes_room_at_the_per_address_cap) {
  enum { N = TY_HTTP_MAX_CONNS_PER_ADDR };
  atomic_store(&fx.quiet, 1);
  int stream = open_client("/stream", 0);
  read_until(stream, "text/event-stream");
  int fds[N - 1];
  hold(fds, N - 1);
  int extra = open_client("/later", 0);
  cr_expect(strstr(read_until(extra, "later\n"), "HTTP/1.1 200 OK\r\n"));
  wait_flag(&fx.closed, "the stream's close");
  char b[256];
  ssize_t n;
  while ((n = recv(stream, b, sizeof b, 0)) > 0) {
  }
  cr_expect_eq(n, 0, "the stream was not ended");
  close(stream);
  close(extra);
  atomic_store(&fx.release, 1);
  for (int i = 0; i < N - 1; i++) {
    read_until(fds[i], "later\n");
    close(fds[i]);
  }
}
