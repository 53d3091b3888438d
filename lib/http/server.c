/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A deliberately small HTTP/1.1 server for GET /metrics on the daemon's
 * libuv loop (and, with a handler, for the controller's read-only web
 * console: same limits, same parser, pages from the handler). The
 * workload is one Prometheus scrape every few seconds per server, so
 * simplicity and bounded memory matter more than throughput.
 *
 * Why no HTTP library: Debian 12 has no llhttp package, and http-parser is
 * unmaintained upstream; the only request we serve has no body, so parsing
 * a request head (request line + header lines) is ~150 lines
 * (parse.c) and can reject everything unusual outright.
 *
 * Bounds: a connection holds at most one request head (TY_HTTP_HEAD_MAX
 * bytes) and one response. Reading stops while a response is written, so a
 * client that pipelines requests but never reads cannot grow anything. One
 * timer per connection: HEAD_MS for a new connection's first request and
 * from the first byte of any head (so a head trickled a byte at a time
 * still has to finish), KEEPALIVE_MS between requests, WRITE_MS to take a
 * response. At most TY_HTTP_MAX_CONNS_PER_ADDR connections per peer
 * address: past it, that address's connection that has waited longest for
 * a request (or streams events) is closed to make room, and the new one is
 * closed at once only when all of them are being answered. At
 * TY_HTTP_MAX_CONNS in all, the connection that has waited longest for a
 * request is closed to make room (nginx reuses keep-alive connections the
 * same way), so idle and slow clients cannot lock a scraper out: a scrape
 * takes milliseconds and is never the oldest waiter. Refusals and evictions are counted in the
 * registry's "metrics" listener and logged at most once per 10 s; so are
 * requests answered 401 (a missing or wrong token), not logged.
 *
 * Connection life: READING -> WRITING -> READING (keep-alive) ... (a
 * handler that answers later puts DEFERRED before WRITING, for at most
 * WRITE_MS, reading paused as while writing; one that streams events puts
 * the connection in STREAM until either side ends it) and, when
 * the connection must end after a response, WRITING -> LINGER: the write
 * side is shut down and input is discarded until the peer closes or
 * LINGER_MS passes, so the peer reads the response instead of a reset.
 * CLOSING waits for both handles' close callbacks before freeing.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/http/http.h"

#define HEAD_MS 10000
#define KEEPALIVE_MS 30000
#define WRITE_MS 30000
#define LINGER_MS 2000
#define REFUSAL_LOG_MS 10000

#define STREAM_PING_MS 15000

enum { ST_READING, ST_DEFERRED, ST_WRITING, ST_STREAM, ST_LINGER, ST_CLOSING };

typedef struct conn {
  uv_tcp_t tcp; /* first: handle->data is not needed to find the conn */
  uv_timer_t timer;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  struct ty_http_server *server;
  struct conn *prev, *next;
  int state;
  int keep_alive; /* after the response in flight */
  int pending_closes;
  int counted; /* in stats->open */
  int served;  /* answered a request: a quiet wait is keep-alive idling */
  size_t in_len;
  uint64_t waiting_since; /* uv_now when it began waiting for a request */
  struct sockaddr_storage addr;
  struct ty_http_later *later; /* ST_DEFERRED: the handler's handle */
  int head_only;               /* the request being answered is a HEAD */
  /* ST_STREAM: the handler's handle, the bytes queued and those being
   * written (at most TY_HTTP_STREAM_BUF_MAX together), since when. */
  struct ty_http_stream *stream;
  ty_buf queued, sending;
  int writing;
  uint64_t write_started;
  ty_buf out_head, out_body;
  char in[TY_HTTP_HEAD_MAX];
} conn;

struct ty_http_server {
  uv_tcp_t listener; /* first */
  ty_metrics *metrics;
  ty_http_handler handler; /* NULL: this is the /metrics server */
  void *handler_ud;
  int port;
  int listener_closed;
  size_t n_conns;
  conn *conns;
  ty_conn_stats *stats;       /* the registry's; NULL without memory */
  ty_conn_stats no_stats;     /* counts nowhere when stats is NULL */
  uint64_t refused_unlogged;  /* refusals since the last log line */
  uint64_t refusal_logged_at; /* uv_now of that line; 0 = never */
  char *token;                /* owned; NULL: /metrics needs no credential */
  size_t token_len;
  const char *headers; /* borrowed: header lines of every answer ("" = none) */
};

/* ---- connections --------------------------------------------------------- */

static void maybe_free_server(ty_http_server *s) {
  if (s->listener_closed && s->n_conns == 0) {
    free(s->token);
    free(s);
  }
}

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->pending_closes > 0) return;
  ty_http_server *s = c->server;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  if (c->counted) s->stats->open--;
  ty_buf_close(&c->out_head);
  ty_buf_close(&c->out_body);
  ty_buf_close(&c->queued);
  ty_buf_close(&c->sending);
  free(c);
  maybe_free_server(s);
}

struct ty_http_later {
  conn *c; /* NULL once the connection closed */
  int head_only;
};

struct ty_http_stream {
  conn *c;
  ty_http_stream_closed on_closed; /* NULL once its owner ended it */
  void *ud;
};

static void conn_close(conn *c) {
  if (c->state == ST_CLOSING) return;
  if (c->later) c->later->c = NULL; /* its answer will be dropped */
  c->later = NULL;
  ty_http_stream *st = c->stream;
  c->stream = NULL;
  c->state = ST_CLOSING;
  if (st && st->on_closed) st->on_closed(st->ud); /* the owner forgets st */
  free(st);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void stream_ping(conn *c);

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  if (c->state == ST_STREAM && !(c->writing && uv_now(c->tcp.loop) - c->write_started > WRITE_MS)) {
    stream_ping(c);
    return;
  }
  if (c->state == ST_READING && c->served && c->in_len == 0)
    c->server->stats->closed_idle++;
  else if (c->state == ST_READING)
    c->server->stats->closed_handshake++;
  else if (c->state == ST_WRITING || c->state == ST_DEFERRED || c->state == ST_STREAM)
    c->server->stats->closed_stalled++;
  conn_close(c);
}

static void arm_timer(conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* READING: the connection now waits for a request, for at most ms. */
static void wait_for_request(conn *c, uint64_t ms) {
  c->state = ST_READING;
  c->waiting_since = uv_now(c->tcp.loop);
  arm_timer(c, ms);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn *c = h->data;
  if (c->state == ST_LINGER || c->state == ST_STREAM) { /* input is discarded: the whole buffer */
    *buf = uv_buf_init(c->in, sizeof c->in);
    return;
  }
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void conn_process(conn *c);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (status < 0) conn_close(c);
}

static void conn_linger(conn *c) {
  c->state = ST_LINGER;
  c->shutdown_req.data = c;
  arm_timer(c, LINGER_MS);
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  ty_buf_close(&c->out_head);
  ty_buf_close(&c->out_body);
  if (c->state == ST_CLOSING) return;
  if (status < 0) {
    conn_close(c);
  } else if (!c->keep_alive) {
    conn_linger(c);
  } else {
    wait_for_request(c, KEEPALIVE_MS);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      conn_close(c);
      return;
    }
    conn_process(c); /* a pipelined request may be waiting already */
  }
}

static const char *reason(int code) {
  switch (code) {
  case 200:
    return "OK";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 409:
    return "Conflict";
  case 503:
    return "Service Unavailable";
  default:
    return "Internal Server Error";
  }
}

static const char *server_headers(const ty_http_server *s) {
  return s->headers ? s->headers : "";
}

/* Writes status line, headers and (unless HEAD) the body in out_body;
 * `extra` holds more header lines (may be ""). */
static void conn_respond_with(conn *c, int code, int head_only, const char *content_type,
                              const char *extra) {
  if (code == 401 && c->server->stats) c->server->stats->unauthorized++;
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  int rc = ty_buf_printf(&c->out_head,
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                         "Content-Length: %zu\r\n%s%s%sConnection: %s\r\n\r\n",
                         code, reason(code), date, content_type, c->out_body.len,
                         code == 405 && !c->server->handler ? "Allow: GET, HEAD\r\n" : "", extra,
                         server_headers(c->server), c->keep_alive ? "keep-alive" : "close");
  if (rc != 0) {
    conn_close(c);
    return;
  }
  uv_buf_t bufs[2] = {uv_buf_init((char *)c->out_head.data, (unsigned)c->out_head.len),
                      uv_buf_init((char *)c->out_body.data, (unsigned)c->out_body.len)};
  unsigned n = head_only || c->out_body.len == 0 ? 1 : 2;
  c->state = ST_WRITING;
  c->write_req.data = c;
  uv_read_stop((uv_stream_t *)&c->tcp);
  arm_timer(c, WRITE_MS);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, n, on_write) != 0) conn_close(c);
}

static void conn_respond(conn *c, int code, int head_only, const char *content_type) {
  conn_respond_with(c, code, head_only, content_type, "");
}

static void respond_text(conn *c, int code, int head_only, const char *text) {
  if (ty_buf_printf(&c->out_body, "%s\n", text) != 0) {
    conn_close(c);
    return;
  }
  conn_respond(c, code, head_only, "text/plain; charset=utf-8");
}

static bool is_loopback(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
  if (a->ss_family != AF_INET6) return false;
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(v6)) return v6->s6_addr[12] == 127;
  return IN6_IS_ADDR_LOOPBACK(v6);
}

/* A handler's page: its status, type, headers and body, now or (deferred)
 * when the handler calls ty_http_later_answer. */
static void handle_page(conn *c, const ty_http_request *r, int head_only) {
  ty_http_server *s = c->server;
  ty_http_response resp = {
      .status = 500, .content_type = "text/plain; charset=utf-8", .body = &c->out_body, .conn_ = c};
  c->head_only = head_only;
  s->handler(s->handler_ud, r, is_loopback(&c->addr), &resp);
  /* Answered later, streaming, or closed (a stream that could not start). */
  if (resp.later_ || c->state == ST_STREAM || c->state == ST_CLOSING) return;
  if (resp.status != 200 && resp.status != 304) c->keep_alive = c->keep_alive && resp.status < 500;
  resp.headers[sizeof resp.headers - 1] = '\0';
  conn_respond_with(c, resp.status, head_only, resp.content_type ? resp.content_type : "text/plain",
                    resp.headers);
}

/* The connection waits (reading paused, for at most WRITE_MS) from now:
 * the handler's own call may answer before it returns. */
ty_http_later *ty_http_defer(ty_http_response *resp) {
  ty_http_later *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  conn *c = resp->conn_;
  l->c = c;
  l->head_only = c->head_only;
  resp->later_ = l;
  c->later = l;
  c->state = ST_DEFERRED;
  uv_read_stop((uv_stream_t *)&c->tcp);
  arm_timer(c, WRITE_MS);
  return l;
}

void ty_http_later_answer(ty_http_later *l, int status, const char *content_type, const char *body,
                          size_t len) {
  conn *c = l->c;
  int head_only = l->head_only;
  free(l);
  if (!c || c->state != ST_DEFERRED) return;
  c->later = NULL;
  if (len && ty_buf_append(&c->out_body, body, len) != 0) {
    conn_close(c);
    return;
  }
  if (status != 200) c->keep_alive = c->keep_alive && status < 500;
  conn_respond_with(c, status, head_only, content_type, "Cache-Control: no-store\r\n");
}

/* Whether the request carries the server's token: every byte of the token
 * is compared whatever the request sent, so the time taken says nothing of
 * how much of it was right. */
static bool token_ok(const ty_http_server *s, const ty_http_request *r) {
  size_t got = strnlen(r->token, sizeof r->token);
  unsigned char diff = got != s->token_len;
  for (size_t i = 0; i < s->token_len; i++)
    diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < got ? r->token[i] : 0);
  return diff == 0;
}

static void respond_unauthorized(conn *c, int head_only) {
  if (ty_buf_printf(&c->out_body, "%s\n",
                    "unauthorized: /metrics needs \"Authorization: Bearer TOKEN\" with the "
                    "token of the daemon's --metrics-token-file") != 0) {
    conn_close(c);
    return;
  }
  conn_respond_with(c, 401, head_only, "text/plain; charset=utf-8",
                    "WWW-Authenticate: Bearer realm=\"metrics\"\r\n");
}

static void handle_request(conn *c, const ty_http_request *r) {
  c->served = 1;
  c->keep_alive = r->http10 ? r->conn_keep_alive && !r->conn_close : !r->conn_close;
  if (r->content_length > 0) c->keep_alive = 0; /* we do not read bodies */
  int head_only = r->method == TY_HTTP_HEAD;
  if (c->server->handler) {
    handle_page(c, r, head_only);
  } else if (!r->is_metrics) {
    respond_text(c, 404, head_only, "not found; metrics are at /metrics");
  } else if (r->method != TY_HTTP_GET && r->method != TY_HTTP_HEAD) {
    respond_text(c, 405, 0, "method not allowed; use GET");
  } else if (c->server->token && !token_ok(c->server, r)) {
    respond_unauthorized(c, head_only);
  } else if (ty_metrics_render(c->server->metrics, &c->out_body) != 0) {
    ty_buf_close(&c->out_body);
    c->keep_alive = 0;
    respond_text(c, 500, head_only, "out of memory rendering metrics");
  } else {
    conn_respond(c, 200, head_only, "text/plain; version=0.0.4; charset=utf-8");
  }
}

/* ---- event streams ------------------------------------------------------ */

static void stream_flush(conn *c);

static void on_stream_write(uv_write_t *req, int status) {
  conn *c = req->data;
  c->sending.len = 0;
  c->writing = 0;
  if (c->state != ST_STREAM) return;
  if (status < 0)
    conn_close(c);
  else
    stream_flush(c);
}

/* Hands what is queued to the kernel, one write at a time. */
static void stream_flush(conn *c) {
  if (c->writing || c->queued.len == 0) return;
  ty_buf t = c->sending;
  c->sending = c->queued;
  c->queued = t;
  c->queued.len = 0;
  uv_buf_t b = uv_buf_init((char *)c->sending.data, (unsigned)c->sending.len);
  c->write_req.data = c;
  c->writing = 1;
  c->write_started = uv_now(c->tcp.loop);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_stream_write) != 0) conn_close(c);
}

/* Queues bytes within the bound; a client that far behind is closed. */
static int stream_queue(conn *c, const void *data, size_t len) {
  if (c->queued.len + c->sending.len + len > TY_HTTP_STREAM_BUF_MAX) {
    c->server->stats->closed_stalled++;
    return TY_ETOOBIG;
  }
  if (ty_buf_append(&c->queued, data, len) != 0) return TY_ENOMEM;
  stream_flush(c);
  return 0;
}

/* Every STREAM_PING_MS a comment line: proxies keep the connection, and a
 * peer that went away is found by the write's error. */
static void stream_ping(conn *c) {
  static const char ping[] = ": ping\n\n";
  if (stream_queue(c, ping, sizeof ping - 1) != 0) {
    conn_close(c);
    return;
  }
  arm_timer(c, STREAM_PING_MS);
}

ty_http_stream *ty_http_stream_start(ty_http_response *resp, ty_http_stream_closed on_closed,
                                     void *ud) {
  conn *c = resp->conn_;
  ty_http_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  *st = (ty_http_stream){c, on_closed, ud};
  char head[TY_HTTP_SERVER_HEADERS_MAX + 256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                   "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n"
                   "%sConnection: close\r\n\r\n",
                   server_headers(c->server));
  c->stream = st;
  c->state = ST_STREAM;
  c->keep_alive = 0;
  c->waiting_since = uv_now(c->tcp.loop); /* an evictable waiter, oldest first */
  if (stream_queue(c, head, (size_t)n) != 0) {
    st->on_closed = NULL; /* the caller learns it from NULL */
    conn_close(c);
    return NULL;
  }
  arm_timer(c, STREAM_PING_MS);
  return st;
}

int ty_http_stream_send(ty_http_stream *st, const void *data, size_t len) {
  int rc = stream_queue(st->c, data, len);
  if (rc != 0) {
    st->on_closed = NULL; /* the caller forgets st on the error */
    conn_close(st->c);
  }
  return rc;
}

void ty_http_stream_end(ty_http_stream *st) {
  st->on_closed = NULL;
  conn_close(st->c);
}

/* Answers the next complete request head in c->in, if there is one. */
static void conn_process(conn *c) {
  if (c->state != ST_READING) return;
  ty_http_request r;
  size_t used = 0;
  int rc = ty_http_parse(c->in, c->in_len, &r, &used);
  memmove(c->in, c->in + used, c->in_len - used);
  c->in_len -= used;
  if (rc == 0) return;
  if (rc < 0) {
    c->keep_alive = 0;
    c->server->stats->closed_protocol++;
    respond_text(c, 400, 0,
                 rc == TY_ETOOBIG ? "request head larger than 8 KiB" : "malformed request");
    return;
  }
  handle_request(c, &r);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  conn *c = st->data;
  if (n < 0) {
    conn_close(c); /* EOF or error: nothing half-read is worth answering */
    return;
  }
  if (c->state != ST_READING) return;                 /* LINGER discards */
  if (c->in_len == 0 && n > 0) arm_timer(c, HEAD_MS); /* a head began: it has HEAD_MS */
  c->in_len += (size_t)n;
  conn_process(c);
}

/* One line per REFUSAL_LOG_MS at most: the first refusal at once, later
 * ones summed into the next line. */
static void log_refusal(ty_http_server *s, const char *why) {
  s->refused_unlogged++;
  uint64_t now = uv_now(s->listener.loop);
  if (s->refusal_logged_at && now - s->refusal_logged_at < REFUSAL_LOG_MS) return;
  ty_warn("metrics http: refused %llu connection%s%s; the last: %s",
          (unsigned long long)s->refused_unlogged, s->refused_unlogged == 1 ? "" : "s",
          s->refusal_logged_at ? " since the last report" : "", why);
  s->refused_unlogged = 0;
  s->refusal_logged_at = now ? now : 1;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return false;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  return a->ss_family == AF_INET6 &&
         memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* Whether o may be closed to make room: it waits for a request or streams
 * events (a page's stream reconnects); one being answered is not. */
static bool evictable(const conn *o) {
  return o->state == ST_READING || o->state == ST_STREAM;
}

/* The one of a and b (either may be NULL) that began waiting first; b on a
 * tie, as the list runs newest first. */
static conn *older(conn *a, conn *b) {
  return !a || (b && b->waiting_since <= a->waiting_since) ? b : a;
}

/* Applies the caps to the newly accepted c (not yet on the list): false
 * when c must be closed. At the per-address cap that address's longest
 * waiter makes room, so one user's idle pages or event streams cannot lock
 * the others behind the same address (a proxy, loopback) out; at the total
 * cap the longest waiter of any address does. Only when every connection
 * concerned is being answered is c refused. */
static bool admit(ty_http_server *s, conn *c) {
  size_t live = 0, same = 0;
  conn *oldest = NULL, *oldest_same = NULL;
  for (conn *o = s->conns; o; o = o->next) {
    if (o->state == ST_CLOSING) continue;
    live++;
    bool mine = same_addr(&o->addr, &c->addr);
    same += mine;
    if (!evictable(o)) continue;
    oldest = older(oldest, o);
    if (mine) oldest_same = older(oldest_same, o);
  }
  if (same >= TY_HTTP_MAX_CONNS_PER_ADDR) {
    s->stats->refused_per_addr++; /* the evicted one, if any, is the refusal */
    if (!oldest_same) {
      log_refusal(s, "too many connections from one address, each being answered");
      return false;
    }
    log_refusal(s, "too many connections from one address; closed its one waiting longest");
    conn_close(oldest_same);
    return true; /* live went down by one: under the total cap */
  }
  if (live < TY_HTTP_MAX_CONNS) return true;
  if (!oldest) {
    s->stats->refused_total++;
    log_refusal(s, "every connection is busy writing a response");
    return false;
  }
  s->stats->refused_total++; /* the evicted one is the refusal */
  log_refusal(s, "all connections in use; closed the one waiting longest");
  conn_close(oldest);
  return true;
}

static void on_connection(uv_stream_t *listener, int status) {
  ty_http_server *s = (ty_http_server *)listener;
  if (status < 0) {
    s->stats->refused_error++;
    log_refusal(s, ty_strerror(status));
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    s->stats->refused_error++;
    log_refusal(s, "out of memory for a connection");
    return; /* the backlog keeps it; libuv asks again on the next event */
  }
  c->server = s;
  c->pending_closes = 2;
  c->tcp.data = c->timer.data = c;
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  int alen = sizeof c->addr;
  bool ok = uv_accept(listener, (uv_stream_t *)&c->tcp) == 0 &&
            uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addr, &alen) == 0 && admit(s, c);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  if (!ok) {
    c->state = ST_READING;
    conn_close(c);
    return;
  }
  s->stats->accepted++;
  s->stats->open++;
  c->counted = 1;
  uv_tcp_nodelay(&c->tcp, 1);
  wait_for_request(c, HEAD_MS);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

/* ---- server -------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h) {
  ty_http_server *s = (ty_http_server *)h;
  s->listener_closed = 1;
  maybe_free_server(s);
}

static int bind_listen(ty_http_server *s, const char *host, int port) {
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    ty_error("metrics http: host \"%s\" is not an IPv4 or IPv6 address", host);
    return TY_EINVAL;
  }
  int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
  if (rc != 0) {
    ty_error("metrics http: listen on %s:%d: %s", host, port, ty_strerror(rc));
    return rc;
  }
  int len = sizeof ss;
  rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
  if (rc != 0) return rc;
  s->port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                    : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

int ty_http_serve_metrics(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          ty_http_server **out_server) {
  return ty_http_serve(loop, host, port, m, "metrics", NULL, NULL, out_server);
}

int ty_http_serve(uv_loop_t *loop, const char *host, int port, ty_metrics *m, const char *listener,
                  ty_http_handler handler, void *ud, ty_http_server **out_server) {
  if (out_server) *out_server = NULL;
  if (!loop || !host || !m || !out_server || port < 0 || port > 65535) {
    ty_error("metrics http: %s is missing or out of range", !loop         ? "loop"
                                                            : !host       ? "host"
                                                            : !m          ? "registry"
                                                            : !out_server ? "out_server"
                                                                          : "port");
    return TY_EINVAL;
  }
  ty_http_server *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  s->metrics = m;
  s->handler = handler;
  s->handler_ud = ud;
  s->stats = ty_metrics_conn_stats(m, listener ? listener : "metrics");
  if (!s->stats) s->stats = &s->no_stats;
  s->stats->http = true;
  int rc = uv_tcp_init(loop, &s->listener);
  if (rc != 0) {
    free(s);
    return rc;
  }
  rc = bind_listen(s, host, port);
  if (rc != 0) {
    uv_close((uv_handle_t *)&s->listener, on_listener_closed); /* frees s */
    return rc;
  }
  *out_server = s;
  return 0;
}

int ty_http_server_require_token(ty_http_server *s, const char *token) {
  if (!s) return TY_EINVAL;
  if (token && token[0] && !ty_http_token_valid(token)) return TY_EINVAL;
  char *copy = NULL;
  if (token && token[0] && !(copy = strdup(token))) return TY_ENOMEM;
  free(s->token);
  s->token = copy;
  s->token_len = copy ? strlen(copy) : 0;
  return 0;
}

int ty_http_server_set_headers(ty_http_server *s, const char *lines) {
  if (!s || !lines || strlen(lines) > TY_HTTP_SERVER_HEADERS_MAX) return TY_EINVAL;
  s->headers = lines;
  return 0;
}

int ty_http_server_port(const ty_http_server *s) {
  return s ? s->port : -1;
}

void ty_http_server_stop(ty_http_server *s) {
  if (!s || uv_is_closing((uv_handle_t *)&s->listener)) return;
  for (conn *c = s->conns; c; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
