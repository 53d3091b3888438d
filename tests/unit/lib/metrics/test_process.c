/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for lib/metrics/process.c, and the promtool check: a realistic
 * registry with every metric type, labels, escaping and the process metrics
 * is rendered to a file and fed to `promtool check metrics`, which parses
 * the exposition and lints names, units and types. PROMTOOL (set by meson)
 * names the binary; without it the promtool tests skip.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/version.h"
#include "lib/metrics/metrics.h"
#include "proto/methods.h"

static char *render(ty_metrics *m) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_metrics_render(m, &b), 0);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

/* The value of the unlabelled sample `name`, or NAN when absent. */
static double sample(const char *text, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr(text, key);
  return p ? strtod(p + strlen(key), NULL) : NAN;
}

Test(metrics_process, reads_proc_self) {
  ty_metrics *m = ty_metrics_create();
  ty_metrics_add_process(m);
  ty_metrics_add_process(m); /* twice adds once */
  char *out = render(m);
  cr_expect(strstr(out, "# TYPE process_cpu_seconds_total counter\n") != NULL, "%s", out);
  cr_expect_eq(
      strstr(strstr(out, "process_cpu_seconds_total") + 1, "# HELP process_cpu_seconds_total"),
      NULL, "registered once");
  cr_expect_geq(sample(out, "process_cpu_seconds_total"), 0);
  cr_expect_gt(sample(out, "process_resident_memory_bytes"), 4096);
  cr_expect_geq(sample(out, "process_virtual_memory_bytes"),
                sample(out, "process_resident_memory_bytes"));
  double start = sample(out, "process_start_time_seconds");
  cr_expect_gt(start, 1e9, "start time is seconds since the epoch: %s", out);
  cr_expect_leq(start, (double)time(NULL) + 1);
  cr_expect_geq(sample(out, "process_open_fds"), 3);
  cr_expect(sample(out, "process_max_fds") != 0);
  free(out);
  ty_metrics_destroy(m);
}

/* The build's version and features, as --version prints them. */
Test(metrics_build_info, one_series_of_this_build) {
  ty_metrics *m = ty_metrics_create();
  ty_metrics_add_build_info(m);
  ty_metrics_add_build_info(m); /* twice adds once */
  char *out = render(m);
  char want[512];
  snprintf(want, sizeof want, "\ntrainyard_build_info{version=\"%s\",features=\"%s\"} 1\n",
           ty_version, ty_build_features);
  cr_expect(strstr(out, want) != NULL, "no %s in %s", want + 1, out);
  cr_expect(strstr(out, "# TYPE trainyard_build_info gauge\n") != NULL, "%s", out);
  cr_expect_neq(ty_version[0], '\0');
  free(out);
  ty_metrics_destroy(m);
}

Test(metrics_process, open_fds_follows_the_process) {
  ty_metrics *m = ty_metrics_create();
  ty_metrics_add_process(m);
  char *a = render(m);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  char *b = render(m);
  cr_expect_eq(sample(b, "process_open_fds"), sample(a, "process_open_fds") + 2);
  close(fds[0]), close(fds[1]);
  free(a), free(b);
  ty_metrics_destroy(m);
}

/* ---- promtool ------------------------------------------------------------ */

/* Runs `promtool check metrics < path`; returns its exit status and puts
 * what it printed into out. */
static int promtool_check(const char *path, char *out, size_t cap) {
  const char *promtool = getenv("PROMTOOL");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", promtool, path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

static int have_promtool(void) {
  const char *p = getenv("PROMTOOL");
  return p && *p;
}

static void fill_realistic(ty_metrics *m) {
  ty_metric *req =
      ty_metrics_counter(m, "trainyard_rpc_requests_total",
                         "RPC requests handled, by method and status.", "method,status");
  size_t nb;
  const double *b = ty_metrics_default_buckets(&nb);
  ty_metric *dur = ty_metrics_histogram(m, "trainyard_rpc_duration_seconds",
                                        "Time to handle an RPC, by method.", "method", b, nb);
  ty_metric *jobs =
      ty_metrics_gauge(m, "trainyard_jobs", "Jobs by queue and state.", "queue,state");
  ty_metric *bytes = ty_metrics_counter(m, "trainyard_checkpoint_written_bytes_total",
                                        "Checkpoint bytes written.", NULL);
  ty_metric *up = ty_metrics_gauge(m, "trainyard_node_last_heartbeat_timestamp_seconds",
                                   "When each node last sent a heartbeat.", "node");
  const char *ok[] = {TY_M_SUBMIT_JOB, "ok"}, *nf[] = {TY_M_CANCEL_JOB, "not_found"};
  ty_metric_inc(req, ok, 12);
  ty_metric_inc(req, nf, 1);
  const char *sj[] = {TY_M_SUBMIT_JOB};
  for (int i = 0; i < 50; i++)
    ty_metric_observe(dur, sj, 0.0007 * i);
  const char *q1[] = {"research \"A\"\\x\nline", "running"}, *q2[] = {"prod", "pending"};
  ty_metric_set(jobs, q1, 3);
  ty_metric_set(jobs, q2, 0);
  ty_metric_inc(bytes, NULL, 1.5e12);
  const char *n1[] = {"gpu-01"};
  ty_metric_set(up, n1, 1.7e9 + 0.25);
  ty_metrics_add_process(m);
}

Test(metrics_promtool, accepts_a_realistic_registry) {
  if (!have_promtool()) cr_skip_test("PROMTOOL not set");
  ty_metrics *m = ty_metrics_create();
  fill_realistic(m);
  char *text = render(m);
  char path[] = "/tmp/ty_metrics_promtool_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  write_file(path, text, strlen(text));
  char out[8192];
  int rc = promtool_check(path, out, sizeof out);
  cr_expect_eq(rc, 0, "promtool exit %d:\n%s\n--- exposition ---\n%s", rc, out, text);
  cr_expect_str_empty(out, "promtool reported:\n%s", out);
  unlink(path);
  free(text);
  ty_metrics_destroy(m);
}

/* A control: the check above would notice a problem (here, a counter whose
 * name lacks _total), so its passing means something. */
Test(metrics_promtool, reports_a_bad_exposition) {
  if (!have_promtool()) cr_skip_test("PROMTOOL not set");
  ty_metrics *m = ty_metrics_create();
  ty_metric *c = ty_metrics_counter(m, "trainyard_requests", "Requests.", NULL);
  ty_metric_inc(c, NULL, 1);
  char *text = render(m);
  char path[] = "/tmp/ty_metrics_promtool_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  write_file(path, text, strlen(text));
  char out[8192];
  cr_expect_neq(promtool_check(path, out, sizeof out), 0, "%s", out);
  unlink(path);
  free(text);
  ty_metrics_destroy(m);
}
