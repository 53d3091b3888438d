/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_server: a listening socket that turns each accepted stream (TCP,
 * or a Unix socket's: local.c binds those) into a ty_rpc_conn using the
 * server's options. The server keeps its live conns
 * on a list so that destroying it closes them; a conn unlinks itself when it
 * is freed. Destroy detaches the conns first, so a conn never points at a
 * freed server.
 *
 * Admission (ty_rpc_limits): a new connection beyond max_conns, or from an
 * address that already holds max_conns_per_addr, first evicts the oldest
 * connection (of all, or of that address) that never had a request
 * admitted (ty_rpc_conn_proven); failing that it is accepted, answered
 * with a refusal frame
 * (TY_RPC_REFUSAL_ID: busy, which limit) and closed at once, so the
 * backlog never fills with connections nobody will serve; an
 * accept that fails is counted the same way. The descriptor limit is a
 * cap too: a connection whose descriptor is within a reserve of
 * RLIMIT_NOFILE is refused (as over max_conns, not evicting), since past
 * the limit libuv accepts and drops connections with its spare descriptor
 * and never tells the server (EMFILE). Refusals are
 * logged at most once per REFUSAL_LOG_MS with their count, so a flood
 * neither fills the log nor goes unnoticed. The per-address count walks the
 * conn list: at most max_conns entries, each a compare, per accept.
 *
 * The backlog: conns with more whole frames buffered than one turn serves
 * (pipelining peers) wait here, not reading, and an idle handle gives them
 * turns round-robin, at most BACKLOG_BUDGET frames per loop iteration, so
 * the loop keeps polling and a request on another connection waits for at
 * most that many, however many peers pipeline.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define REFUSAL_LOG_MS 10000
#define BACKLOG_BUDGET 256 /* frames per loop iteration for backlogged conns */
/* Descriptors kept free of connections, for the process's files, its
 * store, its children's pipes: a quarter of RLIMIT_NOFILE, at most this. */
#define FD_RESERVE_MAX 256

struct ty_rpc_server {
  union {                /* container_of recovers the server */
    uv_tcp_t listen;     /* TCP... */
    uv_pipe_t listen_un; /* ...or a Unix stream socket (local) */
  };
  bool local;
  ty__unix_owner owner; /* local: the socket file to remove on destroy */
  uv_idle_t serve;      /* turns for the backlog while it is not empty */
  int open_handles;
  ty_rpc_conn *bl_head, *bl_tail; /* the backlog, oldest first */
  size_t queued_total;            /* answers queued on all conns */
  bool over_budget;               /* above max_queued_total, until back under half */
  uint64_t budget_logged_at;      /* uv_now of the last warning about it */
  uv_loop_t *loop;
  ty_rpc_conn_opts opts;
  ty_rpc_accept_cb on_accept;
  void *ud;
  ty_rpc_conn *conns; /* head of the srv_prev/srv_next list */
  size_t n_conns;
  int port;
  char where[160];            /* "port N" or "socket PATH", for log lines */
  uint64_t refused_unlogged;  /* refusals since the last log line */
  uint64_t refusal_logged_at; /* uv_now of that line; 0 = never */
};

static void unlink_backlog(ty_rpc_server *s, ty_rpc_conn *c) {
  if (!c->backlogged) return;
  if (c->bl_prev)
    c->bl_prev->bl_next = c->bl_next;
  else
    s->bl_head = c->bl_next;
  if (c->bl_next)
    c->bl_next->bl_prev = c->bl_prev;
  else
    s->bl_tail = c->bl_prev;
  c->bl_prev = c->bl_next = NULL;
  c->backlogged = false;
}

/* Turns for backlogged conns, oldest first, within the iteration's budget;
 * a conn with frames left after its turn goes to the back. */
static void on_serve(uv_idle_t *h) {
  ty_rpc_server *s = container_of(h, ty_rpc_server, serve);
  int budget = BACKLOG_BUDGET;
  ty_rpc_conn *last = s->bl_tail; /* one round at most */
  while (budget > 0 && s->bl_head) {
    ty_rpc_conn *c = s->bl_head;
    unlink_backlog(s, c);
    budget -= ty__conn_serve(c) + 1;
    if (c == last) break;
  }
  if (!s->bl_head) uv_idle_stop(&s->serve);
}

void ty__server_backlog(ty_rpc_server *s, ty_rpc_conn *c) {
  if (c->backlogged) return;
  c->backlogged = true;
  c->bl_prev = s->bl_tail;
  c->bl_next = NULL;
  if (s->bl_tail)
    s->bl_tail->bl_next = c;
  else
    s->bl_head = c;
  s->bl_tail = c;
  uv_idle_start(&s->serve, on_serve);
}

void ty__server_queued(ty_rpc_server *s, size_t len, bool add) {
  size_t cap = s->opts.limits.max_queued_total;
  s->queued_total = add ? s->queued_total + len : s->queued_total - len;
  if (add && s->queued_total > cap && !s->over_budget) {
    s->over_budget = true;
    uint64_t now = uv_now(s->loop);
    if (!s->budget_logged_at || now - s->budget_logged_at >= REFUSAL_LOG_MS) {
      s->budget_logged_at = now ? now : 1;
      ty_warn("%s: %zu bytes of answers queued for peers that do not read them; connections "
              "holding more than %zu are not read until they take theirs",
              s->where, s->queued_total, ty__server_share(s));
    }
  } else if (!add && s->over_budget && s->queued_total < cap / 2) {
    s->over_budget = false;
    for (ty_rpc_conn *c = s->conns; c; c = c->srv_next)
      ty__conn_update_reading(c);
  }
}

size_t ty__server_share(const ty_rpc_server *s) {
  if (!s->over_budget) return SIZE_MAX;
  size_t share = s->opts.limits.max_queued_total / (s->n_conns ? s->n_conns : 1);
  return share > TY_RPC_QUEUED_SHARE_MIN ? share : TY_RPC_QUEUED_SHARE_MIN;
}

void ty__server_forget(ty_rpc_server *s, ty_rpc_conn *c) {
  unlink_backlog(s, c);
  if (c->srv_prev)
    c->srv_prev->srv_next = c->srv_next;
  else
    s->conns = c->srv_next;
  if (c->srv_next) c->srv_next->srv_prev = c->srv_prev;
  c->srv_prev = c->srv_next = NULL;
  c->server = NULL;
  s->n_conns--;
}

static void free_handle(uv_handle_t *h) {
  free(h);
}

/* One line per REFUSAL_LOG_MS at most: the first refusal at once, later ones
 * summed into the next line. */
static void log_refusal(ty_rpc_server *s, const char *peer, const char *why) {
  s->refused_unlogged++;
  uint64_t now = uv_now(s->loop);
  if (s->refusal_logged_at && now - s->refusal_logged_at < REFUSAL_LOG_MS) return;
  ty_warn("%s: refused %" PRIu64 " connection%s%s; the last from %s: %s", s->where,
          s->refused_unlogged, s->refused_unlogged == 1 ? "" : "s",
          s->refusal_logged_at ? " since the last report" : "", peer, why);
  s->refused_unlogged = 0;
  s->refusal_logged_at = now ? now : 1;
}

/* The open conns from c's address, and the oldest of them whose peer never
 * proved itself (*unproven; NULL if none; ty_rpc_conn_proven). The list is
 * newest first. */
static size_t conns_from(const ty_rpc_server *s, const ty_rpc_conn *c, ty_rpc_conn **unproven) {
  size_t n = 0;
  *unproven = NULL;
  for (ty_rpc_conn *o = s->conns; o; o = o->srv_next)
    if (ty__conn_same_addr(o, c)) {
      n++;
      if (!o->proven && o->state == TY__CONN_OPEN) *unproven = o;
    }
  return n;
}

/* Whether c's descriptor shows the process near its RLIMIT_NOFILE (read
 * at each accept: prlimit may change it): the kernel gives the lowest free
 * number, so every one below it is taken, and a number within the reserve
 * of the limit leaves the rest too few to serve more connections. Past the
 * limit libuv would drop connections unseen (its EMFILE trick). */
static bool near_fd_limit(const ty_rpc_conn *c, char *why, size_t len) {
  uv_os_fd_t fd;
  struct rlimit rl;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
      rl.rlim_cur == RLIM_INFINITY)
    return false;
  rlim_t reserve = rl.rlim_cur / 4 < FD_RESERVE_MAX ? rl.rlim_cur / 4 : FD_RESERVE_MAX;
  if ((rlim_t)fd + reserve < rl.rlim_cur) return false;
  snprintf(why, len,
           "descriptor %d is within %u of the process's descriptor limit (RLIMIT_NOFILE %llu)",
           (int)fd, (unsigned)reserve, (unsigned long long)rl.rlim_cur);
  return true;
}

/* The oldest open conn whose peer never proved itself (ty_rpc_conn_proven),
 * or NULL. */
static ty_rpc_conn *oldest_unproven(const ty_rpc_server *s) {
  ty_rpc_conn *found = NULL;
  for (ty_rpc_conn *o = s->conns; o; o = o->srv_next)
    if (!o->proven && o->state == TY__CONN_OPEN) found = o;
  return found;
}

/* Why c may not be served (a sentence), or NULL. At any cap (connections,
 * per address, near the descriptor limit) the oldest connection of this
 * server that never had a request admitted makes room for c instead, so
 * peers that never send one, from one address or from many, lock no one
 * out. */
static const char *over_limits(ty_rpc_server *s, const ty_rpc_conn *c, char *why, size_t len) {
  const ty_rpc_limits *l = &s->opts.limits;
  ty_conn_stats *st = l->stats;
  ty_rpc_conn *unproven;
  if (s->n_conns >= l->max_conns && (unproven = oldest_unproven(s))) {
    ty__conn_evict(unproven, "the server is at its connection limit (--max-conns)");
    return NULL;
  }
  if (s->n_conns >= l->max_conns) {
    if (st) st->refused_total++;
    snprintf(why, len, "%zu connections are open, the limit (--max-conns)", s->n_conns);
    return why;
  }
  bool near = near_fd_limit(c, why, len); /* one getrlimit per connection */
  if (near && (unproven = oldest_unproven(s))) {
    /* c's descriptor is open already; the evicted one's frees the next. */
    ty__conn_evict(unproven, "the server is near the process's descriptor limit");
    return NULL;
  }
  if (near) {
    if (st) st->refused_total++;
    return why;
  }
  size_t same = conns_from(s, c, &unproven);
  if (same >= l->max_conns_per_addr && unproven) {
    ty__conn_evict(unproven, "its address is at the connection limit (--max-conns-per-addr)");
    return NULL;
  }
  if (same >= l->max_conns_per_addr) {
    if (st) st->refused_per_addr++;
    snprintf(why, len, "%zu connections from this %s are open, the limit (--max-conns-per-addr)",
             same, s->local ? "user" : "address");
    return why;
  }
  return NULL;
}

static void on_connection(uv_stream_t *listener, int status) {
  ty_rpc_server *s = container_of((uv_tcp_t *)listener, ty_rpc_server, listen);
  ty_conn_stats *st = s->opts.limits.stats;
  char why[160];
  if (status < 0) {
    if (st) st->refused_error++;
    snprintf(why, sizeof why, "accept failed: %s", ty_strerror(status));
    log_refusal(s, "(unknown)", why);
    return;
  }
  ty_rpc_conn *c;
  int rc = ty__conn_create(s->loop, &s->opts, s->local, &c);
  if (rc < 0) {
    /* Take the connection off the backlog anyway, with nobody to serve it. */
    union {
      uv_tcp_t tcp;
      uv_pipe_t pipe;
    } *drop = malloc(sizeof *drop);
    int irc = !drop      ? TY_ENOMEM
              : s->local ? uv_pipe_init(s->loop, &drop->pipe, 0)
                         : uv_tcp_init(s->loop, &drop->tcp);
    if (irc == 0) {
      uv_accept(listener, (uv_stream_t *)drop);
      uv_close((uv_handle_t *)drop, free_handle);
    } else {
      free(drop);
    }
    if (st) st->refused_error++;
    log_refusal(s, "(unknown)", "out of memory for a connection");
    return;
  }
  rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
  if (rc == 0) rc = ty__conn_start(c);
  const char *refusal = rc < 0 ? NULL : over_limits(s, c, why, sizeof why);
  if (rc < 0 || refusal) {
    if (rc < 0) {
      if (st) st->refused_error++;
      snprintf(why, sizeof why, "accept failed: %s", ty_strerror(rc));
    }
    c->delivered = false; /* never the user's: no on_close */
    log_refusal(s, c->peer, why);
    if (refusal)
      ty__conn_refuse(c, why); /* the client learns why, not just "connection closed" */
    else
      ty__conn_begin_close(c, rc, false);
    return;
  }
  c->server = s;
  c->srv_next = s->conns;
  if (s->conns) s->conns->srv_prev = c;
  s->conns = c;
  s->n_conns++;
  ty__conn_admitted(c);
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
  if (s->local) return 0;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = uv_tcp_getsockname(&s->listen, (struct sockaddr *)&ss, &len);
  if (rc < 0) return rc;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void apply_defaults(ty_rpc_limits *l) {
  if (!l->max_conns) l->max_conns = TY_RPC_MAX_CONNS_DEFAULT;
  if (!l->max_conns_per_addr) l->max_conns_per_addr = TY_RPC_MAX_CONNS_PER_ADDR_DEFAULT;
  if (!l->max_queued_total) l->max_queued_total = TY_RPC_MAX_QUEUED_TOTAL_DEFAULT;
}

static void free_server(uv_handle_t *h) {
  ty_rpc_server *s = h->data;
  if (--s->open_handles == 0) free(s);
}

static void close_server(ty_rpc_server *s) {
  if (s->local) ty__unix_release(&s->owner);
  s->listen.data = s->serve.data = s;
  uv_close((uv_handle_t *)&s->listen_un, free_server);
  uv_close((uv_handle_t *)&s->serve, free_server);
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
  apply_defaults(&s->opts.limits);
  s->on_accept = on_accept;
  s->ud = ud;
  rc = uv_tcp_init(loop, &s->listen);
  if (rc < 0) {
    free(s);
    return rc;
  }
  uv_idle_init(loop, &s->serve);
  s->open_handles = 2;
  rc = uv_tcp_bind(&s->listen, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listen, SOMAXCONN, on_connection);
  if (rc == 0) rc = bound_port(s);
  if (rc < 0) goto fail;
  s->port = rc;
  snprintf(s->where, sizeof s->where, "port %d", s->port);
  *out_server = s;
  return 0;
fail:
  close_server(s);
  return rc;
}

int ty_rpc_server_create_unix(uv_loop_t *loop, const char *path, const ty_rpc_conn_opts *opts,
                              ty_rpc_accept_cb on_accept, void *ud, ty_rpc_server **out_server,
                              char *err, size_t err_len) {
  if (!loop || !path || !ty__rpc_is_path(path) || !out_server)
    return ty_errf(err, err_len, TY_EINVAL, "the socket path \"%s\" is not absolute",
                   path ? path : "");
  ty_rpc_server *s = calloc(1, sizeof *s);
  if (!s) return ty_errf(err, err_len, TY_ENOMEM, "out of memory");
  s->loop = loop;
  s->local = true;
  if (opts) s->opts = *opts;
  apply_defaults(&s->opts.limits);
  s->on_accept = on_accept;
  s->ud = ud;
  snprintf(s->where, sizeof s->where, "socket %s", path);
  int rc = uv_pipe_init(loop, &s->listen_un, 0);
  if (rc < 0) {
    free(s);
    return ty_errf(err, err_len, rc, "%s: %s", path, ty_strerror(rc));
  }
  uv_idle_init(loop, &s->serve);
  s->open_handles = 2;
  rc = ty__unix_bind(&s->listen_un, path, &s->owner, err, err_len);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listen_un, SOMAXCONN, on_connection);
  if (rc < 0) {
    if (!err[0]) ty_errf(err, err_len, rc, "cannot listen on %s: %s", path, ty_strerror(rc));
    close_server(s);
    return rc;
  }
  *out_server = s;
  return 0;
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
  close_server(s);
}

/* ---- flags ------------------------------------------------------------------- */

int ty_rpc_limits_parse_flag(ty_rpc_limits *l, int id, const char *value, char *err,
                             size_t err_len) {
  static const struct {
    int id;
    const char *flag;
    unsigned long min, max;
  } flags[] = {
      {TY_RPC_OPT_MAX_CONNS, "--max-conns", 1, 1000000},
      {TY_RPC_OPT_MAX_CONNS_PER_ADDR, "--max-conns-per-addr", 1, 1000000},
      {TY_RPC_OPT_MAX_INFLIGHT, "--max-inflight", 1, 1000000},
      {TY_RPC_OPT_HANDSHAKE_MS, "--handshake-timeout-ms", 1, 3600000},
      {TY_RPC_OPT_IDLE_MS, "--idle-timeout-ms", 1, 86400000},
  };
  size_t i = 0;
  while (i < TY_ARRAY_LEN(flags) && flags[i].id != id)
    i++;
  if (i == TY_ARRAY_LEN(flags)) return 1;
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(value, &end, 10);
  if (errno || end == value || *end || value[0] == '-' || v < flags[i].min || v > flags[i].max)
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not a number from %lu to %lu",
                   flags[i].flag, value, flags[i].min, flags[i].max);
  uint32_t *fields[] = {&l->max_conns, &l->max_conns_per_addr, &l->max_inflight, &l->handshake_ms,
                        &l->idle_ms};
  *fields[i] = (uint32_t)v;
  return 0;
}
