/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static memory report and liveness table: the executor's schedule and
 * pool run in simulation over the graph's inferred shapes with the batch
 * dim filled in (and the shape arithmetic run at that batch where import
 * left a dim unknown, as PyTorch's attention head split has it), so the
 * numbers are the ones a real run would produce (in its steady state: runs
 * are simulated until the buffers settle).
 */
#include "ops/memplan/memplan_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdlib.h>

/* Runs simulated until the pool's buffers stop changing: the buffers a
 * run leaves are the next run's to reassign, so training's steady state can
 * hold more than its first step. */
#define MAX_RUNS 8

static int plan_create(const ty_graph *g, const ty_memplan_opts *opts, ty__sched **out_s,
                       ty__mpool **out_p) {
  size_t nn = ty_graph_n_nodes(g);
  size_t *order = calloc(nn + 1, sizeof *order);
  if (!order) return TY_ENOMEM;
  ty_memplan_opts o = {0};
  if (opts) o = *opts;
  int rc = ty_graph_topo_order(g, order);
  if (rc == 0) rc = ty__sched_create(g, order, !o.no_fusion, o.keep_values, o.n_keep_values, out_s);
  free(order);
  if (rc != 0) return rc;
  if ((rc = ty__mpool_create(g, *out_s, true, out_p)) != 0) ty__sched_destroy(*out_s);
  return rc;
}

/* The graph at one batch: shapes import left unknown come from running
 * its shape arithmetic there (at, filled on first need; owned). */
typedef struct at_batch {
  const ty_graph *g;
  int64_t batch;
  ty_shape *at;
} at_batch;

static ty_shape value_shape(at_batch *b, int v) {
  ty_shape s = ty_shape_with_batch(&ty_graph_value_at(b->g, v)->shape, b->batch);
  if (ty_shape_is_concrete(&s)) return s;
  if (!b->at) {
    char e[TY_ERR_LEN];
    size_t n = ty_graph_n_values(b->g);
    if (!(b->at = calloc(n + 1, sizeof *b->at))) return s;
    for (size_t i = 0; i < n; i++)
      b->at[i].rank = TY_RANK_UNKNOWN;
    (void)ty__graph_shapes_at(b->g, b->batch, b->at, e, sizeof e); /* what it knows is kept */
  }
  return b->at[v];
}

static int simulate_step(at_batch *b, ty__mpool *p, const ty__step *st, size_t k, char *err,
                         size_t err_len) {
  for (int i = 0; i < st->n_writes; i++) {
    const ty_graph_value *v = ty_graph_value_at(b->g, st->writes[i]);
    ty_shape s = value_shape(b, st->writes[i]);
    if (!ty_shape_is_concrete(&s) || ty_dtype_size(v->dtype) == 0)
      return ty_errf(err, err_len, TY_EINVAL, "value \"%s\": shape or dtype not known statically",
                     v->name);
    ty_tensor *t;
    int rc = ty__mpool_alloc(p, k, st->writes[i], v->dtype, &s, &t);
    if (rc != 0) return ty_errf(err, err_len, rc, "value \"%s\": cannot plan", v->name);
  }
  ty__mpool_end_step(p, k);
  return 0;
}

int ty_memplan_report_graph(const ty_graph *g, int64_t batch, const ty_memplan_opts *opts,
                            char *err, size_t err_len, ty_memplan_report *out_report) {
  if (!g || !out_report || batch < 1)
    return ty_errf(err, err_len, TY_EINVAL, "batch: must be >= 1");
  ty__sched *s = NULL;
  ty__mpool *p = NULL;
  int rc = plan_create(g, opts, &s, &p);
  if (rc != 0) return ty_errf(err, err_len, rc, "cannot schedule the graph: %s", ty_strerror(rc));
  ty__mpool_stats st = {0};
  at_batch b = {.g = g, .batch = batch};
  for (int run = 0; run < MAX_RUNS && rc == 0; run++) {
    uint64_t before = st.bytes;
    size_t n_before = st.n_buffers;
    ty__mpool_begin(p);
    for (size_t k = 0; k < s->n_steps && rc == 0; k++)
      rc = simulate_step(&b, p, &s->steps[k], k, err, err_len);
    ty__mpool_get_stats(p, &st);
    if (run > 0 && st.bytes == before && st.n_buffers == n_before) break;
  }
  if (rc == 0) {
    *out_report = (ty_memplan_report){.unplanned_bytes = st.naive_bytes,
                                      .planned_bytes = st.bytes,
                                      .n_activations = st.n_values,
                                      .n_buffers = st.n_buffers,
                                      .n_inplace = st.n_inplace,
                                      .n_views = st.n_views,
                                      .n_steps = s->n_steps};
  }
  free(b.at);
  ty__mpool_destroy(p);
  ty__sched_destroy(s);
  return rc;
}

int ty_memplan_liveness(const ty_graph *g, const ty_memplan_opts *opts, ty_memplan_live *out_live,
                        size_t *out_n_steps) {
  if (!g || !out_live || !out_n_steps) return TY_EINVAL;
  ty__sched *s = NULL;
  ty__mpool *p = NULL;
  int rc = plan_create(g, opts, &s, &p);
  if (rc != 0) return rc;
  for (size_t v = 0; v < ty_graph_n_values(g); v++)
    out_live[v] = ty__mpool_live(p, (int)v);
  *out_n_steps = s->n_steps;
  ty__mpool_destroy(p);
  ty__sched_destroy(s);
  return 0;
}
