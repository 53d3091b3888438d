/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Observability (issue 16) against real daemons:
 *   - docs/metrics.md against what traind and trainworkerd expose: every
 *     family listed with its type and labels, nothing listed that is not
 *     exposed; the per-task and pending-by-reason series the test causes,
 *     and their removal when the job ends.
 *   - The build each daemon runs: `trainctl node show`'s Version= and
 *     trainyard_build_info, the string --version prints.
 *   - A real Prometheus (Debian's) scraping the cluster with
 *     deploy/alerts.yml loaded: every target up, job counts by state, a
 *     rate and histogram quantiles through its HTTP API, a rule going
 *     pending when a node goes DOWN.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/version.h"
#include "tests/integration/harness.h"

/* ---- the exposition and the doc, as (name, type, labels) rows ---------------------------- */

typedef struct family {
  char name[96], type[16], labels[160]; /* labels sorted, comma-separated */
  bool seen;
} family;

typedef struct family_set {
  family v[128];
  size_t n;
} family_set;

static family *set_find(family_set *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0) return &s->v[i];
  return NULL;
}

static family *set_add(family_set *s, const char *name, const char *type) {
  cr_assert_lt(s->n, TY_ARRAY_LEN(s->v));
  family *f = &s->v[s->n++];
  memset(f, 0, sizeof(*f));
  snprintf(f->name, sizeof(f->name), "%s", name);
  snprintf(f->type, sizeof(f->type), "%s", type);
  return f;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "b, a" or "a,b" -> "a,b"; "—" -> "". */
static void sort_labels(const char *in, char *out, size_t len) {
  char buf[160], *names[16];
  size_t n = 0;
  snprintf(buf, sizeof(buf), "%s", in);
  for (char *tok = strtok(buf, ", "); tok && n < 16; tok = strtok(NULL, ", "))
    if (strcmp(tok, "le") != 0 && strcmp(tok, "—") != 0) names[n++] = tok;
  qsort(names, n, sizeof(*names), cmp_str);
  out[0] = '\0';
  for (size_t i = 0; i < n; i++)
    snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", names[i]);
}

/* Label names of one sample line's {...}, values skipped with their escapes. */
static void sample_labels(const char *brace, char *out, size_t len) {
  char names[160] = "";
  const char *p = brace + 1;
  while (*p && *p != '}') {
    const char *eq = strchr(p, '=');
    cr_assert(eq && eq[1] == '"', "bad sample labels: %s", brace);
    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.*s", names[0] ? "," : "",
             (int)(eq - p), p);
    p = eq + 2;
    while (*p && *p != '"')
      p += (*p == '\\' && p[1]) ? 2 : 1;
    p++;
    if (*p == ',') p++;
  }
  sort_labels(names, out, len);
}

static void parse_exposition(const char *text, family_set *s) {
  char *copy = strdup(text), *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char name[96], type[16];
    if (sscanf(line, "# TYPE %95s %15s", name, type) == 2) {
      set_add(s, name, type);
      continue;
    }
    if (line[0] == '#') continue;
    size_t nlen = strcspn(line, "{ ");
    snprintf(name, sizeof(name), "%.*s", (int)nlen, line);
    family *f = set_find(s, name);
    for (const char *suf = "_bucket\0_count\0_sum\0"; !f && *suf; suf += strlen(suf) + 1) {
      size_t sl = strlen(suf);
      if (nlen > sl && strcmp(name + nlen - sl, suf) == 0) {
        name[nlen - sl] = '\0';
        f = set_find(s, name);
      }
    }
    cr_assert(f, "sample of an undeclared family: %s", line);
    char labels[160] = "";
    if (line[nlen] == '{') sample_labels(line + nlen, labels, sizeof(labels));
    if (f->seen)
      cr_assert_str_eq(labels, f->labels, "%s: series with different label names", f->name);
    snprintf(f->labels, sizeof(f->labels), "%s", labels);
    f->seen = true;
  }
  free(copy);
}

/* Rows "| `name` | type | labels | meaning |" under the "## <section>" heading. */
static void parse_doc(const char *doc, const char *section, family_set *s) {
  char head[64];
  snprintf(head, sizeof(head), "\n## %s", section);
  const char *p = strstr(doc, head);
  cr_assert(p, "docs/metrics.md has no section \"%s\"", section);
  const char *end = strstr(p + 1, "\n## ");
  for (p = strstr(p, "\n| `"); p && (!end || p < end); p = strstr(p + 1, "\n| `")) {
    char name[96], type[16], labels[160];
    cr_assert_eq(sscanf(p, "\n| `%95[^`]` | %15[a-z] | %159[^|]|", name, type, labels), 3,
                 "docs/metrics.md: a row that does not parse: %.80s", p + 1);
    family *f = set_add(s, name, type);
    sort_labels(labels, f->labels, sizeof(f->labels));
  }
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  cr_assert(f, "cannot open %s", path);
  ty_buf b;
  ty_buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    cr_assert_eq(ty_buf_append(&b, chunk, n), 0);
  fclose(f);
  cr_assert_eq(ty_buf_append(&b, "", 1), 0);
  return (char *)b.data;
}

/* Every exposed family documented alike, every documented one exposed. */
static void check_against_doc(const char *what, const char *text, const char *doc,
                              const char *section) {
  family_set exposed = {0}, documented = {0};
  parse_exposition(text, &exposed);
  parse_doc(doc, section, &documented);
  parse_doc(doc, "Both daemons", &documented);
  for (size_t i = 0; i < exposed.n; i++) {
    const family *e = &exposed.v[i];
    const family *d = set_find(&documented, e->name);
    cr_assert(d, "%s exposes %s, which docs/metrics.md does not list", what, e->name);
    cr_assert_str_eq(d->type, e->type, "%s: docs/metrics.md says %s, /metrics says %s", e->name,
                     d->type, e->type);
    if (e->seen)
      cr_assert_str_eq(d->labels, e->labels, "%s: labels: docs/metrics.md says {%s}, /metrics {%s}",
                       e->name, d->labels, e->labels);
  }
  for (size_t i = 0; i < documented.n; i++)
    cr_assert(set_find(&exposed, documented.v[i].name),
              "docs/metrics.md lists %s, which %s does not expose", documented.v[i].name, what);
}

/* The build a node runs, for a rolling upgrade: the worker reports its
 * version at registration, `trainctl node show` prints it (Version=), and
 * both daemons export trainyard_build_info with it: the string this build's
 * --version prints. */
Test(observe, node_show_and_metrics_name_the_build, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char *show = NULL, want[256];
  cr_assert_eq(it_trainctl(&c, &show, (const char *[]){"node", "show", c.name[0], NULL}), 0);
  snprintf(want, sizeof want, "\n  Version=%s\n", ty_version);
  cr_assert(strstr(show, want), "no \"%s\" in:\n%s", want + 1, show);
  free(show);
  snprintf(want, sizeof want, "trainyard_build_info{version=\"%s\",features=\"%s\"} ", ty_version,
           ty_build_features);
  char *ctl = it_http_get_metrics(c.metrics_port);
  char *wrk = it_http_get_metrics(c.worker_metrics_port[0]);
  cr_assert_eq(it_metric_in(ctl, want), 1, "traind: no %s1 in\n%s", want, ctl);
  cr_assert_eq(it_metric_in(wrk, want), 1, "trainworkerd: no %s1 in\n%s", want, wrk);
  free(ctl), free(wrk);
  it_cluster_stop(&c);
}

static Trainyard__GetJobResponse *wait_state(ty_rpc_client *cl, uint64_t id, int state) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, state, 30000);
  cr_assert(r, "job %llu never reached state %d", (unsigned long long)id, state);
  return r;
}

Test(observe, metrics_match_docs_and_follow_jobs, .timeout = 120) {
  const char *doc_path = getenv("TY_METRICS_DOC");
  cr_assert(doc_path && *doc_path, "TY_METRICS_DOC is not set (run through meson test)");
  char *doc = slurp(doc_path);
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t done, running, waiting;
  cr_assert_eq(it_submit_sh(cl, "true", "quick", &done, NULL, 0), 0);
  trainyard__get_job_response__free_unpacked(
      wait_state(cl, done, TRAINYARD__JOB_STATE__JOB_COMPLETED), NULL);
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "sleeper", &running, NULL, 0), 0);
  trainyard__get_job_response__free_unpacked(
      wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING), NULL);
  cr_assert_eq(it_submit_sh(cl, "true", "behind", &waiting, NULL, 0), 0);
  char prefix[128];
  snprintf(prefix, sizeof(prefix),
           "trainyard_worker_task_memory_bytes{job_id=\"%llu\",rank=\"0\"} ",
           (unsigned long long)running);
  /* A pass gives the job behind its wait reason and the worker samples the
   * task's memory: scraped until both show (up to 30 s), then checked. */
  char *ctl = NULL, *wrk = NULL;
  for (int64_t end = ty_mono_ms() + 30000;;) {
    ctl = it_http_get_metrics(c.metrics_port);
    wrk = it_http_get_metrics(c.worker_metrics_port[0]);
    if ((it_metric_in(ctl, "trainyard_jobs_pending{queue=\"default\",reason=\"Resources\"} ") ==
             1 &&
         it_metric_in(wrk, prefix) > 0) ||
        ty_mono_ms() >= end)
      break;
    free(ctl), free(wrk);
    it_sleep_ms(100);
  }
  check_against_doc("traind", ctl, doc, "Controller (`traind`)");
  check_against_doc("trainworkerd", wrk, doc, "Worker (`trainworkerd`)");
  cr_assert_eq(it_metric_in(ctl, "trainyard_jobs_pending{queue=\"default\",reason=\"Resources\"} "),
               1, "%s", ctl);
  cr_assert_eq(it_metric_in(ctl, "trainyard_job_queue_wait_seconds_count{queue=\"default\"} "), 2);
  cr_assert_eq(
      it_metric_in(ctl, "trainyard_job_ends_total{queue=\"default\",state=\"COMPLETED\"} "), 1);
  cr_assert(it_metric_in(ctl, "trainyard_node_heartbeat_age_seconds{node=\"") < 10);
  cr_assert(!isnan(it_metric_in(ctl, "trainyard_scheduler_fragmentation_ratio ")));
  cr_assert_eq(it_metric_in(wrk, "trainyard_worker_slots_capacity{kind=\"cpu\"} "), 1);
  cr_assert_eq(it_metric_in(wrk, "trainyard_worker_slots_used{kind=\"cpu\"} "), 1);
  cr_assert_gt(it_metric_in(wrk, prefix), 0, "%s", wrk);
  free(ctl);
  free(wrk);

  /* trainctl top off a terminal: one screen, the same counts. */
  char *top = NULL;
  cr_assert_eq(it_trainctl(&c, &top, (const char *[]){"top", NULL}), 0);
  cr_assert(strstr(top, "nodes 1 up 0 down") &&
                strstr(top, "jobs 1 running 1 pending (Resources 1)") && strstr(top, "sleeper"),
            "%s", top);
  free(top);

  /* Cancelled: its series go, the end is counted by cause. */
  char id[24];
  snprintf(id, sizeof(id), "%llu", (unsigned long long)running);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", id, NULL}), 0);
  trainyard__get_job_response__free_unpacked(wait_state(cl, waiting, 0), NULL);
  /* The controller counts the end and the worker drops the task's series
   * a moment later: scraped until they do (up to 30 s), then checked. */
  for (int64_t end = ty_mono_ms() + 30000;;) {
    ctl = it_http_get_metrics(c.metrics_port);
    wrk = it_http_get_metrics(c.worker_metrics_port[0]);
    if ((it_metric_in(ctl, "trainyard_job_ends_total{queue=\"default\",state=\"CANCELLED\"} ") ==
             1 &&
         it_metric_in(
             ctl, "trainyard_job_run_seconds_count{queue=\"default\",state=\"CANCELLED\"} ") == 1 &&
         strstr(wrk, prefix) == NULL &&
         it_metric_in(ctl, "trainyard_jobs_pending{queue=\"default\",reason=\"Resources\"} ") ==
             0) ||
        ty_mono_ms() >= end)
      break;
    free(ctl), free(wrk);
    it_sleep_ms(100);
  }
  cr_assert_eq(
      it_metric_in(ctl, "trainyard_job_ends_total{queue=\"default\",state=\"CANCELLED\"} "), 1);
  cr_assert_eq(
      it_metric_in(ctl, "trainyard_job_run_seconds_count{queue=\"default\",state=\"CANCELLED\"} "),
      1);
  cr_assert(strstr(wrk, prefix) == NULL, "a cancelled task's series stayed:\n%s", wrk);
  cr_assert_eq(it_metric_in(ctl, "trainyard_jobs_pending{queue=\"default\",reason=\"Resources\"} "),
               0);
  free(ctl);
  free(wrk);
  free(doc);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- a real Prometheus ---------------------------------------------------------------------- */

/* deploy/prometheus.yml with the cluster's ephemeral ports, a 1 s interval
 * and deploy/alerts.yml by absolute path. */
static void write_prom_config(const it_cluster *c, const char *path, const char *alerts) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
          "rule_files:\n  - %s\n"
          "scrape_configs:\n  - job_name: traind\n    static_configs:\n"
          "      - targets: ['127.0.0.1:%d']\n  - job_name: trainworkerd\n    static_configs:\n"
          "      - targets: [",
          alerts, c->metrics_port);
  for (size_t i = 0; i < c->n_workers; i++)
    fprintf(f, "%s'127.0.0.1:%d'", i ? ", " : "", c->worker_metrics_port[i]);
  fprintf(f, "]\n");
  fclose(f);
}

/* URL-encodes a PromQL query into path after "/api/v1/query?query=". */
static void query_path(const char *q, char *out, size_t len) {
  size_t o = (size_t)snprintf(out, len, "/api/v1/query?query=");
  for (const unsigned char *p = (const unsigned char *)q; *p && o + 4 < len; p++)
    o += isalnum(*p) || strchr("-_.~", *p) ? (size_t)snprintf(out + o, len - o, "%c", *p)
                                           : (size_t)snprintf(out + o, len - o, "%%%02X", *p);
}

/* The value of a query that yields one sample, or NAN when it yields none. */
static double prom_query(int port, const char *q) {
  char path[1024];
  query_path(q, path, sizeof(path));
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body && status == 200, "query %s: HTTP %d: %s", q, status, body ? body : "");
  cr_assert(strstr(body, "\"status\":\"success\""), "query %s: %s", q, body);
  const char *v = strstr(body, "\"value\":[");
  double out = NAN;
  if (v && (v = strstr(v, ",\"")) != NULL) out = strtod(v + 2, NULL);
  const char *first = strstr(body, "\"value\":[");
  cr_assert(!first || !strstr(first + 1, "\"value\":["), "query %s yields more than one sample: %s",
            q, body);
  free(body);
  return out;
}

/* Queries q until it answers want, for up to 60 s (a node goes DOWN
 * after the harness's node timeout, 10 s under sanitizers, and the alert
 * follows on the next scrape and evaluation). */
static double prom_wait(int port, const char *q, double want) {
  double v = NAN;
  for (int64_t end = ty_mono_ms() + 60000; ty_mono_ms() < end;) {
    v = prom_query(port, q);
    if (fabs(v - want) < 1e-9) return v;
    it_sleep_ms(100);
  }
  return v;
}

static int start_prometheus(const it_cluster *c, pid_t *out_pid) {
  const char *prom = getenv("TY_PROMETHEUS"), *alerts = getenv("TY_ALERTS");
  if (!prom || !*prom) cr_skip_test("prometheus not found");
  cr_assert(alerts && *alerts, "TY_ALERTS is not set");
  char dir[300], cfg[340], data[340], log[340];
  snprintf(dir, sizeof(dir), "%s/prometheus", c->dir);
  mkdir(dir, 0755);
  snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", dir);
  snprintf(data, sizeof(data), "%s/data", dir);
  snprintf(log, sizeof(log), "%s/prometheus.stderr", c->dir);
  write_prom_config(c, cfg, alerts);
  return it_prometheus_start(prom, dir, cfg, data, log, out_pid);
}

Test(observe, prometheus_scrapes_the_cluster, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  pid_t prom;
  int port = start_prometheus(&c, &prom);
  /* Every target up before the test causes anything, so counters start at 0. */
  cr_assert_eq(prom_wait(port, "count(up == 1)", 3), 3, "not every target is up");
  ty_rpc_client *cl = it_client(&c);
  uint64_t ids[4];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(it_submit_sh(cl, "true", "ok", &ids[i], NULL, 0), 0);
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "cancelled", &ids[3], NULL, 0), 0);
  for (int i = 0; i < 3; i++)
    trainyard__get_job_response__free_unpacked(wait_state(cl, ids[i], 0), NULL);
  trainyard__get_job_response__free_unpacked(
      wait_state(cl, ids[3], TRAINYARD__JOB_STATE__JOB_RUNNING), NULL);
  /* Jobs by state: the one running, as Prometheus saw it. */
  cr_assert_eq(prom_wait(port, "sum(trainyard_jobs{state=\"RUNNING\"})", 1), 1);
  char id[24];
  snprintf(id, sizeof(id), "%llu", (unsigned long long)ids[3]);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", id, NULL}), 0);
  trainyard__get_job_response__free_unpacked(wait_state(cl, ids[3], 0), NULL);

  /* Job counts by state, as the test made them. */
  /* Ended jobs leave the controller's memory (their record is in the
   * store), so they are counted by how they ended. */
  cr_assert_eq(prom_wait(port, "sum(trainyard_job_ends_total{state=\"COMPLETED\"})", 3), 3);
  cr_assert_eq(prom_wait(port, "sum(trainyard_job_ends_total{state=\"CANCELLED\"})", 1), 1);
  cr_assert_eq(prom_wait(port, "sum(trainyard_worker_slots_capacity{kind=\"cpu\"})", 2), 2);
  /* A rate: four submits within the last minute (increase() extrapolates a
   * little past the samples, never below what they show). */
  double inc = prom_query(port, "increase(trainyard_jobs_submitted_total[1m])");
  cr_assert(inc >= 4 && inc < 6, "increase of submits over 1m: %g", inc);
  cr_assert_gt(prom_query(port, "rate(trainyard_jobs_submitted_total[1m])"), 0);
  /* Histogram quantiles: the `true` jobs ran for under a second; answering
   * RPCs took under the largest bound. */
  double run = prom_query(port, "histogram_quantile(0.5, sum by (le) "
                                "(trainyard_job_run_seconds_bucket{state=\"COMPLETED\"}))");
  cr_assert(run > 0 && run <= 1, "median run time of the quick jobs: %g", run);
  double rpc = prom_query(
      port,
      "histogram_quantile(0.99, sum by (le) (rate(trainyard_rpc_duration_seconds_bucket[1m])))");
  cr_assert(rpc > 0 && rpc <= 2.5, "p99 RPC time: %g", rpc);

  /* The rules loaded and evaluate; a node going DOWN makes its alert pending. */
  int status = 0;
  char *rules = it_http_get(port, "/api/v1/rules", &status);
  cr_assert(rules && status == 200);
  cr_assert(strstr(rules, "TrainyardNodeDown") && strstr(rules, "TrainyardQueueStarving") &&
                strstr(rules, "TrainyardJobNoProgress"),
            "%s", rules);
  cr_assert(strstr(rules, "\"health\":\"err\"") == NULL, "a rule fails to evaluate: %s", rules);
  free(rules);
  it_kill9(&c.worker[1]);
  cr_assert_eq(
      prom_wait(port, "count(ALERTS{alertname=\"TrainyardNodeDown\",alertstate=\"pending\"})", 1),
      1, "no pending TrainyardNodeDown after a worker was killed");
  cr_assert_eq(prom_wait(port, "count(up{job=\"trainworkerd\"} == 0)", 1), 1);

  kill(prom, SIGTERM);
  waitpid(prom, NULL, 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A DOWN node's heartbeat age counts on across a controller restart (it is
 * by the wall clock from the last heartbeat the store keeps), rather than
 * starting again from 0 with the restarted controller. */
Test(observe, heartbeat_age_survives_a_controller_restart, .timeout = 120) {
  it_cluster c; /* a quick DOWN: the node runs nothing a short lease could fence */
  it_cluster_start_with(&c, 1, 1, &(it_options){.node_timeout_ms = 2000});
  ty_rpc_client *cl = it_client(&c);
  it_kill9(&c.worker[0]);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_DOWN, 60000),
            "the node never went DOWN");
  ty_rpc_client_close(cl);
  char prefix[96];
  snprintf(prefix, sizeof(prefix), "trainyard_node_heartbeat_age_seconds{node=\"%s\"} ", c.name[0]);
  double before = it_metric(c.metrics_port, prefix);
  cr_assert_geq(before, c.node_timeout_ms / 1000.0, "age %.1f s of a DOWN node", before);
  it_controller_restart(&c, false);
  double after = it_metric(c.metrics_port, prefix);
  cr_assert_geq(after, before, "the age went from %.1f s to %.1f s over a restart", before, after);
  it_cluster_stop(&c);
}

/* An UP node's heartbeat age after a controller restart, before its
 * worker is heard from again (it is stopped here): its last heartbeat
 * before the restart was never stored, so the age counts from the restart
 * and trainctl shows none, rather than the age of its registration read
 * back from the store. Once the worker is back, the age is its own again. */
Test(observe, an_up_nodes_heartbeat_age_counts_from_a_controller_restart, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  it_sleep_ms(6000); /* registered 6 s ago, heartbeats since */
  char prefix[96], *out = NULL;
  snprintf(prefix, sizeof(prefix), "trainyard_node_heartbeat_age_seconds{node=\"%s\"} ", c.name[0]);
  double before = it_metric(c.metrics_port, prefix);
  cr_assert_lt(before, 3.0, "age %.1f s of a node that heartbeats", before);
  kill(c.worker[0], SIGSTOP);
  it_controller_restart(&c, false);
  double after = it_metric(c.metrics_port, prefix);
  cr_expect_lt(after, 3.0, "age %.1f s just after the restart: its registration's, not its own",
               after);
  it_trainctl_ok(&c, &out, (const char *const[]){"node", "show", c.name[0], NULL});
  cr_expect(strstr(out, "no heartbeat since the controller started"), "%s", out);
  free(out);
  kill(c.worker[0], SIGCONT);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000), "the node never returned");
  ty_rpc_client_close(cl);
  it_trainctl_ok(&c, &out, (const char *const[]){"node", "show", c.name[0], NULL});
  cr_expect(strstr(out, "last heartbeat 0:0"), "%s", out);
  free(out);
  it_cluster_stop(&c);
}

/* A fresh traind exports its event counters and histograms at 0 before
 * their first event (so increase() sees that event), for the queues it has
 * and for one created later. */
Test(observe, event_series_start_at_zero, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char *ctl = it_http_get_metrics(c.metrics_port);
  static const char *const zero[] = {
      "trainyard_job_ends_total{queue=\"default\",state=\"COMPLETED\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"FAILED\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"CANCELLED\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"TIMEOUT\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"OUT_OF_MEMORY\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"PREEMPTED\"} ",
      "trainyard_job_ends_total{queue=\"default\",state=\"NODE_FAIL\"} ",
      "trainyard_job_run_seconds_count{queue=\"default\",state=\"FAILED\"} ",
      "trainyard_job_queue_wait_seconds_count{queue=\"default\"} ",
      "trainyard_job_queue_wait_seconds_bucket{queue=\"default\",le=\"+Inf\"} ",
      "trainyard_model_checks_total{result=\"ok\"} ",
      "trainyard_model_checks_total{result=\"refused\"} ",
      "trainyard_model_checks_total{result=\"error\"} ",
      "trainyard_plan_cache_lookups_total{result=\"hit\"} ",
      "trainyard_plan_cache_lookups_total{result=\"miss\"} ",
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(zero); i++)
    cr_assert_eq(it_metric_in(ctl, zero[i]), 0, "%s is not exported at 0:\n%s", zero[i], ctl);
  free(ctl);
  it_trainctl_ok(&c, NULL, (const char *const[]){"queue", "create", "later", NULL});
  ctl = it_http_get_metrics(c.metrics_port);
  cr_assert_eq(it_metric_in(ctl, "trainyard_job_ends_total{queue=\"later\",state=\"FAILED\"} "), 0,
               "%s", ctl);
  cr_assert_eq(it_metric_in(ctl, "trainyard_job_queue_wait_seconds_count{queue=\"later\"} "), 0,
               "%s", ctl);
  free(ctl);
  it_cluster_stop(&c);
}
