/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/metrics: a Prometheus metric registry, its text exposition (format
 * 0.0.4), and a small HTTP server on the daemon's libuv loop that answers
 * GET /metrics. Everything runs on the loop thread; nothing locks.
 *
 * Families are created once at start-up; series are created on first use of
 * a label-value combination. Gauges that mirror state (jobs by state) are
 * recomputed by a collect callback just before each scrape.
 */
#ifndef TY_LIB_METRICS_METRICS_H
#define TY_LIB_METRICS_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "lib/base/base.h"

typedef struct ty_metrics ty_metrics;
typedef struct ty_metric ty_metric;

ty_metrics *ty_metrics_create(void);
void ty_metrics_destroy(ty_metrics *m); /* accepts NULL */

/* `labels` is a comma-separated list of label names ("method,status") or NULL.
 * Names must be valid Prometheus names; the registry owns the family. */
ty_metric *ty_metrics_counter(ty_metrics *m, const char *name, const char *help, const char *labels);
ty_metric *ty_metrics_gauge(ty_metrics *m, const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets, ascending; +Inf is implied. */
ty_metric *ty_metrics_histogram(ty_metrics *m, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t n_bounds);

/* `values` holds one value per label name, in order (NULL when no labels). */
void ty_metric_inc(ty_metric *f, const char *const *values, double by);
void ty_metric_set(ty_metric *f, const char *const *values, double v);
void ty_metric_observe(ty_metric *f, const char *const *values, double v);
/* Drops every series of a family (for gauges rebuilt on each collect). */
void ty_metric_clear(ty_metric *f);

/* Called before every render, on the loop thread. */
void ty_metrics_on_collect(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud), void *ud);
/* Appends the text exposition of every family to out. */
int ty_metrics_render(ty_metrics *m, ty_buf *out);

/* Adds process_cpu_seconds_total, process_resident_memory_bytes and
 * process_start_time_seconds, read from /proc/self at collect time. */
void ty_metrics_add_process(ty_metrics *m);

typedef struct ty_metrics_http ty_metrics_http;
/* Serves GET /metrics on host:port (0 = ephemeral) from the given registry. */
int ty_metrics_http_start(uv_loop_t *loop, const char *host, int port, ty_metrics *m,
                          ty_metrics_http **out_server);
int ty_metrics_http_port(const ty_metrics_http *s);
void ty_metrics_http_stop(ty_metrics_http *s); /* accepts NULL; frees after close */

#endif
