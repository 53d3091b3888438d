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
/* Creates the series for values at 0 (a histogram's: every bucket, sum and
 * count 0) when it does not exist yet; leaves an existing one as it is. So
 * a counter or histogram is exported before its first event, and
 * increase() and rate() see that first event. */
void ty_metric_touch(ty_metric *f, const char *const *values);
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

/* Adds trainyard_build_info{version="...",features="..."} 1: ty_version and
 * ty_build_features (lib/base/version.h). Twice on one registry adds it
 * once. */
void ty_metrics_add_build_info(ty_metrics *m);

/* Counters for one listener of the daemon ("rpc", "io", "metrics"),
 * exported as trainyard_connections{listener},
 * trainyard_connections_accepted_total, trainyard_connections_refused_total
 * {listener,reason} and trainyard_connections_closed_total{listener,reason}.
 * The registry owns the struct (valid until ty_metrics_destroy); pass it to
 * the listener's server (ty_rpc_limits.stats). The same name returns the
 * same struct. NULL when out of memory. */
ty_conn_stats *ty_metrics_conn_stats(ty_metrics *m, const char *listener);

#endif
