/* SPDX-License-Identifier: Apache-2.0 */
/* The threaded test server and raw-socket helpers (see rpc_test_util.h). */
#include "rpc_test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/base/base.h"

/* ---- streaming producers ------------------------------------------------ */

typedef struct forever {
  uv_timer_t timer;
  tserver *t;
  ty_rpc_conn *c;
  uint64_t id;
  uint32_t n;
} forever;

static void forever_free(uv_handle_t *h) {
  free(container_of((uv_timer_t *)h, forever, timer));
}

static void forever_tick(uv_timer_t *timer) {
  forever *f = container_of(timer, forever, timer);
  uint32_t n = f->n++;
  ty_rpc_stream_send(f->c, f->id, &n, sizeof n);
}

static void forever_cancelled(ty_rpc_conn *c, uint64_t id, void *ud) {
  forever *f = ud;
  f->t->stats.cancels++;
  uv_timer_stop(&f->timer);
  uv_close((uv_handle_t *)&f->timer, forever_free);
  ty_rpc_stream_end(c, id, 0, NULL); /* TY_ECLOSED: releases the request */
}

static void start_forever(tserver *t, ty_rpc_conn *c, uint64_t id) {
  forever *f = ty_xcalloc(1, sizeof *f);
  *f = (forever){.t = t, .c = c, .id = id};
  uv_timer_init(&t->loop, &f->timer);
  uv_timer_start(&f->timer, forever_tick, 1, 1);
  ty_rpc_set_cancel_cb(c, id, forever_cancelled, f);
}

typedef struct flood {
  tserver *t;
  uint64_t id;
  uint32_t sent;
} flood;

enum { FLOOD_ITEMS = 256, FLOOD_ITEM = 16 * 1024 };

static void flood_pump(ty_rpc_conn *c, void *ud) {
  flood *f = ud;
  static uint8_t item[FLOOD_ITEM];
  if (f->sent > 0) f->t->stats.drains++;
  while (f->sent < FLOOD_ITEMS && !ty_rpc_write_pressure(c)) {
    memcpy(item, &f->sent, sizeof f->sent);
    if (ty_rpc_stream_send(c, f->id, item, sizeof item) < 0) break;
    f->sent++;
  }
  if (f->sent == FLOOD_ITEMS) {
    ty_rpc_set_drain_cb(c, NULL, NULL);
    ty_rpc_stream_end(c, f->id, 0, NULL);
    free(f);
  }
}

static void start_flood(tserver *t, ty_rpc_conn *c, uint64_t id) {
  flood *f = ty_xcalloc(1, sizeof *f);
  *f = (flood){.t = t, .id = id};
  ty_rpc_set_drain_cb(c, flood_pump, f);
  flood_pump(c, f);
}

typedef struct held {
  struct held *next;
  ty_rpc_conn *c;
  uint64_t id;
} held;

static void hold(tserver *t, ty_rpc_conn *c, uint64_t id) {
  held *h = ty_xcalloc(1, sizeof *h);
  *h = (held){.next = t->held, .c = c, .id = id};
  t->held = h;
}

static void release_all(tserver *t) {
  while (t->held) {
    held *h = t->held;
    t->held = h->next;
    ty_rpc_reply(h->c, h->id, 0, NULL, NULL, 0);
    free(h);
  }
}

static void forget_held(tserver *t, ty_rpc_conn *c) {
  for (held **p = &t->held; *p;) {
    held *h = *p;
    if (h->c != c) {
      p = &h->next;
      continue;
    }
    *p = h->next;
    free(h);
  }
}

/* ---- the server ------------------------------------------------------------ */

static void on_request(ty_rpc_conn *c, const ty_rpc_msg *m, void *ud) {
  tserver *t = ud;
  uint64_t id = m->request_id;
  if (!strcmp(m->method, "Echo")) {
    ty_rpc_reply(c, id, 0, NULL, m->payload, m->payload_len);
    size_t q = ty_rpc_write_queued(c);
    if (q > t->stats.max_queued) t->stats.max_queued = (uint32_t)q;
    if (m->payload_len == 5 && !memcmp(m->payload, "probe", 5))
      t->stats.echoes_before_probe = t->stats.echoes;
    t->stats.echoes++;
  } else if (!strcmp(m->method, "Prove")) { /* as a verified credential would */
    ty_rpc_conn_proven(c);
    ty_rpc_reply(c, id, 0, NULL, NULL, 0);
  } else if (!strcmp(m->method, "Auth")) {
    ty_rpc_reply(c, id, 0, NULL, m->auth, m->auth_len);
  } else if (!strcmp(m->method, "Stall")) {
    /* payload: two fds of the test process: the loop says it stopped on
     * the second, then waits for a byte on the first (everything that
     * arrives meanwhile is read at once when it goes on) */
    int fd[2];
    char b = 0;
    bool ok = m->payload_len == sizeof fd;
    if (ok) {
      memcpy(fd, m->payload, sizeof fd);
      ok = write(fd[1], &b, 1) == 1 && read(fd[0], &b, 1) == 1;
    }
    ty_rpc_reply(c, id, ok ? 0 : TY_EIO, ok ? NULL : "stall failed", NULL, 0);
  } else if (!strcmp(m->method, "Hold")) {
    hold(t, c, id);
  } else if (!strcmp(m->method, "Release")) {
    release_all(t);
    ty_rpc_reply(c, id, 0, NULL, NULL, 0);
  } else if (!strcmp(m->method, "Fail")) {
    ty_rpc_reply(c, id, TY_ENOTFOUND, "job 99 not found", NULL, 0);
  } else if (!strcmp(m->method, "Never")) {
    /* left open until the connection closes */
  } else if (!strcmp(m->method, "Big")) { /* an answer of n bytes */
    uint32_t n = 0;
    if (m->payload_len == sizeof n) memcpy(&n, m->payload, sizeof n);
    char *big = calloc(1, n + 1);
    t->stats.big_rc = ty_rpc_reply(c, id, 0, NULL, big, n);
    free(big);
  } else if (!strcmp(m->method, "Die")) {
    ty_rpc_close(c);
  } else if (!strcmp(m->method, "Count")) {
    uint32_t n = 0;
    if (m->payload_len == sizeof n) memcpy(&n, m->payload, sizeof n);
    for (uint32_t i = 0; i < n; i++)
      ty_rpc_stream_send(c, id, &i, sizeof i);
    ty_rpc_stream_end(c, id, 0, NULL);
  } else if (!strcmp(m->method, "Forever")) {
    start_forever(t, c, id);
  } else if (!strcmp(m->method, "Flood")) {
    start_flood(t, c, id);
  } else if (!strcmp(m->method, "Double")) {
    ty_rpc_reply(c, id, 0, NULL, NULL, 0);
    t->stats.double_rc = ty_rpc_reply(c, id, 0, NULL, NULL, 0);
  } else if (!strcmp(m->method, "Stats")) {
    t->stats.conns = *t->limits.stats;
    ty_rpc_reply(c, id, 0, NULL, &t->stats, sizeof t->stats);
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown method %s", m->method);
    ty_rpc_reply(c, id, TY_ENOTFOUND, msg, NULL, 0);
  }
}

static void on_close(ty_rpc_conn *c, int reason, void *ud) {
  tserver *t = ud;
  forget_held(t, c);
  if (reason == TY_EPROTO) t->stats.eproto++;
  if (reason == TY_ETOOBIG) t->stats.etoobig++;
}

static void on_accept(ty_rpc_server *s, ty_rpc_conn *c, void *ud) {
  (void)s;
  (void)c;
  ((tserver *)ud)->stats.accepted++;
}

static void on_stop(uv_async_t *a) {
  tserver *t = container_of(a, tserver, stop);
  ty_rpc_server_destroy(t->srv);
  uv_close((uv_handle_t *)&t->stop, NULL);
}

static void set_state(tserver *t, int state) {
  pthread_mutex_lock(&t->mu);
  t->state = state;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void *server_main(void *arg) {
  tserver *t = arg;
  uv_loop_init(&t->loop);
  uv_async_init(&t->loop, &t->stop, on_stop);
  ty_rpc_conn_opts opts = {.max_frame = t->max_frame,
                           .on_request = on_request,
                           .on_close = on_close,
                           .ud = t,
                           .write_high_water =
                               t->write_high_water ? t->write_high_water : 64 * 1024,
                           .limits = t->limits};
  int rc = ty_rpc_server_create(&t->loop, t->host, 0, &opts, on_accept, t, &t->srv);
  if (rc < 0) {
    uv_close((uv_handle_t *)&t->stop, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_loop_close(&t->loop);
    set_state(t, rc);
    return NULL;
  }
  t->port = ty_rpc_server_port(t->srv);
  set_state(t, 1);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_loop_close(&t->loop);
  return NULL;
}

static int start(tserver *t, const char *host, size_t max_frame, const ty_rpc_limits *limits,
                 size_t write_high_water) {
  memset(t, 0, sizeof *t);
  t->host = host ? host : "127.0.0.1";
  t->max_frame = max_frame;
  if (limits) t->limits = *limits;
  t->write_high_water = write_high_water;
  t->limits.stats = &t->conn_stats;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  pthread_create(&t->thread, NULL, server_main, t);
  pthread_mutex_lock(&t->mu);
  while (t->state == 0)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  if (t->state < 0) {
    pthread_join(t->thread, NULL);
    return t->state;
  }
  return 0;
}

int tserver_start(tserver *t, const char *host, size_t max_frame) {
  return start(t, host, max_frame, NULL, 0);
}

int tserver_start_limits(tserver *t, const ty_rpc_limits *limits, size_t write_high_water) {
  return start(t, NULL, 0, limits, write_high_water);
}

void tserver_stop(tserver *t) {
  uv_async_send(&t->stop);
  pthread_join(t->thread, NULL);
}

tserver_stats tserver_get_stats(int port) {
  tserver_stats s;
  memset(&s, 0xff, sizeof s);
  ty_rpc_client *c;
  if (ty_rpc_client_open("127.0.0.1", port, 5000, &c) < 0) return s;
  ty_rpc_result r;
  if (ty_rpc_client_call(c, "Stats", NULL, 0, 5000, &r) == 0 && r.payload_len == sizeof s)
    memcpy(&s, r.payload, sizeof s);
  ty_rpc_result_close(&r);
  ty_rpc_client_close(c);
  return s;
}

/* ---- raw sockets ------------------------------------------------------------ */

int raw_listen(int backlog, int *out_port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *out_port = ntohs(a.sin_port);
  return fd;
}

int raw_full_listener_open(raw_full_listener *l) {
  if ((l->lfd = raw_listen(0, &l->port)) < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 4; i++) { /* non-blocking: the ones not accepted must not hang here */
    l->fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(l->fill[i], (struct sockaddr *)&a, sizeof a);
  }
  return 0;
}

void raw_full_listener_close(raw_full_listener *l) {
  for (int i = 0; i < 4; i++)
    close(l->fill[i]);
  close(l->lfd);
}

int raw_connect(int port) {
  return raw_connect_from(NULL, port);
}

int raw_connect_from(const char *source, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in from = {.sin_family = AF_INET};
  if (source && (inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
                 bind(fd, (struct sockaddr *)&from, sizeof from) < 0)) {
    close(fd);
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int raw_send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

int raw_wait_closed(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == ECONNRESET ? 0 : -1;
  }
}

int raw_read_msg(int fd, ty_frame_reader *r, ty_rpc_msg *m, void **owner) {
  for (;;) {
    const uint8_t *body;
    size_t len;
    int rc = ty_frame_reader_next(r, &body, &len);
    if (rc < 0) return rc;
    if (rc == 1) return ty_rpc_decode(body, len, m, owner);
    uint8_t buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return TY_ECLOSED;
    ty_frame_reader_feed(r, buf, (size_t)n);
  }
}

int raw_send_msg(int fd, const ty_rpc_msg *m) {
  uint8_t *frame;
  size_t len;
  int rc = ty_rpc_encode(m, &frame, &len);
  if (rc < 0) return rc;
  rc = raw_send_all(fd, frame, len);
  free(frame);
  return rc;
}
