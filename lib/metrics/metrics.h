/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/metrics: a Prometheus metric registry, its text exposition (format
 * 0.0.4), and a small HTTP server on the daemon's libuv loop that answers
 * GET /metrics. Everything runs on the loop thread; nothing locks.
 *
 * Families are created once at start-up; series are created on first use of
 * a label-value combination. Gauges that mirror state (jobs by state) are
 * recomputed by a collect callback just before each scrape.
 *
 * ---- Metric conventions (for the README) --------------------------------
 * - Every Trainyard metric starts with `trainyard_`, then the subsystem:
 *   trainyard_rpc_requests_total, trainyard_sched_pass_duration_seconds,
 *   trainyard_jobs{state="running"}. The process_* family from
 *   ty_metrics_add_process() keeps the standard client-library names.
 * - Base units only, named as a suffix: seconds (not ms), bytes (not MiB),
 *   ratios as 0..1 (`_ratio`), temperatures in celsius. Timestamps are
 *   `_timestamp_seconds` since the Unix epoch.
 * - Counters end in `_total`; nothing else does. Histograms never end in
 *   `_total`, `_count`, `_sum` or `_bucket` (the exposition adds those).
 * - Labels are low-cardinality: method, status, queue, state, node. Never a
 *   timestamp. A job id (and its name) labels only series of running jobs
 *   that a collect callback rebuilds from the running set, so they go with
 *   the job and their number is bounded by what runs. A family holds at most
 *   TY_METRICS_MAX_SERIES series; further combinations are dropped with one
 *   warning.
 * - Durations use histograms with bounds in seconds
 *   (e.g. ty_metrics_default_buckets); mirrors of state use gauges that a
 *   collect callback clears and refills before each scrape.
 *
 * Ownership: the registry owns every family and series; a ty_metric pointer
 * stays valid until ty_metrics_destroy(). Label names and values, help
 * strings and bounds are copied. Family and series order in the exposition
 * is stable: families in registration order, series sorted by label values.
 */
#ifndef TY_LIB_METRICS_METRICS_H
#define TY_LIB_METRICS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/base/base.h"

/* New label combinations beyond this many per family are dropped. */
#define TY_METRICS_MAX_SERIES 10000

typedef struct ty_metrics ty_metrics;
typedef struct ty_metric ty_metric;

ty_metrics *ty_metrics_create(void);
void ty_metrics_destroy(ty_metrics *m); /* accepts NULL */

/* `labels` is a comma-separated list of label names ("method,status") or NULL.
 * Names must be valid Prometheus names; the registry owns the family.
 * Returns NULL (and logs the bad field) for an invalid metric or label name,
 * a duplicate label, a name already registered, or, for histograms, a label
 * named "le" or bounds that are not finite and strictly ascending. Every
 * ty_metric_* call accepts a NULL family and does nothing, so a failed
 * registration never crashes the caller. */
ty_metric *ty_metrics_counter(ty_metrics *m, const char *name, const char *help,
                              const char *labels);
ty_metric *ty_metrics_gauge(ty_metrics *m, const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets, ascending; +Inf is implied
 * (a trailing +Inf bound is accepted and ignored). */
ty_metric *ty_metrics_histogram(ty_metrics *m, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t n_bounds);

/* Bounds in seconds for request-like durations, 1 ms .. 10 s (the client
 * libraries' defaults); *out_n receives their count. Static storage. */
const double *ty_metrics_default_buckets(size_t *out_n);

/* `values` holds one value per label name, in order (NULL when no labels).
 * A NULL value stands for "". Invalid UTF-8 bytes are replaced by U+FFFD.
 * Misuse (inc on a histogram, observe on a counter or gauge, a negative or
 * NaN increment of a counter, NULL values for a labelled family) is ignored
 * with one warning per family. */
void ty_metric_inc(ty_metric *f, const char *const *values, double by);
/* Works on gauges, and on counters that mirror a count kept elsewhere
 * (process_cpu_seconds_total); ignored on histograms. */
void ty_metric_set(ty_metric *f, const char *const *values, double v);
void ty_metric_observe(ty_metric *f, const char *const *values, double v);
/* Drops every series of a family (for gauges rebuilt on each collect). */
void ty_metric_clear(ty_metric *f);

/* Called before every render, on the loop thread, in registration order. */
void ty_metrics_on_collect(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud), void *ud);
/* Runs the collect callbacks, then appends the text exposition of every
 * family to out. Returns 0 or TY_ENOMEM. */
int ty_metrics_render(ty_metrics *m, ty_buf *out);

/* Adds process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_start_time_seconds, process_open_fds
 * and process_max_fds, read from /proc/self at collect time. Calling it
 * twice on one registry adds them once. */
void ty_metrics_add_process(ty_metrics *m);

/* Counters for one listener of the daemon ("rpc", "io", "metrics"),
 * exported as trainyard_connections{listener},
 * trainyard_connections_accepted_total, trainyard_connections_refused_total
 * {listener,reason} and trainyard_connections_closed_total{listener,reason}.
 * The registry owns the struct (valid until ty_metrics_destroy); pass it to
 * the listener's server (ty_rpc_limits.stats). The same name returns the
 * same struct. NULL when out of memory. */
ty_conn_stats *ty_metrics_conn_stats(ty_metrics *m, const char *listener);

/* ---- HTTP ----------------------------------------------------------------
 * HTTP/1.1 with keep-alive and pipelining. GET or HEAD /metrics (a query
 * string is ignored) -> 200 text/plain; version=0.0.4; other methods on
 * /metrics -> 405; other paths -> 404; a malformed request, a request head
 * over 8 KiB, a missing Host (HTTP/1.1) or a Transfer-Encoding -> 400 and
 * close. Each connection buffers at most one request head and one response
 * (reading pauses while a response is written). A new connection must send
 * its request head within 10 s, a started head must be complete 10 s after
 * its first byte, a kept-alive connection may wait 30 s for the next one and
 * a response must be taken within 30 s. At most 16 connections per address
 * are served (more are closed at once); at the cap of 256 in all, a new
 * connection replaces the one that has waited longest for a request, so a
 * scraper gets through however many idle or slow clients hold connections.
 * The counters are the registry's ("metrics" listener). */
#define TY_HTTP_HEAD_MAX 8192
#define TY_HTTP_MAX_CONNS 256
#define TY_HTTP_MAX_CONNS_PER_ADDR 16

#define TY_HTTP_TARGET_MAX 1024          /* a longer request target is malformed */
#define TY_HTTP_TOKEN_MAX 128            /* a longer bearer token or cookie value is ignored */
#define TY_HTTP_COOKIE "trainyard_token" /* the cookie that carries the token */

enum { TY_HTTP_GET, TY_HTTP_HEAD, TY_HTTP_POST, TY_HTTP_OTHER };

/* A parsed request head (only what the server needs from it). */
typedef struct ty_http_request {
  int method; /* TY_HTTP_GET, TY_HTTP_HEAD, TY_HTTP_POST, TY_HTTP_OTHER */
  bool is_metrics;
  bool http10;
  bool conn_close, conn_keep_alive;
  bool has_host;
  long long content_length;        /* -1 when absent */
  char target[TY_HTTP_TARGET_MAX]; /* "/path?query", as sent (NUL-terminated) */
  /* "Authorization: Bearer X", else the TY_HTTP_COOKIE cookie; "" = none. */
  char token[TY_HTTP_TOKEN_MAX];
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
int ty_metrics_http_parse(const char *buf, size_t len, ty_http_request *out, size_t *out_used);
typedef struct ty_metrics_http ty_metrics_http;
/* Serves GET /metrics on host:port (0 = ephemeral) from the given registry.
 * `host` is an IPv4 or IPv6 literal ("127.0.0.1", "::"). The registry is
 * borrowed: stop the server before destroying it. */
int ty_metrics_http_start(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          ty_metrics_http **out_server);
int ty_metrics_http_port(const ty_metrics_http *s);

/* ---- other pages on the same server code ---------------------------------
 * A server whose requests go to a handler instead of the registry (the web
 * console's). The limits, deadlines and counters above apply alike; the
 * counters are the registry's `listener`. HEAD gets GET's headers without
 * the body; POST (without a body: a request with one is answered and the
 * connection closed) goes to the handler too; other methods are answered
 * 405 before the handler sees them. */
typedef struct ty_http_later ty_http_later;
typedef struct ty_http_response {
  int status;               /* 200, 304, 400, 401, 403, 404, 409, 500 or 503 */
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
 * open stream may be closed like an idle connection (a browser's
 * EventSource reconnects). NULL without memory (then answer now). The
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
int ty_metrics_http_serve(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          const char *listener, ty_http_handler handler, void *ud,
                          ty_metrics_http **out_server);
void ty_metrics_http_stop(ty_metrics_http *s); /* accepts NULL; frees after close */

#endif
