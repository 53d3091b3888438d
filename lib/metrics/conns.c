/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection counters of a daemon's listeners (the RPC port, the task I/O
 * port, /metrics itself), exported under one set of families with a
 * `listener` label:
 *
 *   trainyard_connections{listener}                  open now (gauge)
 *   trainyard_connections_accepted_total{listener}
 *   trainyard_connections_refused_total{listener,reason}   per_address, total, error
 *   trainyard_connections_closed_total{listener,reason}    handshake, idle, stalled, protocol
 *   trainyard_http_unauthorized_total{listener}            HTTP requests answered 401
 *                                                          (HTTP listeners only, from 0)
 *
 * The ty_conn_stats structs are owned by the registry, so a server may keep
 * updating them until it is stopped and a scrape never reads freed memory.
 * The servers count; the collect callback copies the counts into the
 * families just before each scrape.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/metrics/metrics_internal.h"

#define OPEN_NAME "trainyard_connections"

typedef struct listener {
  char *name;
  ty_conn_stats stats;
} listener;

typedef struct conn_metrics {
  ty_metric *open, *accepted, *refused, *closed, *unauthorized;
  listener **ls; /* each its own block: handed-out stats never move */
  size_t n;
} conn_metrics;

static void set1(ty_metric *f, const char *name, const char *reason, uint64_t v) {
  const char *labels[] = {name, reason};
  ty_metric_set(f, labels, (double)v);
}

static void collect_conns(ty_metrics *m, void *ud) {
  (void)m;
  const conn_metrics *cm = ud;
  for (size_t i = 0; i < cm->n; i++) {
    const char *n = cm->ls[i]->name;
    const ty_conn_stats *s = &cm->ls[i]->stats;
    set1(cm->open, n, NULL, s->open);
    set1(cm->accepted, n, NULL, s->accepted);
    set1(cm->refused, n, "per_address", s->refused_per_addr);
    set1(cm->refused, n, "total", s->refused_total);
    set1(cm->refused, n, "error", s->refused_error);
    set1(cm->closed, n, "handshake", s->closed_handshake);
    set1(cm->closed, n, "idle", s->closed_idle);
    set1(cm->closed, n, "stalled", s->closed_stalled);
    set1(cm->closed, n, "protocol", s->closed_protocol);
    set1(cm->closed, n, "unproven", s->closed_unproven);
    if (s->http) set1(cm->unauthorized, n, NULL, s->unauthorized);
  }
}

static void free_conns(void *ud) {
  conn_metrics *cm = ud;
  for (size_t i = 0; i < cm->n; i++) {
    free(cm->ls[i]->name);
    free(cm->ls[i]);
  }
  free(cm->ls);
  free(cm);
}

/* The registry's conn_metrics, registered on first use; NULL without memory. */
static conn_metrics *conn_metrics_of(ty_metrics *m) {
  conn_metrics *cm = ty__metrics_collector_ud(m, collect_conns);
  if (cm) return cm;
  cm = calloc(1, sizeof *cm);
  if (!cm) return NULL;
  cm->open = ty_metrics_gauge(m, OPEN_NAME, "Connections open, by listener.", "listener");
  cm->accepted = ty_metrics_counter(m, "trainyard_connections_accepted_total",
                                    "Connections admitted, by listener.", "listener");
  cm->refused = ty_metrics_counter(m, "trainyard_connections_refused_total",
                                   "Connections refused at accept: over the per-address or "
                                   "total cap, or the accept failed.",
                                   "listener,reason");
  cm->closed = ty_metrics_counter(m, "trainyard_connections_closed_total",
                                  "Connections closed by a limit: handshake deadline, idle "
                                  "timeout, a peer that stopped reading, bad input.",
                                  "listener,reason");
  cm->unauthorized = ty_metrics_counter(m, "trainyard_http_unauthorized_total",
                                        "HTTP requests answered 401 Unauthorized: no token, or "
                                        "a wrong one.",
                                        "listener");
  ty__metrics_on_collect_owned(m, collect_conns, cm, free_conns);
  return cm;
}

ty_conn_stats *ty_metrics_conn_stats(ty_metrics *m, const char *listener_name) {
  if (!m || !listener_name) return NULL;
  conn_metrics *cm = conn_metrics_of(m);
  if (!cm) return NULL;
  for (size_t i = 0; i < cm->n; i++)
    if (strcmp(cm->ls[i]->name, listener_name) == 0) return &cm->ls[i]->stats;
  listener **ls = realloc(cm->ls, (cm->n + 1) * sizeof *ls);
  if (!ls) return NULL;
  cm->ls = ls;
  listener *l = calloc(1, sizeof *l);
  if (l) l->name = strdup(listener_name);
  if (!l || !l->name) {
    free(l);
    return NULL;
  }
  cm->ls[cm->n++] = l;
  return &l->stats;
}
