/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the lib/rpc connection tests: a real ty_rpc_server on
 * 127.0.0.1, port 0, running its own loop in a thread, with a few methods,
 * and raw blocking sockets for peers that misbehave on purpose.
 *
 * Server methods: Echo (payload back), Auth (the request's auth credential
 * back), Fail (TY_ENOTFOUND), Never (no answer),
 * Die (closes the connection), Count (streams N items, N = u32 payload),
 * Forever (streams every ms until cancelled), Flood (256 x 16 KiB obeying
 * backpressure), Double (replies twice), Stats (tserver_stats back),
 * Hold (answered when Release arrives, on any connection), Release.
 */
#ifndef TY_TESTS_RPC_TEST_UTIL_H
#define TY_TESTS_RPC_TEST_UTIL_H

#include <pthread.h>
#include <stdint.h>

#include "lib/rpc/rpc.h"

typedef struct tserver_stats {
  int32_t cancels;   /* cancel callbacks of Forever producers */
  int32_t drains;    /* drain callbacks seen by Flood */
  int32_t eproto;    /* connections closed with TY_EPROTO */
  int32_t etoobig;   /* connections closed with TY_ETOOBIG */
  int32_t double_rc; /* what the second reply of Double returned */
  int32_t big_rc;    /* what the reply of Big returned */
  int32_t accepted;
  uint32_t max_queued;          /* the largest write queue an Echo reply left */
  uint32_t echoes;              /* Echo requests served */
  uint32_t echoes_before_probe; /* ... when the one with payload "probe" came */
  ty_conn_stats conns;          /* the server's connection counters */
} tserver_stats;

typedef struct tserver {
  uv_loop_t loop;
  uv_async_t stop;
  ty_rpc_server *srv;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state; /* 0 starting, 1 listening, <0 failed */
  int port;
  const char *host;
  size_t max_frame;
  ty_rpc_limits limits;
  size_t write_high_water;  /* 0 = 64 KiB */
  ty_conn_stats conn_stats; /* the server's, loop thread only */
  tserver_stats stats;      /* loop thread only; read through the Stats method */
  struct held *held;        /* Hold requests waiting for Release */
} tserver;

/* Starts a server on host (NULL = 127.0.0.1). Returns 0 or the error. */
int tserver_start(tserver *t, const char *host, size_t max_frame);
/* The same on 127.0.0.1 with the given limits (stats are the server's own)
 * and write high-water mark (0 = 64 KiB). */
int tserver_start_limits(tserver *t, const ty_rpc_limits *limits, size_t write_high_water);
void tserver_stop(tserver *t);
/* Fetches the server's counters over a fresh connection. */
tserver_stats tserver_get_stats(int port);

/* A listening socket on 127.0.0.1 at an ephemeral port (*out_port), for a
 * raw peer to accept on: the fd, or -1. */
int raw_listen(int backlog, int *out_port);
/* A listener whose accept queue is full (backlog 0, four connections
 * queued), so the kernel drops a new SYN and a connect to `port` hangs
 * until the client's timeout. */
typedef struct raw_full_listener {
  int lfd, port;
  int fill[4];
} raw_full_listener;
/* 0, or -1 when no listener could be made. */
int raw_full_listener_open(raw_full_listener *l);
void raw_full_listener_close(raw_full_listener *l);

/* A blocking socket to 127.0.0.1:port with a 10 s receive timeout. */
int raw_connect(int port);
/* The same from a chosen loopback source address ("127.0.0.2"). */
int raw_connect_from(const char *source, int port);
int raw_send_all(int fd, const void *p, size_t n);
/* Reads until the peer closes: 0 on EOF or reset, -1 on timeout. */
int raw_wait_closed(int fd);
/* Reads one frame and decodes it into *m (owner freed by the caller). */
int raw_read_msg(int fd, ty_frame_reader *r, ty_rpc_msg *m, void **owner);
int raw_send_msg(int fd, const ty_rpc_msg *m);

#endif
