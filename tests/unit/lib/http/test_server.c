/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for lib/http/server.c over real sockets on 127.0.0.1: the server
 * runs on a libuv loop in a second thread (the registry is filled before the
 * thread starts and never touched again), and the test talks to it with a
 * blocking socket client. Stopping goes through uv_async_send, the only
 * call that may cross threads; uv_loop_close() == 0 at the end proves that
 * every handle of the server was closed.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/http/http.h"
#include "loop.h"

static http_loop fx;

static const char *const k_body = "# HELP trainyard_up_total Ups.\n"
                                  "# TYPE trainyard_up_total counter\n"
                                  "trainyard_up_total 7\n";

static void setup(void) {
  http_loop_init(&fx);
  ty_metric *c = ty_metrics_counter(fx.m, "trainyard_up_total", "Ups.", NULL);
  ty_metric_inc(c, NULL, 7);
  cr_assert_eq(ty_http_serve_metrics(&fx.loop, "127.0.0.1", 0, fx.m, &fx.http), 0);
  http_loop_run(&fx);
}

static void teardown(void) {
  http_loop_stop(&fx);
}

/* ---- a blocking client --------------------------------------------------- */

typedef struct client {
  int fd;
  char buf[65536];
  size_t len;
} client;

typedef struct response {
  int status;
  char headers[4096];
  char body[16384];
  size_t body_len;
} response;

/* Connects from a loopback source address (NULL: the default one). */
static void client_open_from(client *c, const char *source) {
  c->len = 0;
  c->fd = http_loop_connect(&fx, source, 0);
}

static void client_open(client *c) {
  client_open_from(c, NULL);
}

static void client_send(client *c, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    cr_assert_gt(n, 0, "send");
    data += n, len -= (size_t)n;
  }
}

static void client_sends(client *c, const char *s) {
  client_send(c, s, strlen(s));
}

/* Reads more bytes; returns 0 on EOF or error. */
static int client_fill(client *c) {
  cr_assert_lt(c->len, sizeof c->buf, "response too large for the test client");
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (n <= 0) return 0;
  c->len += (size_t)n;
  return 1;
}

/* Reads until the peer closes; true if it did (and sent nothing more). */
static int client_sees_eof(client *c) {
  char b[256];
  return recv(c->fd, b, sizeof b, 0) == 0;
}

static const char *header(const response *r, const char *name) {
  static char val[256];
  char key[64];
  snprintf(key, sizeof key, "\r\n%s: ", name);
  const char *p = strcasestr(r->headers, key);
  if (!p) return NULL;
  p += strlen(key);
  size_t n = strcspn(p, "\r");
  snprintf(val, sizeof val, "%.*s", (int)n, p);
  return val;
}

/* Reads one response; `head_only` for answers to HEAD (no body follows). */
static void client_read(client *c, response *r, int head_only) {
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    cr_assert(client_fill(c), "connection ended before a full response head");
  size_t hlen = (size_t)(end - c->buf) + 4;
  cr_assert_lt(hlen, sizeof r->headers);
  memcpy(r->headers, c->buf, hlen);
  r->headers[hlen] = '\0';
  cr_assert_eq(sscanf(r->headers, "HTTP/1.1 %d ", &r->status), 1, "%s", r->headers);
  const char *cl = header(r, "Content-Length");
  cr_assert_not_null(cl, "no Content-Length in %s", r->headers);
  size_t blen = head_only ? 0 : strtoul(cl, NULL, 10);
  cr_assert_lt(blen, sizeof r->body);
  while (c->len < hlen + blen)
    cr_assert(client_fill(c), "connection ended inside a body");
  memcpy(r->body, c->buf + hlen, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
  c->len -= hlen + blen;
}

static const char *k_get = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/* The registry's own families come first; the server's connection
 * counters (trainyard_connections*) follow. */
static void expect_body(const response *r) {
  cr_expect_eq(strncmp(r->body, k_body, strlen(k_body)), 0, "body: %s", r->body);
  cr_expect(strstr(r->body, "trainyard_connections{listener=\"metrics\"}"), "body: %s", r->body);
}

/* ---- tests --------------------------------------------------------------- */

TestSuite(http_server, .init = setup, .fini = teardown);

Test(http_server, get_metrics_then_keep_alive_then_close) {
  client c;
  response r;
  client_open(&c);
  for (int i = 0; i < 3; i++) {
    client_sends(&c, k_get);
    client_read(&c, &r, 0);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    expect_body(&r);
    cr_expect_eq((size_t)atoi(header(&r, "Content-Length")), r.body_len);
    cr_expect_str_eq(header(&r, "Connection"), "keep-alive");
  }
  client_sends(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(header(&r, "Connection"), "close");
  cr_expect(client_sees_eof(&c));
  close(c.fd);
}

Test(http_server, pipelined_requests_answered_in_order) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                   "\r\n" /* a stray empty line between requests is allowed */
                   "GET /metrics?name=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 404);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  expect_body(&r);
  cr_expect(client_sees_eof(&c));
  close(c.fd);
}

Test(http_server, request_split_across_writes) {
  client c;
  response r;
  client_open(&c);
  for (const char *p = k_get; *p; p++)
    client_send(&c, p, 1);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  close(c.fd);
}

Test(http_server, head_has_length_but_no_body) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  client_read(&c, &r, 1);
  cr_expect_eq(r.status, 200);
  cr_expect_gt((size_t)atoi(header(&r, "Content-Length")), strlen(k_body));
  client_sends(&c, k_get); /* framing intact: the next answer starts cleanly */
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  expect_body(&r);
  close(c.fd);
}

Test(http_server, other_paths_are_404_and_keep_the_connection) {
  static const char *paths[] = {
      "/", "/metricsx", "/metrics/", "/favicon.ico", "*", "http://127.0.0.1/metrics"};
  client c;
  response r;
  client_open(&c);
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
    client_sends(&c, req);
    client_read(&c, &r, 0);
    cr_expect_eq(r.status, 404, "%s", paths[i]);
  }
  client_sends(&c, k_get);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  close(c.fd);
}

Test(http_server, other_methods_are_405) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 405);
  cr_expect_str_eq(header(&r, "Allow"), "GET, HEAD");
  /* a request with a body is answered, then the connection ends */
  client_sends(&c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 405);
  cr_expect_str_eq(header(&r, "Connection"), "close");
  cr_expect(client_sees_eof(&c));
  close(c.fd);
}

Test(http_server, http10_closes_unless_keep_alive) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(header(&r, "Connection"), "keep-alive");
  client_sends(&c, "GET /metrics HTTP/1.0\r\n\r\n"); /* no Host needed in 1.0 */
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(header(&r, "Connection"), "close");
  cr_expect(client_sees_eof(&c));
  close(c.fd);
}

/* Each malformed head gets 400 and the connection ends. */
static void expect_400(const char *req, size_t len) {
  client c;
  response r;
  client_open(&c);
  client_send(&c, req, len);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 400, "request: %.*s", (int)len, req);
  cr_expect_str_eq(header(&r, "Connection"), "close");
  cr_expect(client_sees_eof(&c), "closed after 400: %.*s", (int)len, req);
  close(c.fd);
}

#define EXPECT_400(lit) expect_400(lit, sizeof(lit) - 1)

Test(http_server, malformed_request_line_is_400) {
  EXPECT_400("hello\r\n\r\n");
  EXPECT_400("GET\r\nHost: x\r\n\r\n");
  EXPECT_400("GET /metrics\r\nHost: x\r\n\r\n");
  EXPECT_400("GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n");
  EXPECT_400("GET /metrics http/1.1\r\nHost: x\r\n\r\n");
  EXPECT_400("G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_400("GET /met\x01rics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\nHost: x\n\n"); /* bare LF */
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\n\n");
  EXPECT_400("GET /me\0trics HTTP/1.1\r\nHost: x\r\n\r\n");
}

Test(http_server, malformed_headers_are_400) {
  EXPECT_400("GET /metrics HTTP/1.1\r\n\r\n"); /* HTTP/1.1 needs Host */
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
             "b\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
  EXPECT_400("GET /metrics HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n");
}

Test(http_server, head_over_8k_is_400) {
  size_t len = 9000;
  char *req = malloc(len);
  const char *start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  memcpy(req, start, strlen(start));
  memset(req + strlen(start), 'a', len - strlen(start));
  expect_400(req, len); /* no end of head in sight: rejected at 8 KiB */
  memcpy(req + len - 4, "\r\n\r\n", 4);
  expect_400(req, len); /* complete, but too large */
  free(req);
}

Test(http_server, head_just_under_8k_is_fine) {
  char req[8192];
  const char *start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  size_t s = strlen(start);
  memcpy(req, start, s);
  memset(req + s, 'a', sizeof req - s - 4);
  memcpy(req + sizeof req - 4, "\r\n\r\n", 4);
  client c;
  response r;
  client_open(&c);
  client_send(&c, req, sizeof req);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  close(c.fd);
}

Test(http_server, client_closing_mid_request_is_harmless) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, "GET /metr");
  close(c.fd);
  client_open(&c);
  client_sends(&c, k_get);
  client_read(&c, &r, 0);
  cr_expect_eq(r.status, 200);
  close(c.fd);
}

/* A 17th connection from one address takes the place of that address's
 * longest waiter: idle pages of one user behind a proxy (or on loopback)
 * cannot lock the others out. */
Test(http_server, the_per_address_cap_closes_that_address_longest_waiter) {
  enum { N = TY_HTTP_MAX_CONNS_PER_ADDR };
  client *cs = calloc(N + 1, sizeof(client));
  response r;
  for (int i = 0; i < N; i++)
    client_open(&cs[i]);
  client other;
  client_open_from(&other, "127.0.2.1"); /* another address is not touched */
  client_open(&cs[N]);
  client_sends(&cs[N], k_get);
  client_read(&cs[N], &r, 0);
  cr_expect_eq(r.status, 200, "the connection over the cap was not served");
  cr_expect(
      strstr(r.body,
             "trainyard_connections_refused_total{listener=\"metrics\",reason=\"per_address\"} 1"),
      "%s", r.body);
  cr_expect(client_sees_eof(&cs[0]), "the address's longest waiter was kept");
  for (int i = 1; i < N; i++) { /* the others within the cap still work */
    client_sends(&cs[i], k_get);
    client_read(&cs[i], &r, 0);
    cr_expect_eq(r.status, 200);
  }
  client_sends(&other, k_get);
  client_read(&other, &r, 0);
  cr_expect_eq(r.status, 200);
  close(other.fd);
  for (int i = 0; i <= N; i++)
    close(cs[i].fd);
  free(cs);
}

/* Idle connections from many addresses fill every slot; a scrape still gets
 * its answer, because the connection that waited longest makes room. */
Test(http_server, idle_connections_cannot_lock_a_scraper_out) {
  enum { N = TY_HTTP_MAX_CONNS + 20 };
  client *cs = calloc(N, sizeof(client));
  for (int i = 0; i < N; i++) {
    char from[32];
    snprintf(from, sizeof from, "127.0.1.%d", 1 + i / TY_HTTP_MAX_CONNS_PER_ADDR);
    client_open_from(&cs[i], from);
  }
  client scraper;
  response r;
  client_open(&scraper);
  client_sends(&scraper, k_get);
  client_read(&scraper, &r, 0);
  cr_expect_eq(r.status, 200);
  cr_expect(strstr(r.body, "trainyard_connections{listener=\"metrics\"} 256"), "%s", r.body);
  /* The oldest idle connections were the ones closed. */
  cr_expect(client_sees_eof(&cs[0]), "the longest waiter was kept");
  close(scraper.fd);
  for (int i = 0; i < N; i++)
    close(cs[i].fd);
  free(cs);
}

/* A client that pipelines requests but never reads the answers: the server
 * must stop reading (TCP backpressure) instead of buffering responses. If it
 * buffered without bound, every send below would go through; with the
 * server's reading paused, the kernel buffers fill and a send times out. */
Test(http_server, client_that_never_reads_is_throttled) {
  client c;
  client_open(&c);
  struct timeval tv = {.tv_sec = 1};
  setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  static char chunk[65536];
  size_t rlen = strlen(k_get), fill = 0;
  while (fill + rlen <= sizeof chunk)
    memcpy(chunk + fill, k_get, rlen), fill += rlen;
  size_t sent = 0, limit = (size_t)256 << 20;
  while (sent < limit) {
    ssize_t n = send(c.fd, chunk, fill, MSG_NOSIGNAL);
    if (n <= 0) break; /* timed out: the server stopped taking requests */
    sent += (size_t)n;
  }
  cr_expect_lt(sent, limit, "server kept reading %zu bytes of requests nobody collected", sent);
  close(c.fd);
}

Test(http_server, stop_with_open_connections) {
  client c;
  response r;
  client_open(&c);
  client_sends(&c, k_get);
  client_read(&c, &r, 0);
  client_sends(&c, "GET /metr"); /* half a request still pending */
  /* teardown stops the server now; uv_loop_close proves all handles closed */
  close(c.fd);
}

/* ---- start errors, without the thread ------------------------------------ */

Test(http_server_start, rejects_bad_arguments) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  ty_metrics *m = ty_metrics_create();
  ty_http_server *s = (ty_http_server *)&loop; /* must be reset to NULL */
  cr_expect_eq(ty_http_serve_metrics(&loop, "not-an-ip", 0, m, &s), TY_EINVAL);
  cr_expect_null(s);
  cr_expect_eq(ty_http_serve_metrics(&loop, "127.0.0.1", 70000, m, &s), TY_EINVAL);
  cr_expect_eq(ty_http_serve_metrics(&loop, "127.0.0.1", -1, m, &s), TY_EINVAL);
  cr_expect_eq(ty_http_serve_metrics(&loop, NULL, 0, m, &s), TY_EINVAL);
  cr_expect_eq(ty_http_serve_metrics(&loop, "127.0.0.1", 0, NULL, &s), TY_EINVAL);
  cr_expect_eq(ty_http_serve_metrics(NULL, "127.0.0.1", 0, m, &s), TY_EINVAL);
  cr_expect_eq(ty_http_serve_metrics(&loop, "127.0.0.1", 0, m, NULL), TY_EINVAL);
  cr_expect_eq(ty_http_server_port(NULL), -1);
  ty_http_server_stop(NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&loop), 0);
  ty_metrics_destroy(m);
}

Test(http_server_start, port_in_use_and_ipv6) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  ty_metrics *m = ty_metrics_create();
  ty_http_server *a = NULL, *b = NULL;
  cr_assert_eq(ty_http_serve_metrics(&loop, "127.0.0.1", 0, m, &a), 0);
  cr_expect_eq(ty_http_serve_metrics(&loop, "127.0.0.1", ty_http_server_port(a), m, &b),
               UV_EADDRINUSE);
  cr_expect_null(b);
  int rc = ty_http_serve_metrics(&loop, "::1", 0, m, &b);
  if (rc == 0)
    cr_expect_gt(ty_http_server_port(b), 0);
  else
    cr_expect_eq(rc, UV_EADDRNOTAVAIL, "IPv6 loopback missing is the only excuse");
  ty_http_server_stop(a);
  ty_http_server_stop(b);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&loop), 0);
  ty_metrics_destroy(m);
}

/* ---- the parser's target and token (the web console's needs) ---- */

static int parse_str(const char *head, ty_http_request *r) {
  size_t used = 0;
  return ty_http_parse(head, strlen(head), r, &used);
}

Test(http_parse, keeps_the_target_and_a_bearer_token) {
  ty_http_request r;
  cr_assert_eq(parse_str("GET /api/jobs?state=RUNNING HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: Bearer abc123\r\n\r\n",
                         &r),
               1);
  cr_assert_str_eq(r.target, "/api/jobs?state=RUNNING");
  cr_assert_str_eq(r.token, "abc123");
  cr_assert(!r.is_metrics);
}

/* A cookie is no token: cookies are not kept apart by port, so one would
 * reach every other service on the host (and another port could set it). */
Test(http_parse, a_cookie_is_no_token) {
  ty_http_request r;
  cr_assert_eq(
      parse_str("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; trainyard_token=c00k1e; b=2\r\n\r\n",
                &r),
      1);
  cr_assert_str_eq(r.token, "");
  cr_assert_null(r.token_bad);
  cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: x\r\nCookie: trainyard_token=c00k1e\r\n"
                         "Authorization: Bearer b34r3r\r\n\r\n",
                         &r),
               1);
  cr_assert_str_eq(r.token, "b34r3r");
}

/* A Host naming this machine by a loopback name, with any port; anything
 * else (a rebound site's name, a look-alike) is not. */
Test(http_parse, host_loopback_names_only_loopback) {
  const char *yes[] = {"localhost",      "LOCALHOST:8080", "127.0.0.1",
                       "127.1.2.3:7812", "[::1]",          "[::1]:80"};
  const char *no[] = {"x",
                      "attacker.example:7812",
                      "127.0.0.1.attacker.example",
                      "127.0.0.1:",
                      "127.0.0.1:80x",
                      "localhost.example",
                      "127..0.1",
                      "[::1]x",
                      "128.0.0.1"};
  char head[256];
  ty_http_request r;
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", yes[i]);
    cr_assert_eq(parse_str(head, &r), 1, "%s", yes[i]);
    cr_expect(r.host_loopback, "%s", yes[i]);
  }
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", no[i]);
    cr_assert_eq(parse_str(head, &r), 1, "%s", no[i]);
    cr_expect_not(r.host_loopback, "%s", no[i]);
  }
}

/* A token that came but cannot be taken is left out and named as bad, so
 * that it is refused rather than taken for none. */
Test(http_parse, odd_tokens_are_left_out_and_named_bad) {
  ty_http_request r;
  cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\n\r\n", &r), 1);
  cr_assert_null(r.token_bad);
  cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1);
  cr_assert_null(r.token_bad);
  cr_assert_eq(
      parse_str("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n", &r), 1);
  cr_assert_str_eq(r.token, "");
  cr_assert_str_eq(r.token_bad, "Authorization is not \"Bearer TOKEN\"");
  cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \"abc\"\r\n\r\n", &r),
               1);
  cr_assert_str_eq(r.token, "");
  cr_assert(r.token_bad && strstr(r.token_bad, "a character other than"));
  cr_assert_eq(
      parse_str("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad token\r\n\r\n", &r), 1);
  cr_assert_str_eq(r.token, "");
  cr_assert(r.token_bad && strstr(r.token_bad, "a character other than"));
  char head[512];
  char big[TY_HTTP_TOKEN_MAX + 8];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
           big);
  cr_assert_eq(parse_str(head, &r), 1);
  cr_assert_str_eq(r.token, "");
  cr_assert_str_eq(r.token_bad, "longer than 127 bytes");
}

Test(http_parse, a_target_over_1k_is_malformed) {
  char head[2048];
  char path[TY_HTTP_TARGET_MAX + 1];
  memset(path, 'a', sizeof(path) - 1);
  path[0] = '/';
  path[sizeof(path) - 1] = '\0';
  snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  ty_http_request r;
  cr_assert_eq(parse_str(head, &r), TY_EPROTO);
  path[sizeof(path) - 2] = '\0'; /* exactly TY_HTTP_TARGET_MAX - 1 bytes: fits */
  snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  cr_assert_eq(parse_str(head, &r), 1);
  cr_assert_eq(strlen(r.target), TY_HTTP_TARGET_MAX - 1);
}

/* The console's actions: POST is a method of its own, and whether the
 * page's script sent X-Requested-With is kept. */
Test(http_parse, post_and_requested_with) {
  ty_http_request r;
  cr_assert_eq(parse_str("POST /api/jobs/7/cancel HTTP/1.1\r\nHost: x\r\n"
                         "X-Requested-With: trainyard\r\nContent-Length: 0\r\n\r\n",
                         &r),
               1);
  cr_assert_eq(r.method, TY_HTTP_POST);
  cr_assert(r.requested_with);
  cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1);
  cr_assert(!r.requested_with);
  cr_assert_eq(parse_str("PUT / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1);
  cr_assert_eq(r.method, TY_HTTP_OTHER);
}
