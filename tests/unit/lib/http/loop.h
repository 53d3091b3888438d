/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scaffolding lib/http's tests share: a server on a libuv loop in a
 * second thread, and blocking loopback clients for the test's thread.
 * The test fills the loop (server, its own handles) between
 * http_loop_init and http_loop_run and never touches them afterwards;
 * http_loop_stop crosses threads with uv_async_send (the only libuv call
 * that may), stops the server and the test's handles on the loop thread,
 * and asserts that every handle was closed.
 */
#ifndef TY_TESTS_UNIT_LIB_HTTP_LOOP_H
#define TY_TESTS_UNIT_LIB_HTTP_LOOP_H

#include <pthread.h>
#include <uv.h>

#include "lib/http/http.h"

typedef struct http_loop {
  uv_loop_t loop;
  uv_async_t stop;
  ty_metrics *m;
  ty_http_server *http; /* the test starts it on `loop` */
  pthread_t thread;
  int port;
  void (*on_stop)(void); /* optional: closes the test's own handles, on the loop thread */
} http_loop;

/* The loop and an empty registry. */
void http_loop_init(http_loop *l);
/* Reads the server's port and runs the loop in a new thread. */
void http_loop_run(http_loop *l);
/* Stops the server, joins the thread, closes the loop, frees the registry. */
void http_loop_stop(http_loop *l);
/* A blocking socket connected to the server from loopback address `source`
 * (NULL: the default one), with a 20 s receive timeout against hangs and,
 * when rcvbuf > 0, that receive buffer. */
int http_loop_connect(const http_loop *l, const char *source, int rcvbuf);

#endif
