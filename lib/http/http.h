/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/http: the small HTTP/1.1 server that daemons run on their libuv
 * loop: GET /metrics from a lib/metrics registry (traind and
 * trainworkerd), and, with a handler, the controller's web console (its
 * pages, JSON API, deferred answers and server-sent event streams). Also
 * the request-head parser, pure, for tests and the fuzzer.
 *
 * Everything runs on the loop thread; nothing locks. Connection counters
 * (accepted, refused, closed, by listener) live in the registry
 * (ty_metrics_conn_stats), so /metrics reports this server's own load.
 */
#ifndef TY_LIB_HTTP_HTTP_H
#define TY_LIB_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/base/base.h"
#include "lib/metrics/metrics.h"

/* ---- The server ----------------------------------------------------------
 * HTTP/1.1 with keep-alive and pipelining. GET or HEAD /metrics (a query
 * string is ignored) -> 200 text/plain; version=0.0.4; other methods on
 * /metrics -> 405; other paths -> 404; a malformed request, a request head
 * over 8 KiB, a missing Host (HTTP/1.1) or a Transfer-Encoding -> 400 and
 * close. Each connection buffers at most one request head and one response
 * (reading pauses while a response is written). A new connection must send
 * its request head within 10 s, a started head must be complete 10 s after
 * its first byte, a kept-alive connection may wait 30 s for the next one and
 * a response must be taken within 30 s. At most 16 connections per address
 * are served: a 17th replaces that address's connection that has waited
 * longest for a request or streams events (it is closed at once only when
 * all 16 are being answered); at the cap of 256 in all, a new connection
 * replaces the one that has waited longest for a request, so a scraper
 * gets through however many idle or slow clients hold connections.
 * The counters are the registry's ("metrics" listener). */
#define TY_HTTP_HEAD_MAX 8192
#define TY_HTTP_MAX_CONNS 256
#define TY_HTTP_MAX_CONNS_PER_ADDR 16

#define TY_HTTP_TARGET_MAX 1024 /* a longer request target is malformed */
#define TY_HTTP_TOKEN_MAX 128   /* a longer bearer token is bad */

enum { TY_HTTP_GET, TY_HTTP_HEAD, TY_HTTP_POST, TY_HTTP_OTHER };

/* A parsed request head (only what the server needs from it). */
typedef struct ty_http_request {
  int method;           /* TY_HTTP_GET, TY_HTTP_HEAD, TY_HTTP_POST, TY_HTTP_OTHER */
  char method_name[17]; /* as sent ("PUT"): 1 to 16 token characters */
  bool is_metrics;
  bool http10;
  bool conn_close, conn_keep_alive;
  bool has_host;
  /* The Host header names this machine by a loopback name: localhost,
   * 127.x.x.x or [::1], with any port. A page whose own name an attacker
   * rebinds to 127.0.0.1 (DNS rebinding) sends its own name instead. */
  bool host_loopback;
  long long content_length;        /* -1 when absent */
  char target[TY_HTTP_TARGET_MAX]; /* "/path?query", as sent (NUL-terminated) */
  /* "Authorization: Bearer X"; "" = none. No cookie is read: a cookie goes
   * to every port of its host, to other services than this one. */
  char token[TY_HTTP_TOKEN_MAX];
  /* Why a token that was sent could not be taken (too long, an odd
   * character, an Authorization other than Bearer): NULL when none was
   * sent or it was taken. A token that came must not pass for none. */
  const char *token_bad;
  /* An "X-Requested-With" header came: a page's own script sent it (a form
   * or another site cannot without a CORS preflight, which is refused). */
  bool requested_with;
} ty_http_request;

/* The server's parser, pure (for tests and the fuzzer). Looks for one
 * request head at the start of buf[0..len), after any empty lines. Returns
 * 1 with *out filled, 0 when the head is not complete yet, TY_EPROTO when
 * it is malformed, TY_ETOOBIG when TY_HTTP_HEAD_MAX bytes hold no complete
 * head. *out_used is the bytes to drop: the empty lines, plus the head when
 * one was found (whole or malformed). */
int ty_http_parse(const char *buf, size_t len, ty_http_request *out, size_t *out_used);
typedef struct ty_http_server ty_http_server;
/* Serves GET /metrics on host:port (0 = ephemeral) from the given registry.
 * `host` is an IPv4 or IPv6 literal ("127.0.0.1", "::"). The registry is
 * borrowed: stop the server before destroying it. */
int ty_http_serve_metrics(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          ty_http_server **out_server);
int ty_http_server_port(const ty_http_server *s);

/* ---- a bearer token on /metrics (--metrics-token-file) -------------------
 * With a token set, GET/HEAD /metrics is answered only to a request with
 * "Authorization: Bearer TOKEN" (Prometheus' `authorization:
 * credentials_file:`); without it, or with another, 401 with
 * "WWW-Authenticate: Bearer". The comparison takes the same time whatever
 * the request sent. The token is copied; NULL or "" leaves /metrics open
 * (the default). TY_EINVAL for a token the parser would not take (over
 * TY_HTTP_TOKEN_MAX - 1 bytes, or a character outside TY_HTTP_TOKEN_CHARS). */
#define TY_HTTP_TOKEN_MIN 16 /* a shorter token file is refused */
int ty_http_server_require_token(ty_http_server *s, const char *token);
/* Reads a bearer token from `path` (its first line; surrounding blanks and
 * the newline dropped) into out[len]. Refused, with err naming the file:
 * a file others may read or write (any of mode 007), one owned by neither
 * root nor this process's user, one that cannot be read, and a token
 * shorter than TY_HTTP_TOKEN_MIN, longer than TY_HTTP_TOKEN_MAX - 1 or
 * with a character outside A-Z a-z 0-9 and !#$%&'*+-.^_`|~/=. */
int ty_http_read_token_file(const char *path, char *out, size_t len, char *err, size_t errlen);
/* Whether `token` is one the request parser takes whole (as above). */
bool ty_http_token_valid(const char *token);

/* ---- other pages on the same server code ---------------------------------
 * A server whose requests go to a handler instead of the registry (the web
 * console's). The limits, deadlines and counters above apply alike; the
 * counters are the registry's `listener`. HEAD gets GET's headers without
 * the body; POST (without a body: a request with one is answered and the
 * connection closed) and every other method (TY_HTTP_OTHER, named in
 * method_name) go to the handler too. The handler's 405 carries the Allow
 * line it puts in its headers (the server adds none: only the handler
 * knows which methods a path takes). */
typedef struct ty_http_later ty_http_later;
typedef struct ty_http_response {
  int status;               /* 200, 303, 304, 400, 401, 403, 404, 405, 409, 500 or 503 */
  const char *content_type; /* static string */
  ty_buf *body;             /* append the body here (the server owns it) */
  char headers[256];        /* more header lines, each ending in "\r\n" */
  void *conn_;              /* the server's; see ty_http_defer */
  ty_http_later *later_;
} ty_http_response;
/* Called on the loop thread with the parsed head and whether the peer is a
 * loopback address (127.0.0.0/8 or ::1). It fills resp synchronously, or
 * calls ty_http_defer and answers later. */
typedef void (*ty_http_handler)(void *ud, const ty_http_request *req, bool loopback,
                                ty_http_response *resp);
/* Inside a handler: the answer comes later, through the handle returned
 * (the server stops reading the connection meanwhile, and closes it when
 * no answer came within 30 s). NULL without memory: then answer now. */
ty_http_later *ty_http_defer(ty_http_response *resp);
/* Sends the deferred answer (body: len bytes, copied; may be NULL with 0)
 * and frees the handle; the answer is dropped when the connection closed
 * meanwhile. Call it exactly once per handle, on the loop thread. */
void ty_http_later_answer(ty_http_later *l, int status, const char *content_type, const char *body,
                          size_t len);
/* Inside a handler (GET): answer 200 text/event-stream and keep the
 * connection to send server-sent events on. The connection then counts
 * against the same caps as any other, and at the total cap the longest
 * open stream may be closed like an idle connection (its client
 * reconnects). NULL without memory (then answer now). The
 * handle is valid until on_closed(ud) runs (the peer went, the server
 * stopped) or its owner ends it; on_closed runs on the loop thread. */
#define TY_HTTP_STREAM_BUF_MAX 65536 /* bytes queued per stream; more closes it */
typedef struct ty_http_stream ty_http_stream;
typedef void (*ty_http_stream_closed)(void *ud);
ty_http_stream *ty_http_stream_start(ty_http_response *resp, ty_http_stream_closed on_closed,
                                     void *ud);
/* Queues len bytes (whole events). TY_ETOOBIG when the client is
 * TY_HTTP_STREAM_BUF_MAX behind, TY_ENOMEM: the stream is then closed and
 * the handle gone (on_closed does not run). */
int ty_http_stream_send(ty_http_stream *st, const void *data, size_t len);
/* Ends the stream (on_closed does not run); the handle is gone. */
void ty_http_stream_end(ty_http_stream *st);
int ty_http_serve(uv_loop_t *loop, const char *host, int port, ty_metrics *m, const char *listener,
                  ty_http_handler handler, void *ud, ty_http_server **out_server);
/* Header lines (each ending in "\r\n") sent with every answer of this
 * server, streams and its own refusals included (the console's
 * anti-framing policy). Borrowed: a string that outlives the server.
 * TY_EINVAL for NULL or more than TY_HTTP_SERVER_HEADERS_MAX bytes. */
#define TY_HTTP_SERVER_HEADERS_MAX 512
int ty_http_server_set_headers(ty_http_server *s, const char *lines);
void ty_http_server_stop(ty_http_server *s); /* accepts NULL; frees after close */

#endif
