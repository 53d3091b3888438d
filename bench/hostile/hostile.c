/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hostile client for the limits of issue 13: holds N connections open to
 * one port and misbehaves on each, reconnecting whatever the server closes,
 * so the server always faces N hostile connections. Kinds, in turn:
 *   slowloris  sends the 4-byte header of a 1 KiB frame one byte per second
 *              and never finishes it;
 *   oversize   announces a 60 MiB frame (under the 64 MiB maximum), sends
 *              its first 256 KiB and stops;
 *   pipeline   sends ListNodes requests back to back, as fast as the
 *              socket takes them, and never reads an answer.
 * Connections come from loopback source addresses 127.0.0.2 and up
 * (--sources, 100 connections each by default), so per-address caps do
 * not hide the total. One round of misbehaviour per 50 ms, so the client
 * itself stays light. Runs until SIGINT/SIGTERM or --seconds; prints one
 * line of counters per 5 s and at the end.
 *
 *   hostile --port P [--host 127.0.0.1] [--conns 1000] [--seconds 60]
 *           [--kinds slowloris,oversize,pipeline] [--per-source 100]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SLOWLORIS, OVERSIZE, PIPELINE, N_KINDS };
static const char *const kind_names[N_KINDS] = {"slowloris", "oversize", "pipeline"};

typedef struct hconn {
  int fd;
  int kind;
  size_t sent;     /* bytes of this connection's script sent */
  int64_t next_ms; /* when to send more (slowloris) */
} hconn;

typedef struct opts {
  const char *host;
  int port, conns, seconds, per_source;
  bool kinds[N_KINDS];
} opts;

static volatile sig_atomic_t stop;
static void on_signal(int s) {
  (void)s;
  stop = 1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A ListNodes request frame: 4-byte length, then the envelope (version 1,
 * request id 1, REQUEST, method ListNodes), hand-encoded. */
static const uint8_t list_nodes[] = {0,    0,   0,   17,  0x08, 0x01, 0x10, 0x01, 0x18, 0x01, 0x22,
                                     0x09, 'L', 'i', 's', 't',  'N',  'o',  'd',  'e',  's'};
static const uint8_t slow_header[] = {0, 0, 4, 0}; /* 1 KiB, never sent */
static const uint32_t oversize_len = 60u << 20;
static uint8_t filler[64 * 1024];
static uint8_t pipeline[3120 * sizeof list_nodes]; /* ListNodes, back to back */

static uint64_t opened, closed_by_server, refused_connect;

static int open_one(const opts *o, int i, hconn *c, int ep) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) return -1;
  struct sockaddr_in from = {.sin_family = AF_INET};
  from.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i / o->per_source));
  bind(c->fd, (struct sockaddr *)&from, sizeof from);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
  inet_pton(AF_INET, o->host, &to.sin_addr);
  if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    refused_connect++;
    return -1;
  }
  c->sent = 0;
  c->next_ms = now_ms();
  /* Pipeliners' answers are never read, so they must not wake us (level
   * triggered, they would spin this loop): only the hang-up counts. */
  uint32_t events = c->kind == PIPELINE ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP;
  struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  opened++;
  return 0;
}

/* Sends what this connection's script calls for now; -1 when it broke. */
static int misbehave(hconn *c) {
  ssize_t w = 0;
  if (c->kind == SLOWLORIS) {
    if (c->sent >= sizeof slow_header || now_ms() < c->next_ms) return 0;
    w = send(c->fd, slow_header + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    c->next_ms = now_ms() + 1000;
  } else if (c->kind == OVERSIZE) {
    if (c->sent >= 4 + sizeof filler * 4) return 0;
    uint8_t head[4] = {oversize_len >> 24, (oversize_len >> 16) & 255, (oversize_len >> 8) & 255,
                       oversize_len & 255};
    w = c->sent < 4 ? send(c->fd, head + c->sent, 4 - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT)
                    : send(c->fd, filler, sizeof filler, MSG_NOSIGNAL | MSG_DONTWAIT);
  } else { /* as many requests as the socket takes */
    size_t off = c->sent % sizeof pipeline;
    w = send(c->fd, pipeline + off, sizeof pipeline - off, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) return 0;
  if (w < 0) return -1;
  c->sent += (size_t)w;
  return 0;
}

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.host = "127.0.0.1",
              .conns = 1000,
              .seconds = 60,
              .per_source = 100,
              .kinds = {true, true, true}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--port"))
      o->port = atoi(v);
    else if (!strcmp(k, "--host"))
      o->host = v;
    else if (!strcmp(k, "--conns"))
      o->conns = atoi(v);
    else if (!strcmp(k, "--seconds"))
      o->seconds = atoi(v);
    else if (!strcmp(k, "--per-source"))
      o->per_source = atoi(v);
    else if (!strcmp(k, "--kinds"))
      for (int n = 0; n < N_KINDS; n++)
        o->kinds[n] = strstr(v, kind_names[n]) != NULL;
    else
      return -1;
  }
  return o->port > 0 && o->conns > 0 && o->per_source > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  opts o;
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: hostile --port P [--host H] [--conns N] [--seconds S] "
                    "[--kinds slowloris,oversize,pipeline] [--per-source N]\n");
    return 2;
  }
  int kinds[N_KINDS], n_kinds = 0;
  for (int k = 0; k < N_KINDS; k++)
    if (o.kinds[k]) kinds[n_kinds++] = k;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < sizeof pipeline; i += sizeof list_nodes)
    memcpy(pipeline + i, list_nodes, sizeof list_nodes);
  int ep = epoll_create1(0);
  hconn *cs = calloc((size_t)o.conns, sizeof *cs);
  for (int i = 0; i < o.conns; i++) {
    cs[i].kind = kinds[i % n_kinds];
    open_one(&o, i, &cs[i], ep);
  }
  int64_t end = now_ms() + (int64_t)o.seconds * 1000, report = now_ms() + 5000;
  struct epoll_event evs[256];
  static char sink[65536];
  int64_t next_tick = 0; /* the misbehaviour round, 20 per second */
  while (!stop && now_ms() < end) {
    int n = epoll_wait(ep, evs, 256, 50);
    for (int e = 0; e < n; e++) {
      hconn *c = &cs[evs[e].data.u32];
      /* The server sends the others nothing: readable means closed. */
      bool hup = evs[e].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
      ssize_t r = c->kind == PIPELINE ? 0 : recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (hup || r == 0 || (r < 0 && errno != EAGAIN)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        closed_by_server++;
      }
    }
    if (now_ms() >= next_tick) {
      next_tick = now_ms() + 50;
      for (int i = 0; i < o.conns; i++) {
        if (cs[i].fd < 0)
          open_one(&o, i, &cs[i], ep);
        else if (misbehave(&cs[i]) != 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, cs[i].fd, NULL);
          close(cs[i].fd);
          cs[i].fd = -1;
          closed_by_server++;
        }
      }
    }
    if (now_ms() >= report) {
      int open = 0;
      for (int i = 0; i < o.conns; i++)
        open += cs[i].fd >= 0;
      printf("hostile: %d open, %llu opened, %llu closed by the server, %llu connects failed\n",
             open, (unsigned long long)opened, (unsigned long long)closed_by_server,
             (unsigned long long)refused_connect);
      fflush(stdout);
      report += 5000;
    }
  }
  printf("hostile: done: %llu opened, %llu closed by the server, %llu connects failed\n",
         (unsigned long long)opened, (unsigned long long)closed_by_server,
         (unsigned long long)refused_connect);
  return 0;
}
