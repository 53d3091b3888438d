/* SPDX-License-Identifier: Apache-2.0 */
/* lib/http's test scaffolding (loop.h): the loop thread and its clients. */
#include "loop.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static void on_stop(uv_async_t *a) {
  http_loop *l = a->data;
  ty_http_server_stop(l->http);
  if (l->on_stop) l->on_stop();
  uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg) {
  http_loop *l = arg;
  uv_run(&l->loop, UV_RUN_DEFAULT);
  return NULL;
}

void http_loop_init(http_loop *l) {
  memset(l, 0, sizeof *l);
  cr_assert_eq(uv_loop_init(&l->loop), 0);
  l->m = ty_metrics_create();
  cr_assert(l->m);
}

void http_loop_run(http_loop *l) {
  l->port = ty_http_server_port(l->http);
  cr_assert_gt(l->port, 0);
  cr_assert_eq(uv_async_init(&l->loop, &l->stop, on_stop), 0);
  l->stop.data = l;
  cr_assert_eq(pthread_create(&l->thread, NULL, loop_thread, l), 0);
}

void http_loop_stop(http_loop *l) {
  uv_async_send(&l->stop);
  pthread_join(l->thread, NULL);
  cr_expect_eq(uv_loop_close(&l->loop), 0, "every handle closed");
  ty_metrics_destroy(l->m);
}

int http_loop_connect(const http_loop *l, const char *source, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv = {.tv_sec = 20}; /* a safety net against hangs, not an assertion */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (source) {
    struct sockaddr_in from = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, source, &from.sin_addr), 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}
