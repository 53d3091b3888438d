/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outgoing connections: a Unix socket's path (host starting with '/') and
 * numeric addresses connect at once; names go through
 * uv_getaddrinfo (the thread pool), preferring an IPv4 answer since daemons
 * listen on 0.0.0.0 by default and "localhost" often resolves to ::1 first.
 *
 * The whole attempt (lookup + connect) is bounded by one timer. Exactly one
 * of success, failure or timeout calls the user's callback; the conn is then
 * either handed over or closed and freed once its handles and any running
 * lookup have finished.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static void on_connected(uv_connect_t *req, int status) {
  ty_rpc_conn *c = container_of(req, ty_rpc_conn, connect_req);
  if (c->state != TY__CONN_CONNECTING) return; /* timed out: UV_ECANCELED */
  uv_timer_stop(&c->timer);
  if (status == 0) status = ty__conn_start(c);
  if (status < 0) {
    ty__conn_begin_close(c, status, false);
    c->connect_cb(NULL, status, c->connect_ud);
    return;
  }
  c->connect_cb(c, 0, c->connect_ud);
}

static int start_connect(ty_rpc_conn *c, const struct sockaddr *addr) {
  return uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ty_rpc_conn *c = container_of(req, ty_rpc_conn, gai);
  c->gai_pending = false;
  if (c->state != TY__CONN_CONNECTING) {
    uv_freeaddrinfo(res);
    ty__conn_maybe_free(c);
    return;
  }
  const struct addrinfo *pick = res;
  for (const struct addrinfo *a = res; a; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  if (status == 0) status = pick ? start_connect(c, pick->ai_addr) : UV_EAI_NONAME;
  uv_freeaddrinfo(res);
  if (status < 0) {
    uv_timer_stop(&c->timer);
    ty__conn_begin_close(c, status, false);
    c->connect_cb(NULL, status, c->connect_ud);
  }
}

static void on_connect_timeout(uv_timer_t *t) {
  ty_rpc_conn *c = container_of(t, ty_rpc_conn, timer);
  if (c->state != TY__CONN_CONNECTING) return;
  /* A lookup still queued is cancelled; one already running finishes and
   * its callback frees the conn (gai_pending holds it until then). */
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai);
  ty__conn_begin_close(c, TY_ETIMEDOUT, false);
  c->connect_cb(NULL, TY_ETIMEDOUT, c->connect_ud);
}

static int parse_numeric(const char *host, int port, struct sockaddr_storage *out) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) return 0;
  return TY_EINVAL;
}

int ty_rpc_connect(uv_loop_t *loop, const char *host, int port, const ty_rpc_conn_opts *opts,
                   uint32_t timeout_ms, ty_rpc_connect_cb cb, void *ud) {
  bool path = ty__rpc_is_path(host);
  if (!loop || !host || !host[0] || (!path && (port <= 0 || port > 65535)) || !cb) return TY_EINVAL;
  if (path && strlen(host) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return TY_EINVAL;
  ty_rpc_conn *c;
  int rc = ty__conn_create(loop, opts, path, &c);
  if (rc < 0) return rc;
  c->connect_cb = cb;
  c->connect_ud = ud;
  struct sockaddr_storage addr;
  if (path) {
    uv_pipe_connect(&c->connect_req, &c->pipe, host, on_connected); /* errors: on_connected */
  } else if (parse_numeric(host, port, &addr) == 0) {
    rc = start_connect(c, (const struct sockaddr *)&addr);
  } else {
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rc = uv_getaddrinfo(loop, &c->gai, on_resolved, host, service, &hints);
    c->gai_pending = rc == 0;
  }
  if (rc < 0) {
    ty__conn_begin_close(c, rc, false); /* never delivered: no callbacks */
    return rc;
  }
  if (timeout_ms) uv_timer_start(&c->timer, on_connect_timeout, timeout_ms, 0);
  return 0;
}
