/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for lib/metrics/registry.c: the exact text exposition of each metric
 * type (labels, escaping, value spellings), histogram bucket arithmetic,
 * series order, clear, collect callbacks, and every rejected registration.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/metrics/metrics.h"
#include "proto/methods.h"

/* Renders m into a NUL-terminated heap string the caller frees. */
static char *render(ty_metrics *m) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_metrics_render(m, &b), 0);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

static void expect_render(ty_metrics *m, const char *want) {
  char *got = render(m);
  cr_expect_str_eq(got, want);
  free(got);
}

Test(metrics_registry, counter_with_labels) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *c = ty_metrics_counter(m, "trainyard_rpc_requests_total", "RPC requests handled.",
                                    "method, status");
  cr_assert_not_null(c);
  const char *a[] = {TY_M_SUBMIT_JOB, "ok"}, *b[] = {TY_M_CANCEL_JOB, "not_found"};
  ty_metric_inc(c, a, 1);
  ty_metric_inc(c, a, 2);
  ty_metric_inc(c, b, 1);
  expect_render(m, "# HELP trainyard_rpc_requests_total RPC requests handled.\n"
                   "# TYPE trainyard_rpc_requests_total counter\n"
                   "trainyard_rpc_requests_total{method=\"CancelJob\",status=\"not_found\"} 1\n"
                   "trainyard_rpc_requests_total{method=\"SubmitJob\",status=\"ok\"} 3\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, unlabelled_counter_renders_zero_before_use) {
  ty_metrics *m = ty_metrics_create();
  ty_metrics_counter(m, "trainyard_restarts_total", "Restarts.", NULL);
  expect_render(m, "# HELP trainyard_restarts_total Restarts.\n"
                   "# TYPE trainyard_restarts_total counter\n"
                   "trainyard_restarts_total 0\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, label_value_and_help_escaping) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g =
      ty_metrics_gauge(m, "trainyard_queue_jobs", "Jobs per queue.\nBack\\slash \"q\".", "queue");
  const char *v[] = {"a\\b\"c\nd"};
  ty_metric_set(g, v, 2);
  expect_render(m, "# HELP trainyard_queue_jobs Jobs per queue.\\nBack\\\\slash \"q\".\n"
                   "# TYPE trainyard_queue_jobs gauge\n"
                   "trainyard_queue_jobs{queue=\"a\\\\b\\\"c\\nd\"} 2\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, invalid_utf8_label_value_is_replaced) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_x", "x", "user");
  const char *v[] = {"a\xff"
                     "b"};
  ty_metric_set(g, v, 1);
  ty_metric_set(g, v, 2); /* the same series, not a second one */
  expect_render(m, "# HELP trainyard_x x\n# TYPE trainyard_x gauge\n"
                   "trainyard_x{user=\"a\xEF\xBF\xBD"
                   "b\"} 2\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, null_label_value_is_empty) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_x", "x", "a,b");
  const char *v[] = {NULL, "y"};
  ty_metric_inc(g, v, 1);
  expect_render(m,
                "# HELP trainyard_x x\n# TYPE trainyard_x gauge\ntrainyard_x{a=\"\",b=\"y\"} 1\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, gauge_values_and_special_spellings) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_v", "v", "k");
  const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"}, *d[] = {"d"}, *e[] = {"e"}, *f[] = {"f"};
  ty_metric_set(g, a, INFINITY);
  ty_metric_set(g, b, -INFINITY);
  ty_metric_set(g, c, NAN);
  ty_metric_set(g, d, 0.1);
  ty_metric_set(g, e, 5);
  ty_metric_inc(g, e, -7.5); /* gauges may go down */
  ty_metric_set(g, f, 1e300);
  expect_render(m, "# HELP trainyard_v v\n# TYPE trainyard_v gauge\n"
                   "trainyard_v{k=\"a\"} +Inf\n"
                   "trainyard_v{k=\"b\"} -Inf\n"
                   "trainyard_v{k=\"c\"} NaN\n"
                   "trainyard_v{k=\"d\"} 0.1\n"
                   "trainyard_v{k=\"e\"} -2.5\n"
                   "trainyard_v{k=\"f\"} 1e+300\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, values_round_trip_exactly) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_v", "v", NULL);
  double want = 0.1 + 0.2; /* needs 17 digits */
  ty_metric_set(g, NULL, want);
  char *got = render(m);
  char *sp = strrchr(got, ' ');
  cr_assert_not_null(sp);
  cr_expect_eq(strtod(sp + 1, NULL), want);
  free(got);
  ty_metrics_destroy(m);
}

Test(metrics_registry, histogram_buckets_are_cumulative_and_le_inclusive) {
  ty_metrics *m = ty_metrics_create();
  const double bounds[] = {0.1, 0.5, 1};
  ty_metric *h = ty_metrics_histogram(m, "trainyard_rpc_duration_seconds", "RPC latency.", "method",
                                      bounds, 3);
  cr_assert_not_null(h);
  const char *v[] = {"Ping"};
  ty_metric_observe(h, v, 0.05);
  ty_metric_observe(h, v, 0.1); /* on the bound: counts in le="0.1" */
  ty_metric_observe(h, v, 0.75);
  ty_metric_observe(h, v, 5);
  expect_render(m, "# HELP trainyard_rpc_duration_seconds RPC latency.\n"
                   "# TYPE trainyard_rpc_duration_seconds histogram\n"
                   "trainyard_rpc_duration_seconds_bucket{method=\"Ping\",le=\"0.1\"} 2\n"
                   "trainyard_rpc_duration_seconds_bucket{method=\"Ping\",le=\"0.5\"} 2\n"
                   "trainyard_rpc_duration_seconds_bucket{method=\"Ping\",le=\"1\"} 3\n"
                   "trainyard_rpc_duration_seconds_bucket{method=\"Ping\",le=\"+Inf\"} 4\n"
                   "trainyard_rpc_duration_seconds_sum{method=\"Ping\"} 5.9\n"
                   "trainyard_rpc_duration_seconds_count{method=\"Ping\"} 4\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, histogram_without_labels_or_bounds) {
  ty_metrics *m = ty_metrics_create();
  const double inf[] = {INFINITY};
  ty_metric *h = ty_metrics_histogram(m, "trainyard_h_seconds", "h", NULL, inf, 1);
  cr_assert_not_null(h);
  ty_metric_observe(h, NULL, 3);
  ty_metric_observe(h, NULL, NAN); /* lands in +Inf, as in the client libraries */
  expect_render(m, "# HELP trainyard_h_seconds h\n# TYPE trainyard_h_seconds histogram\n"
                   "trainyard_h_seconds_bucket{le=\"+Inf\"} 2\n"
                   "trainyard_h_seconds_sum NaN\n"
                   "trainyard_h_seconds_count 2\n");
  ty_metrics_destroy(m);
}

/* A touched series is exported at 0 before its first event, of every
 * kind; touching one that exists changes nothing. */
Test(metrics_registry, touch_creates_series_at_zero) {
  ty_metrics *m = ty_metrics_create();
  const double bounds[] = {1, 10};
  ty_metric *h = ty_metrics_histogram(m, "trainyard_wait_seconds", "w", "queue", bounds, 2);
  ty_metric *c = ty_metrics_counter(m, "trainyard_ends_total", "e", "queue,state");
  cr_assert(h && c);
  const char *q[] = {"gpu"}, *qs[] = {"gpu", "FAILED"};
  ty_metric_touch(h, q);
  ty_metric_touch(c, qs);
  ty_metric_touch(c, NULL); /* a labelled family without values: ignored */
  expect_render(m, "# HELP trainyard_wait_seconds w\n# TYPE trainyard_wait_seconds histogram\n"
                   "trainyard_wait_seconds_bucket{queue=\"gpu\",le=\"1\"} 0\n"
                   "trainyard_wait_seconds_bucket{queue=\"gpu\",le=\"10\"} 0\n"
                   "trainyard_wait_seconds_bucket{queue=\"gpu\",le=\"+Inf\"} 0\n"
                   "trainyard_wait_seconds_sum{queue=\"gpu\"} 0\n"
                   "trainyard_wait_seconds_count{queue=\"gpu\"} 0\n"
                   "# HELP trainyard_ends_total e\n# TYPE trainyard_ends_total counter\n"
                   "trainyard_ends_total{queue=\"gpu\",state=\"FAILED\"} 0\n");
  ty_metric_observe(h, q, 5);
  ty_metric_inc(c, qs, 2);
  ty_metric_touch(h, q);
  ty_metric_touch(c, qs);
  char *text = render(m);
  cr_assert(strstr(text, "trainyard_wait_seconds_count{queue=\"gpu\"} 1\n"), "%s", text);
  cr_assert(strstr(text, "trainyard_ends_total{queue=\"gpu\",state=\"FAILED\"} 2\n"), "%s", text);
  free(text);
  ty_metric_touch(NULL, q); /* a failed registration: nothing */
  ty_metrics_destroy(m);
}

Test(metrics_registry, default_buckets_are_ascending) {
  size_t n = 0;
  const double *b = ty_metrics_default_buckets(&n);
  cr_assert_gt(n, 1);
  for (size_t i = 1; i < n; i++)
    cr_expect_gt(b[i], b[i - 1]);
  ty_metrics *m = ty_metrics_create();
  cr_expect_not_null(ty_metrics_histogram(m, "trainyard_d_seconds", "d", NULL, b, n));
  ty_metrics_destroy(m);
}

Test(metrics_registry, families_in_registration_order_series_sorted) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *z = ty_metrics_gauge(m, "trainyard_z", "z", "k");
  ty_metric *a = ty_metrics_gauge(m, "trainyard_a", "a", NULL);
  const char *k3[] = {"c"}, *k1[] = {"a"}, *k2[] = {"b"};
  ty_metric_set(z, k3, 3);
  ty_metric_set(z, k1, 1);
  ty_metric_set(z, k2, 2);
  ty_metric_set(a, NULL, 9);
  expect_render(m, "# HELP trainyard_z z\n# TYPE trainyard_z gauge\n"
                   "trainyard_z{k=\"a\"} 1\ntrainyard_z{k=\"b\"} 2\ntrainyard_z{k=\"c\"} 3\n"
                   "# HELP trainyard_a a\n# TYPE trainyard_a gauge\ntrainyard_a 9\n");
  ty_metrics_destroy(m);
}

Test(metrics_registry, many_series_stay_sorted_and_distinct) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *c = ty_metrics_counter(m, "trainyard_n_total", "n", "i");
  char v[16];
  const char *vals[] = {v};
  for (int round = 0; round < 2; round++)
    for (int i = 999; i >= 0; i--) {
      snprintf(v, sizeof v, "%04d", (i * 7919) % 1000);
      ty_metric_inc(c, vals, 1);
    }
  char *out = render(m);
  size_t lines = 0;
  const char *prev = NULL;
  for (char *p = strstr(out, "trainyard_n_total{"); p; p = strstr(p + 1, "trainyard_n_total{")) {
    cr_expect(strncmp(p + 25, "\"} 2\n", 5) == 0, "every series counted twice");
    if (prev) cr_expect_lt(strncmp(prev, p, 25), 0);
    prev = p;
    lines++;
  }
  cr_expect_eq(lines, 1000);
  free(out);
  ty_metrics_destroy(m);
}

Test(metrics_registry, clear_drops_series_and_allows_new_ones) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_jobs", "Jobs by state.", "state");
  const char *r[] = {"running"}, *p[] = {"pending"};
  ty_metric_set(g, r, 4);
  ty_metric_set(g, p, 2);
  ty_metric_clear(g);
  expect_render(m, "# HELP trainyard_jobs Jobs by state.\n# TYPE trainyard_jobs gauge\n");
  ty_metric_set(g, p, 1);
  expect_render(m, "# HELP trainyard_jobs Jobs by state.\n# TYPE trainyard_jobs gauge\n"
                   "trainyard_jobs{state=\"pending\"} 1\n");
  ty_metric *u = ty_metrics_gauge(m, "trainyard_u", "u", NULL);
  ty_metric_set(u, NULL, 5);
  ty_metric_clear(u);
  ty_metric_inc(u, NULL, 1); /* recreated from zero */
  char *out = render(m);
  cr_expect(strstr(out, "trainyard_u 1\n") != NULL, "%s", out);
  free(out);
  ty_metrics_destroy(m);
}

typedef struct {
  ty_metric *g;
  int calls;
} collect_state;

static void collect(ty_metrics *m, void *ud) {
  (void)m;
  collect_state *st = ud;
  st->calls++;
  ty_metric_clear(st->g);
  const char *v[] = {"running"};
  ty_metric_set(st->g, v, st->calls);
}

Test(metrics_registry, collect_runs_before_each_render) {
  ty_metrics *m = ty_metrics_create();
  collect_state st = {ty_metrics_gauge(m, "trainyard_jobs", "Jobs by state.", "state"), 0};
  ty_metrics_on_collect(m, collect, &st);
  free(render(m));
  char *out = render(m);
  cr_expect_eq(st.calls, 2);
  cr_expect(strstr(out, "trainyard_jobs{state=\"running\"} 2\n") != NULL, "%s", out);
  free(out);
  ty_metrics_destroy(m);
}

Test(metrics_registry, render_appends) {
  ty_metrics *m = ty_metrics_create();
  ty_metrics_gauge(m, "trainyard_a", "a", NULL);
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_append(&b, "X", 1);
  cr_assert_eq(ty_metrics_render(m, &b), 0);
  cr_expect_eq(b.data[0], 'X');
  cr_expect_eq(ty_metrics_render(NULL, &b), TY_EINVAL);
  ty_buf_close(&b);
  ty_metrics_destroy(m);
}

/* ---- rejections ---------------------------------------------------------- */

Test(metrics_registry, rejects_invalid_metric_names) {
  ty_metrics *m = ty_metrics_create();
  cr_expect_null(ty_metrics_counter(m, NULL, "h", NULL));
  cr_expect_null(ty_metrics_counter(m, "", "h", NULL));
  cr_expect_null(ty_metrics_counter(m, "1abc_total", "h", NULL));
  cr_expect_null(ty_metrics_gauge(m, "trainyard-jobs", "h", NULL));
  cr_expect_null(ty_metrics_gauge(m, "trainyard jobs", "h", NULL));
  cr_expect_not_null(ty_metrics_gauge(m, "trainyard:rule:ratio", "recording-rule style", NULL));
  cr_expect_null(ty_metrics_gauge(NULL, "trainyard_x", "h", NULL));
  ty_metrics_destroy(m);
}

Test(metrics_registry, rejects_invalid_label_names) {
  ty_metrics *m = ty_metrics_create();
  cr_expect_null(ty_metrics_counter(m, "trainyard_a_total", "h", "method,sta-tus"));
  cr_expect_null(ty_metrics_counter(m, "trainyard_b_total", "h", "0abc"));
  cr_expect_null(ty_metrics_counter(m, "trainyard_c_total", "h", "__name"));
  cr_expect_null(ty_metrics_counter(m, "trainyard_d_total", "h", "a:b"));
  cr_expect_null(ty_metrics_counter(m, "trainyard_e_total", "h", "a,,b"));
  cr_expect_null(ty_metrics_counter(m, "trainyard_f_total", "h", "a,b,a"));
  const double b[] = {1};
  cr_expect_null(ty_metrics_histogram(m, "trainyard_g_seconds", "h", "le", b, 1));
  /* after failures, the names are still free */
  cr_expect_not_null(ty_metrics_counter(m, "trainyard_a_total", "h", "method,status"));
  ty_metrics_destroy(m);
}

Test(metrics_registry, rejects_duplicate_names) {
  ty_metrics *m = ty_metrics_create();
  cr_expect_not_null(ty_metrics_counter(m, "trainyard_a_total", "h", NULL));
  cr_expect_null(ty_metrics_counter(m, "trainyard_a_total", "h", NULL));
  cr_expect_null(ty_metrics_gauge(m, "trainyard_a_total", "h", "x"));
  ty_metrics_destroy(m);
}

Test(metrics_registry, rejects_bad_bounds) {
  ty_metrics *m = ty_metrics_create();
  const double desc[] = {1, 0.5}, dup[] = {1, 1}, nan[] = {NAN}, ninf[] = {-INFINITY, 1},
               mid_inf[] = {1, INFINITY, 2};
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, desc, 2));
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, dup, 2));
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, nan, 1));
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, ninf, 2));
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, mid_inf, 3));
  cr_expect_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, NULL, 2));
  cr_expect_not_null(ty_metrics_histogram(m, "trainyard_a_seconds", "h", NULL, NULL, 0));
  ty_metrics_destroy(m);
}

Test(metrics_registry, misuse_is_ignored) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *c = ty_metrics_counter(m, "trainyard_c_total", "c", NULL);
  ty_metric *l = ty_metrics_counter(m, "trainyard_l_total", "l", "k");
  const double b[] = {1};
  ty_metric *h = ty_metrics_histogram(m, "trainyard_h_seconds", "h", NULL, b, 1);
  ty_metric_inc(c, NULL, 2);
  ty_metric_inc(c, NULL, -1);  /* counters never go down */
  ty_metric_inc(c, NULL, NAN); /* nor become NaN */
  ty_metric_observe(c, NULL, 1);
  ty_metric_inc(l, NULL, 1); /* values missing for a labelled family */
  ty_metric_inc(h, NULL, 1);
  ty_metric_set(h, NULL, 1);
  ty_metric_inc(NULL, NULL, 1);
  ty_metric_set(NULL, NULL, 1);
  ty_metric_observe(NULL, NULL, 1);
  ty_metric_clear(NULL);
  ty_metrics_on_collect(m, NULL, NULL);
  expect_render(
      m, "# HELP trainyard_c_total c\n# TYPE trainyard_c_total counter\ntrainyard_c_total 2\n"
         "# HELP trainyard_l_total l\n# TYPE trainyard_l_total counter\n"
         "# HELP trainyard_h_seconds h\n# TYPE trainyard_h_seconds histogram\n"
         "trainyard_h_seconds_bucket{le=\"1\"} 0\n"
         "trainyard_h_seconds_bucket{le=\"+Inf\"} 0\n"
         "trainyard_h_seconds_sum 0\ntrainyard_h_seconds_count 0\n");
  ty_metrics_destroy(m);
  ty_metrics_destroy(NULL);
}

Test(metrics_registry, series_cap_drops_new_combinations) {
  ty_metrics *m = ty_metrics_create();
  ty_metric *g = ty_metrics_gauge(m, "trainyard_x", "x", "id");
  char v[16];
  const char *vals[] = {v};
  for (int i = 0; i < TY_METRICS_MAX_SERIES + 10; i++) {
    snprintf(v, sizeof v, "%d", i);
    ty_metric_set(g, vals, 1);
  }
  snprintf(v, sizeof v, "%d", 0);
  ty_metric_set(g, vals, 42); /* existing series still update */
  char *out = render(m);
  size_t n = 0;
  for (char *p = strstr(out, "trainyard_x{"); p; p = strstr(p + 1, "trainyard_x{"))
    n++;
  cr_expect_eq(n, TY_METRICS_MAX_SERIES);
  cr_expect(strstr(out, "trainyard_x{id=\"0\"} 42\n") != NULL);
  free(out);
  ty_metrics_destroy(m);
}
