/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A deliberately small HTTP/1.1 server for GET /metrics on the daemon's
 * libuv loop. The workload is one Prometheus scrape every few seconds per
 * server, so simplicity and bounded memory matter more than throughput.
 *
 * Why no HTTP library: Debian 12 has no llhttp package, and http-parser is
 * unmaintained upstream; the only request we serve has no body, so parsing
 * a request head (request line + header lines) is ~150 lines here and can
 * reject everything unusual outright.
 *
 * Bounds: a connection holds at most one request head (HEAD_MAX bytes) and
 * one response. Reading stops while a response is written, so a client that
 * pipelines requests but never reads cannot grow anything; a single timer
 * closes a connection that takes more than IO_TIMEOUT_MS to send a head or
 * to take a response. At most MAX_CONNS connections are served; more are
 * accepted and closed at once.
 *
 * Connection life: READING -> WRITING -> READING (keep-alive) ... and, when
 * the connection must end after a response, WRITING -> LINGER: the write
 * side is shut down and input is discarded until the peer closes or
 * LINGER_MS passes, so the peer reads the response instead of a reset.
 * CLOSING waits for both handles' close callbacks before freeing.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/metrics/metrics_internal.h"

#define HEAD_MAX 8192
#define MAX_CONNS 64
#define IO_TIMEOUT_MS 30000
#define LINGER_MS 2000

enum { ST_READING, ST_WRITING, ST_LINGER, ST_CLOSING };

typedef struct conn {
  uv_tcp_t tcp; /* first: handle->data is not needed to find the conn */
  uv_timer_t timer;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  struct ty_metrics_http *server;
  struct conn *prev, *next;
  int state;
  int keep_alive; /* after the response in flight */
  int pending_closes;
  size_t in_len;
  ty_buf out_head, out_body;
  char in[HEAD_MAX];
} conn;

struct ty_metrics_http {
  uv_tcp_t listener; /* first */
  ty_metrics *metrics;
  int port;
  int listener_closed;
  size_t n_conns;
  conn *conns;
};

typedef struct request {
  int method; /* M_GET, M_HEAD, M_OTHER */
  int is_metrics;
  int http10;
  int conn_close, conn_keep_alive;
  int has_host;
  long long content_length; /* -1 when absent */
} request;

enum { M_GET, M_HEAD, M_OTHER };

/* ---- request head parsing (pure) ---------------------------------------- */

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "GET /metrics HTTP/1.1" (no CRLF). */
static int parse_request_line(const char *p, size_t len, request *r) {
  size_t i = 0;
  while (i < len && is_tchar((unsigned char)p[i]))
    i++;
  if (i == 0 || i > 16 || i >= len || p[i] != ' ') return -1;
  r->method = (i == 3 && memcmp(p, "GET", 3) == 0)    ? M_GET
              : (i == 4 && memcmp(p, "HEAD", 4) == 0) ? M_HEAD
                                                      : M_OTHER;
  size_t t0 = ++i;
  while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7F)
    i++;
  size_t tlen = i - t0;
  if (tlen == 0 || i >= len || p[i] != ' ') return -1;
  const char *t = p + t0;
  r->is_metrics = tlen >= 8 && memcmp(t, "/metrics", 8) == 0 && (tlen == 8 || t[8] == '?');
  i++;
  if (len - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0) return -1;
  if (p[i + 7] != '0' && p[i + 7] != '1') return -1;
  r->http10 = p[i + 7] == '0';
  return 0;
}

static int token_in_list(const char *v, size_t len, const char *tok) {
  size_t tl = strlen(tok), i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t s = i;
    while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
      i++;
    if (i - s == tl && strncasecmp(v + s, tok, tl) == 0) return 1;
  }
  return 0;
}

static int parse_content_length(const char *v, size_t len, request *r) {
  long long n = 0;
  if (len == 0 || len > 15) return -1;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    n = n * 10 + (v[i] - '0');
  }
  if (r->content_length >= 0 && r->content_length != n) return -1;
  r->content_length = n;
  return 0;
}

/* "Name: value" (no CRLF). */
static int parse_header(const char *p, size_t len, request *r) {
  size_t i = 0;
  while (i < len && is_tchar((unsigned char)p[i]))
    i++;
  if (i == 0 || i >= len || p[i] != ':') return -1; /* also rejects obs-fold */
  size_t nlen = i++;
  while (i < len && (p[i] == ' ' || p[i] == '\t'))
    i++;
  size_t end = len;
  while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t'))
    end--;
  for (size_t k = i; k < end; k++) {
    unsigned char c = (unsigned char)p[k];
    if ((c < 0x20 && c != '\t') || c == 0x7F) return -1;
  }
  const char *v = p + i;
  size_t vlen = end - i;
  if (nlen == 4 && strncasecmp(p, "host", 4) == 0) {
    if (r->has_host) return -1;
    r->has_host = 1;
  } else if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
    r->conn_close |= token_in_list(v, vlen, "close");
    r->conn_keep_alive |= token_in_list(v, vlen, "keep-alive");
  } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
    return parse_content_length(v, vlen, r);
  } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
    return -1; /* a body we would have to decode; no request here has one */
  }
  return 0;
}

/* Parses head[0..len), which ends with the blank line's CRLF CRLF. */
static int parse_head(const char *head, size_t len, request *r) {
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  size_t pos = 0;
  for (int first = 1;; first = 0) {
    const char *eol = memchr(head + pos, '\r', len - pos);
    if (!eol || (size_t)(eol - head) + 1 >= len || eol[1] != '\n') return -1;
    size_t llen = (size_t)(eol - (head + pos));
    if (memchr(head + pos, '\n', llen) || memchr(head + pos, '\0', llen)) return -1;
    if (llen == 0) break; /* the blank line */
    int rc = first ? parse_request_line(head + pos, llen, r) : parse_header(head + pos, llen, r);
    if (rc != 0) return -1;
    pos += llen + 2;
  }
  if (!r->http10 && !r->has_host) return -1;
  return 0;
}

/* ---- connections --------------------------------------------------------- */

static void maybe_free_server(ty_metrics_http *s) {
  if (s->listener_closed && s->n_conns == 0) free(s);
}

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->pending_closes > 0) return;
  ty_metrics_http *s = c->server;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  ty_buf_close(&c->out_head);
  ty_buf_close(&c->out_body);
  free(c);
  maybe_free_server(s);
}

static void conn_close(conn *c) {
  if (c->state == ST_CLOSING) return;
  c->state = ST_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timer(uv_timer_t *t) {
  conn_close(t->data);
}

static void arm_timer(conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn *c = h->data;
  if (c->state == ST_LINGER) { /* input is discarded: reuse the whole buffer */
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
    c->state = ST_READING;
    arm_timer(c, IO_TIMEOUT_MS);
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
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  default:
    return "Internal Server Error";
  }
}

/* Writes status line, headers and (unless HEAD) the body in out_body. */
static void conn_respond(conn *c, int code, int head_only, const char *content_type) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  int rc = ty_buf_printf(&c->out_head,
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                         "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                         code, reason(code), date, content_type, c->out_body.len,
                         code == 405 ? "Allow: GET, HEAD\r\n" : "",
                         c->keep_alive ? "keep-alive" : "close");
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
  arm_timer(c, IO_TIMEOUT_MS);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, n, on_write) != 0) conn_close(c);
}

static void respond_text(conn *c, int code, int head_only, const char *text) {
  if (ty_buf_printf(&c->out_body, "%s\n", text) != 0) {
    conn_close(c);
    return;
  }
  conn_respond(c, code, head_only, "text/plain; charset=utf-8");
}

static void handle_request(conn *c, const request *r) {
  c->keep_alive = r->http10 ? r->conn_keep_alive && !r->conn_close : !r->conn_close;
  if (r->content_length > 0) c->keep_alive = 0; /* we do not read bodies */
  int head_only = r->method == M_HEAD;
  if (!r->is_metrics) {
    respond_text(c, 404, head_only, "not found; metrics are at /metrics");
  } else if (r->method == M_OTHER) {
    respond_text(c, 405, 0, "method not allowed; use GET");
  } else if (ty_metrics_render(c->server->metrics, &c->out_body) != 0) {
    ty_buf_close(&c->out_body);
    c->keep_alive = 0;
    respond_text(c, 500, head_only, "out of memory rendering metrics");
  } else {
    conn_respond(c, 200, head_only, "text/plain; version=0.0.4; charset=utf-8");
  }
}

/* Answers the next complete request head in c->in, if there is one. */
static void conn_process(conn *c) {
  if (c->state != ST_READING) return;
  size_t skip = 0; /* RFC 9112 2.2: ignore empty lines before a request */
  while (c->in_len - skip >= 2 && c->in[skip] == '\r' && c->in[skip + 1] == '\n')
    skip += 2;
  if (skip) memmove(c->in, c->in + skip, c->in_len - skip), c->in_len -= skip;
  /* A head ends at CRLF CRLF; a bare LF LF ends it too, so that parse_head
   * can reject the bare LFs at once rather than wait for 8 KiB. */
  const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
  const char *lf = memmem(c->in, c->in_len, "\n\n", 2);
  size_t term = 4;
  if (lf && (!end || lf < end)) end = lf, term = 2;
  if (!end) {
    if (c->in_len >= sizeof c->in) {
      c->keep_alive = 0;
      respond_text(c, 400, 0, "request head larger than 8 KiB");
    }
    return;
  }
  size_t head_len = (size_t)(end - c->in) + term;
  request r;
  int bad = parse_head(c->in, head_len, &r) != 0;
  memmove(c->in, c->in + head_len, c->in_len - head_len);
  c->in_len -= head_len;
  if (bad) {
    c->keep_alive = 0;
    respond_text(c, 400, 0, "malformed request");
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
  if (c->state != ST_READING) return; /* LINGER discards */
  c->in_len += (size_t)n;
  conn_process(c);
}

static void on_connection(uv_stream_t *listener, int status) {
  ty_metrics_http *s = (ty_metrics_http *)listener;
  if (status < 0) {
    ty_warn("metrics http: accept: %s", ty_strerror(status));
    return;
  }
  conn *c = ty_xcalloc(1, sizeof *c);
  c->server = s;
  c->pending_closes = 2;
  c->tcp.data = c->timer.data = c;
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  c->state = ST_READING;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > MAX_CONNS) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  arm_timer(c, IO_TIMEOUT_MS);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

/* ---- server -------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h) {
  ty_metrics_http *s = (ty_metrics_http *)h;
  s->listener_closed = 1;
  maybe_free_server(s);
}

static int bind_listen(ty_metrics_http *s, const char *host, int port) {
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

int ty_metrics_http_start(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          ty_metrics_http **out_server) {
  if (out_server) *out_server = NULL;
  if (!loop || !host || !m || !out_server || port < 0 || port > 65535) {
    ty_error("metrics http: %s is missing or out of range", !loop         ? "loop"
                                                            : !host       ? "host"
                                                            : !m          ? "registry"
                                                            : !out_server ? "out_server"
                                                                          : "port");
    return TY_EINVAL;
  }
  ty_metrics_http *s = ty_xcalloc(1, sizeof *s);
  s->metrics = m;
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

int ty_metrics_http_port(const ty_metrics_http *s) {
  return s ? s->port : -1;
}

void ty_metrics_http_stop(ty_metrics_http *s) {
  if (!s || uv_is_closing((uv_handle_t *)&s->listener)) return;
  for (conn *c = s->conns; c; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
