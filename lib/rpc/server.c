/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_server: a listening socket that turns each accepted TCP stream into
 * a ty_rpc_conn using the server's options. The server keeps its live conns
 * on a list so that destroying it closes them; a conn unlinks itself when it
 * is freed. Destroy detaches the conns first, so a conn never points at a
 * freed server.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ty_rpc_server {
  uv_tcp_t listen; /* container_of recovers the server */
  uv_loop_t *loop;
  ty_rpc_conn_opts opts;
  ty_rpc_accept_cb on_accept;
  void *ud;
  ty_rpc_conn *conns; /* head of the srv_prev/srv_next list */
  int port;
};

void ty__server_forget(ty_rpc_server *s, ty_rpc_conn *c) {
  if (c->srv_prev)
    c->srv_prev->srv_next = c->srv_next;
  else
    s->conns = c->srv_next;
  if (c->srv_next) c->srv_next->srv_prev = c->srv_prev;
  c->srv_prev = c->srv_next = NULL;
  c->server = NULL;
}

static void on_connection(uv_stream_t *listener, int status) {
  ty_rpc_server *s = container_of((uv_tcp_t *)listener, ty_rpc_server, listen);
  if (status < 0) {
    ty_warn("accept failed: %s", ty_strerror(status));
    return;
  }
  ty_rpc_conn *c;
  if (ty__conn_create(s->loop, &s->opts, &c) < 0) return;
  int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
  if (rc == 0) rc = ty__conn_start(c);
  if (rc < 0) {
    ty_warn("accept failed: %s", ty_strerror(rc));
    ty__conn_begin_close(c, rc, false);
    return;
  }
  c->server = s;
  c->srv_next = s->conns;
  if (s->conns) s->conns->srv_prev = c;
  s->conns = c;
  if (s->on_accept) s->on_accept(s, c, s->ud);
}

/* Numeric addresses directly; a name ("localhost") through a blocking
 * lookup, acceptable once at start-up. */
static int resolve_listen(const char *host, int port, struct sockaddr_storage *out) {
  if (!host || !host[0]) host = "0.0.0.0";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) return 0;
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return UV_EAI_NONAME;
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

static int bound_port(ty_rpc_server *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = uv_tcp_getsockname(&s->listen, (struct sockaddr *)&ss, &len);
  if (rc < 0) return rc;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void free_server(uv_handle_t *h) {
  free(container_of((uv_tcp_t *)h, ty_rpc_server, listen));
}

int ty_rpc_server_create(uv_loop_t *loop, const char *host, int port, const ty_rpc_conn_opts *opts,
                         ty_rpc_accept_cb on_accept, void *ud, ty_rpc_server **out_server) {
  if (!loop || port < 0 || port > 65535 || !out_server) return TY_EINVAL;
  struct sockaddr_storage addr;
  int rc = resolve_listen(host, port, &addr);
  if (rc < 0) return rc;
  ty_rpc_server *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  s->loop = loop;
  if (opts) s->opts = *opts;
  s->on_accept = on_accept;
  s->ud = ud;
  rc = uv_tcp_init(loop, &s->listen);
  if (rc < 0) {
    free(s);
    return rc;
  }
  rc = uv_tcp_bind(&s->listen, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listen, SOMAXCONN, on_connection);
  if (rc == 0) rc = bound_port(s);
  if (rc < 0) goto fail;
  s->port = rc;
  *out_server = s;
  return 0;
fail:
  uv_close((uv_handle_t *)&s->listen, free_server);
  return rc;
}

int ty_rpc_server_port(const ty_rpc_server *s) {
  return s ? s->port : TY_EINVAL;
}

void ty_rpc_server_destroy(ty_rpc_server *s) {
  if (!s) return;
  while (s->conns) {
    ty_rpc_conn *c = s->conns;
    ty__server_forget(s, c);
    ty_rpc_close(c);
  }
  uv_close((uv_handle_t *)&s->listen, free_server);
}
