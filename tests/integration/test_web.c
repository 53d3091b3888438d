/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's pages (issue 16) against a real cluster training real
 * graph jobs (trainrun ranks started by the workers):
 *   - its JSON documents: the node, the job in the list, its ranks, history
 *     and curve, and a clear 4xx naming the bad part of each bad request;
 *   - a requeued job's curve, one series per attempt, and a planned job's
 *     plan;
 *   - headless Chromium (Debian's) loading each page: the node table, the
 *     job list and the loss chart's points read back from the DOM, and a
 *     screenshot of each page saved in the build directory.
 * Who may look and act is test_web_tokens.c's.
 */
#include <criterion/criterion.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/ranks.h"
#include "tests/integration/web_client.h"
#include "tests/support/subset.h"

#define STEPS 200

static uint64_t train(it_cluster *c, ty_rpc_client *cl) {
  char ckpt[400];
  snprintf(ckpt, sizeof(ckpt), "%s/web.onnx", c->dir);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 40, ckpt, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  j.job.name = "mlp-web";
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof(err)), 0, "submit: %s", err);
  /* While it trains, /metrics carries its step, loss and throughput; they
   * go when it ends. */
  char series[128];
  snprintf(series, sizeof(series), "trainyard_train_step{job_id=\"%llu\",name=\"mlp-web\"} ",
           (unsigned long long)id);
  bool seen = false;
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 1800; i++) {
    r = it_get_job(cl, id);
    if (r && r->job && it_is_final(r->job->state)) break;
    trainyard__get_job_response__free_unpacked(r, NULL);
    r = NULL;
    char *m = it_http_get_metrics(c->metrics_port);
    seen |= strstr(m, series) != NULL && strstr(m, "trainyard_train_loss{job_id=") != NULL;
    free(m);
    it_sleep_ms(100);
  }
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "the graph job did not complete");
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert(seen, "no %s while the job ran", series);
  char *m = it_http_get_metrics(c->metrics_port);
  cr_assert(strstr(m, series) == NULL, "the ended job's series stayed:\n%s", m);
  cr_assert(strstr(m, "trainyard_job_ends_total{queue=\"default\",state=\"COMPLETED\"} 1"), "%s",
            m);
  free(m);
  free(cfg);
  return id;
}

static size_t count(const char *s, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

static void check_api(int port, uint64_t id, const char *node) {
  char path[128], want[128];
  char *cluster = web_get_ok(port, "/api/cluster");
  snprintf(want, sizeof(want), "\"name\":\"%s\",\"state\":\"UP\"", node);
  cr_assert(strstr(cluster, want), "%s", cluster);
  cr_assert(strstr(cluster, "\"default_mem\":0,\"max_mem\":0"), "queue memory: %s", cluster);
  free(cluster);
  char *jobs = web_get_ok(port, "/api/jobs?state=COMPLETED&queue=default");
  snprintf(want, sizeof(want),
           "\"id\":%llu,\"array_job_id\":null,\"array_task_id\":null,\"name\":\"mlp-web\"",
           (unsigned long long)id);
  cr_assert(strstr(jobs, want) && strstr(jobs, "\"matched\":1"), "%s", jobs);
  free(jobs);
  jobs = web_get_ok(port, "/api/jobs?state=PENDING");
  cr_assert(strstr(jobs, "\"jobs\":[]"), "%s", jobs);
  free(jobs);
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)id);
  /* Rank 0's last report may come a heartbeat after the job ended. */
  snprintf(want, sizeof(want), "\"step\":%d,", STEPS);
  char *job = NULL;
  for (int i = 0; i < 100; i++) {
    free(job);
    job = web_get_ok(port, path);
    if (strstr(job, want)) break;
    it_sleep_ms(100);
  }
  cr_assert(strstr(job, "\"ranks\":[{\"rank\":0") && strstr(job, "\"to\":\"COMPLETED\"") &&
                strstr(job, "\"kind\":\"graph\"") && strstr(job, "\"exclusive\":false") &&
                strstr(job, "\"no_requeue\":false"),
            "%s", job);
  snprintf(want, sizeof(want), "\"step\":%d,", STEPS);
  cr_assert(strstr(job, want), "the last progress is not step %d: %s", STEPS, job);
  free(job);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress", (unsigned long long)id);
  char *curve = web_get_ok(port, path);
  cr_assert_geq(count(curve, "],["), 1, "fewer than two points: %s", curve);
  free(curve);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?after=%d", (unsigned long long)id, STEPS);
  curve = web_get_ok(port, path);
  cr_assert(strstr(curve, "\"points\":[]"), "points after the last step: %s", curve);
  free(curve);
}

static void check_refusals(int port, uint64_t id) {
  char path[128];
  web_expect_error(port, "/api/jobs/abc", 400, "is not a job id");
  web_expect_error(port, "/api/jobs/99999", 404, "job 99999 not found");
  web_expect_error(port, "/api/jobs?limit=0", 400, "limit");
  web_expect_error(port, "/api/jobs?limit=x", 400, "limit");
  web_expect_error(port, "/api/jobs?state=RUNNING,NOPE", 400, "\\\"NOPE\\\" is not a job state");
  web_expect_error(port, "/api/jobs?queue=%zz", 400, "queue: bad %-escape");
  web_expect_error(port, "/api/jobs?colour=red", 400, "unknown query parameter \\\"colour\\\"");
  web_expect_error(port, "/api/nothing", 404, "no such page");
  web_expect_error(port, "/static/missing.js", 404, "no such file");
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?after=-1", (unsigned long long)id);
  web_expect_error(port, path, 400, "after");
  snprintf(path, sizeof(path), "/api/jobs/%llu/plan", (unsigned long long)id);
  web_expect_error(port, path, 404, "has no plan: its parallelism is data");
}

/* Older history from the store, a page at a time: two short jobs after the
 * training one; pages of 2 are the two, then the training job, the cursor
 * of each page leading to the next. Bad filters are named. */
static void check_history(ty_rpc_client *cl, int port, uint64_t trained) {
  uint64_t ids[2];
  char err[256] = "", path[160];
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(it_submit_sh(cl, "true", "short", &ids[i], err, sizeof(err)), 0, "%s", err);
    Trainyard__GetJobResponse *r = it_wait_job(cl, ids[i], 0, 60000);
    cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED);
    trainyard__get_job_response__free_unpacked(r, NULL);
    snprintf(path, sizeof(path), "/api/jobs/%llu/plan", (unsigned long long)ids[i]);
    web_expect_error(port, path, 404, "has no plan: it is a command job");
  }
  char first[48], second[48];
  snprintf(first, sizeof(first), "{\"id\":%llu,", (unsigned long long)ids[1]);
  snprintf(second, sizeof(second), "{\"id\":%llu,", (unsigned long long)ids[0]);
  /* History is the store's: the last end is there once its commit is. */
  char *page = NULL;
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && (!page || !strstr(page, first));) {
    if (page) it_sleep_ms(50);
    free(page);
    page = web_get_ok(port, "/api/history?limit=2&state=COMPLETED");
  }
  cr_assert(strstr(page, first) && strstr(page, second) &&
                strstr(page, first) < strstr(page, second),
            "not the two newest, newest first: %s", page);
  const char *next = strstr(page, "\"next\":\"");
  cr_assert(next, "no cursor to the older page: %s", page);
  snprintf(path, sizeof(path), "/api/history?limit=2&state=COMPLETED&before=%.*s",
           (int)strcspn(next + 8, "\""), next + 8);
  free(page);
  page = web_get_ok(port, path);
  snprintf(first, sizeof(first), "{\"id\":%llu,", (unsigned long long)trained);
  cr_assert(strstr(page, first) && strstr(page, "\"next\":null") && count(page, "{\"id\":") == 1,
            "the older page is not the training job alone: %s", page);
  free(page);
  web_expect_error(port, "/api/history?state=RUNNING", 400, "RUNNING is not in the history");
  /* A --no-requeue job's ends are history states (none here: an empty page). */
  page = web_get_ok(port, "/api/history?state=NODE_FAIL");
  cr_assert(count(page, "{\"id\":") == 0 && strstr(page, "\"next\":null"), "%s", page);
  free(page);
  web_expect_error(port, "/api/history?before=12", 400, "before: \\\"12\\\" is not a cursor");
  web_expect_error(port, "/api/history?limit=0", 400, "limit");
}

/* Overview: the node table holds the worker. */
static void browse_overview(const char *profile, int port, const char *node) {
  char url[256], cell[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/", port);
  char *dom =
      web_chromium(url, profile, "overview", "document.querySelector('#nodes-table tbody tr')");
  snprintf(cell, sizeof(cell), "<td class=\"\">%s</td>", node);
  cr_assert(strstr(dom, cell), "the node table does not list %s:\n%s", node, dom);
  free(dom);
}

/* Job list, filtered as a user would: the job with a link to its page. */
static void browse_jobs(const char *profile, int port, uint64_t id) {
  char url[256], cell[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/jobs?state=COMPLETED", port);
  char *dom = web_chromium(url, profile, "jobs", "document.querySelector('#jobs-table tbody tr')");
  snprintf(cell, sizeof(cell), "<a href=\"#/job/%llu\">%llu</a>", (unsigned long long)id,
           (unsigned long long)id);
  cr_assert(strstr(dom, cell) && strstr(dom, "mlp-web"), "the job list does not show job %llu:\n%s",
            (unsigned long long)id, dom);
  free(dom);
}

/* Job page: the loss chart holds the curve, up to the last step. */
static void browse_job(const char *profile, int port, uint64_t id) {
  char url[256], wait[256];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)id);
  snprintf(wait, sizeof(wait),
           "document.querySelector('#chart-loss[data-last-step=\"%d\"]') && "
           "document.getElementById('events-table')",
           STEPS);
  char *dom = web_chromium(url, profile, "job", wait);
  long points = web_dom_attr(dom, "chart-loss", "data-points");
  cr_assert_geq(points, 2, "the loss chart is empty:\n%s", dom);
  /* A short curve draws its points (a lone accuracy point would not show). */
  cr_assert_eq(web_dom_attr(dom, "chart-loss", "data-marked"), points <= 30,
               "%ld points, marked wrongly:\n%s", points, dom);
  cr_assert(strstr(dom, "id=\"ranks-table\""), "%s", dom);
  free(dom);
}

/* History: the store's finished jobs, newest first. */
static void browse_history(const char *profile, int port) {
  char url[256];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/history", port);
  char *dom =
      web_chromium(url, profile, "history", "document.getElementById('view').dataset.historyRows");
  cr_assert(strstr(dom, "id=\"history-table\"") && strstr(dom, "mlp-web"), "%s", dom);
  cr_assert_eq(web_dom_attr(dom, "view", "data-history-rows"), 3, "%s", dom);
  free(dom);
}

/* The console's pages in Chromium. Under ASan (deploy/test.sh's second
 * pass, tests/support/subset.h) the job page alone: it loads the scripts
 * every page shares and reads the job, its curve and its events, while
 * the other pages read /api/cluster, /api/jobs and /api/history, which
 * check_api and check_history read under ASan too. */
static void check_browser(const it_cluster *c, int port, uint64_t id, const char *node) {
  if (!web_have_chromium()) cr_skip_test("chromium not found");
  char profile[400];
  snprintf(profile, sizeof(profile), "%s/chromium", c->dir);
  if (!ty_test_subset()) browse_overview(profile, port, node);
  if (!ty_test_subset()) browse_jobs(profile, port, id);
  browse_job(profile, port, id);
  if (!ty_test_subset()) browse_history(profile, port);
}

/* A job id in a path that is no job id is refused as such, GET and POST
 * alike: past 2^64-1 it is not read as the largest id (a 404 naming
 * another job). */
Test(web, a_path_job_id_out_of_range_is_refused, .timeout = 60) {
  it_cluster c;
  int port = web_start_local(&c);
  web_expect_error(port, "/api/jobs/18446744073709551616", 400,
                   "job id: \\\"18446744073709551616\\\" is not a job id");
  web_expect_error(port, "/api/jobs/99999999999999999999999/plan", 400, "is not a job id");
  web_expect_error(port, "/api/jobs/+5", 400, "\\\"+5\\\" is not a job id");
  web_expect_error(port, "/api/jobs/18446744073709551615", 404,
                   "job 18446744073709551615 not found");
  char *r = web_http(port, "POST", "/api/jobs/18446744073709551616/cancel",
                     "X-Requested-With: test\r\nContent-Length: 0\r\n");
  cr_assert_eq(web_status(r), 400, "%s", r);
  cr_assert(strstr(r, "is not a job id"), "%s", r);
  free(r);
  it_cluster_stop(&c);
}

/* A state named again and again is one state: the ones after it count
 * too, in the list and in the history. */
Test(web, list_filters_name_each_state_once, .timeout = 90) {
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t running = 0, failed = 0;
  char err[256] = "", want[48];
  cr_assert_eq(it_submit_sh(cl, "false", "fails", &failed, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, failed, TRAINYARD__JOB_STATE__JOB_FAILED, 60000);
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "runs", &running, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000);
  char *page = web_get_ok(port, "/api/jobs?state=PENDING,PENDING,PENDING,PENDING,PENDING,PENDING,"
                                "PENDING,PENDING,PENDING,PENDING,RUNNING");
  snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)running);
  cr_assert(strstr(page, want) && strstr(page, "\"matched\":1"), "RUNNING was dropped: %s", page);
  free(page);
  snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)failed);
  const char *hist = "/api/history?state=COMPLETED,COMPLETED,COMPLETED,COMPLETED,COMPLETED,"
                     "COMPLETED,COMPLETED,COMPLETED,COMPLETED,FAILED";
  page = NULL;
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && (!page || !strstr(page, want));) {
    if (page) it_sleep_ms(50);
    free(page);
    page = web_get_ok(port, hist);
  }
  cr_assert(strstr(page, want), "FAILED was dropped: %s", page);
  free(page);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A user this host does not know is refused, as `trainctl ls -u` refuses
 * it, not answered with an empty list; a uid names its user. */
Test(web, unknown_users_are_refused, .timeout = 90) {
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t running = 0;
  char err[256] = "", path[512], want[48];
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "runs", &running, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000);
  web_expect_error(port, "/api/jobs?user=nosuch", 400, "user: \\\"nosuch\\\" is not a user here");
  web_expect_error(port, "/api/history?user=nosuch", 400,
                   "user: \\\"nosuch\\\" is not a user here");
  web_expect_error(port, "/api/jobs?user=4000000000", 400, "user: no user has uid 4000000000");
  struct passwd *pw = getpwuid(getuid());
  cr_assert(pw);
  snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)running);
  snprintf(path, sizeof(path), "/api/jobs?user=%u&state=RUNNING", (unsigned)getuid());
  char *page = web_get_ok(port, path);
  cr_assert(strstr(page, want), "a uid did not name its user: %s", page);
  free(page);
  snprintf(path, sizeof(path), "/api/jobs?user=%s&state=RUNNING", pw->pw_name);
  page = web_get_ok(port, path);
  cr_assert(strstr(page, want), "%s", page);
  free(page);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* POST path (as the console's page does) answers `status` saying `says`. */
static void web_post(int port, const char *path, int status, const char *says) {
  char *r = web_http(port, "POST", path, "X-Requested-With: test\r\nContent-Length: 0\r\n");
  cr_assert_eq(web_status(r), status, "POST %s: %s", path, r);
  cr_assert(strstr(r, says), "POST %s should say \"%s\": %s", path, says, r);
  free(r);
}

/* An array's elements show as elements (their array and task), and the
 * action on an element's page is on that element alone, as `trainctl
 * cancel 122_0` is, though the first element's id is the array's too; the
 * whole array is /api/arrays/ID's. */
Test(web, array_elements_are_elements_and_acted_on_alone, .timeout = 90) {
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL, want[160], path[96];
  const char *const args[] = {"submit", "--array", "0-2", "--json", "--command",
                              "--",     "sleep",   "30",  NULL};
  cr_assert_eq(it_trainctl(&c, &out, args), 0, "%s", out);
  unsigned long long a = 0;
  cr_assert_eq(sscanf(out, "{\"id\":%llu", &a), 1, "%s", out);
  free(out);
  uint64_t plain = 0;
  char err[256] = "";
  cr_assert_eq(it_submit_sh(cl, "sleep 30", "plain", &plain, err, sizeof(err)), 0, "%s", err);
  char *page = web_get_ok(port, "/api/jobs");
  for (unsigned t = 0; t < 3; t++) {
    snprintf(want, sizeof(want), "{\"id\":%llu,\"array_job_id\":%llu,\"array_task_id\":%u,", a + t,
             a, t);
    cr_assert(strstr(page, want), "no %s in %s", want, page);
  }
  snprintf(want, sizeof(want), "{\"id\":%llu,\"array_job_id\":null,\"array_task_id\":null,",
           (unsigned long long)plain);
  cr_assert(strstr(page, want), "no %s in %s", want, page);
  free(page);
  /* The page of job A is element A_0's: its cancel is A_0's alone. */
  snprintf(path, sizeof(path), "/api/jobs/%llu/cancel", a);
  snprintf(want, sizeof(want), "\"target\":\"%llu_0\"", a);
  web_post(port, path, 200, want);
  it_wait_state(cl, a, TRAINYARD__JOB_STATE__JOB_CANCELLED, 30000);
  for (unsigned t = 1; t < 3; t++)
    cr_assert_neq(it_job_state(cl, a + t), TRAINYARD__JOB_STATE__JOB_CANCELLED,
                  "element %llu_%u was cancelled with %llu_0", a, t, a);
  /* The answer's "job" is the path's ID, the element's own. */
  snprintf(path, sizeof(path), "/api/jobs/%llu/cancel", a + 1);
  snprintf(want, sizeof(want), "\"job\":%llu,\"target\":\"%llu_1\"", a + 1, a);
  web_post(port, path, 200, want);
  snprintf(path, sizeof(path), "/api/jobs/%llu/hold", a + 2);
  snprintf(want, sizeof(want), "\"target\":\"%llu_2\"", a);
  if (it_job_state(cl, a + 2) == TRAINYARD__JOB_STATE__JOB_PENDING) web_post(port, path, 200, want);
  /* The whole array is named as such; an element's id is no array's. */
  snprintf(path, sizeof(path), "/api/arrays/%llu/cancel", a + 1);
  web_post(port, path, 404, "is not an array's id");
  snprintf(path, sizeof(path), "/api/arrays/%llu/cancel", (unsigned long long)plain);
  web_post(port, path, 404, "is not an array's id");
  snprintf(path, sizeof(path), "/api/arrays/%llu/cancel", a);
  snprintf(want, sizeof(want), "\"target\":\"%llu\"", a);
  web_post(port, path, 200, want);
  for (unsigned t = 1; t < 3; t++)
    it_wait_state(cl, a + t, TRAINYARD__JOB_STATE__JOB_CANCELLED, 30000);
  cr_assert_neq(it_job_state(cl, plain), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A job that has not ended has no exit code yet (null, as trainctl shows
 * none), one that has its own. */
Test(web, exit_code_is_null_until_the_job_ends, .timeout = 90) {
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t running = 0, failed = 0;
  char err[256] = "", path[96];
  cr_assert_eq(it_submit_sh(cl, "exit 3", "fails", &failed, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, failed, TRAINYARD__JOB_STATE__JOB_FAILED, 60000);
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "runs", &running, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000);
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)running);
  char *page = web_get_ok(port, path);
  cr_assert(strstr(page, "\"exit_code\":null,\"ranks\""), "a running job's exit code: %s", page);
  free(page);
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)failed);
  page = web_get_ok(port, path);
  cr_assert(strstr(page, "\"exit_code\":3,\"ranks\"") &&
                strstr(page, "\"exit_code\":3,\"signal\":0"),
            "an ended job's exit code: %s", page);
  free(page);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* /api/cluster's count of a state is what /api/jobs lists in it: ended
 * jobs the controller still holds count too (they once showed 0 beside a
 * list holding them). */
Test(web, cluster_counts_match_the_job_list, .timeout = 90) {
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  char err[256] = "";
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(it_submit_sh(cl, "exit 3", "fails", &id, err, sizeof(err)), 0, "%s", err);
    it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_FAILED, 60000);
  }
  cr_assert_eq(it_submit_sh(cl, "true", "works", &id, err, sizeof(err)), 0, "%s", err);
  it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000);
  it_sleep_ms(3000); /* the 1 s tick's sweep moves ended jobs to the finished cache */
  char *jobs = web_get_ok(port, "/api/jobs?state=FAILED");
  cr_assert(strstr(jobs, "\"matched\":2"), "%s", jobs);
  free(jobs);
  char *cluster = web_get_ok(port, "/api/cluster");
  cr_assert(strstr(cluster, "\"COMPLETED\":1,\"FAILED\":2,"), "the counts: %s", cluster);
  free(cluster);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The anti-framing headers, which the whole answer r must carry. */
static void expect_no_framing(const char *what, const char *r) {
  const char *head_end = strstr(r, "\r\n\r\n");
  cr_assert(head_end, "%s: no head: %s", what, r);
  const char *xfo = strstr(r, "X-Frame-Options: DENY\r\n"),
             *csp = strstr(r, "Content-Security-Policy: frame-ancestors 'none'; default-src "
                              "'self'\r\n");
  cr_assert(xfo && xfo < head_end && csp && csp < head_end,
            "%s: no X-Frame-Options / Content-Security-Policy:\n%.*s", what, (int)(head_end - r),
            r);
}

/* The head of an event stream. */
static char *stream_head(int port) {
  int fd = it_raw_connect(port);
  cr_assert_geq(fd, 0);
  const char req[] = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
  char buf[4096];
  size_t got = 0;
  while (got < sizeof(buf) - 1) {
    ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
    cr_assert_gt(n, 0, "the stream ended before its head");
    got += (size_t)n;
    buf[got] = '\0';
    if (strstr(buf, "\r\n\r\n")) break;
  }
  close(fd);
  return strdup(buf);
}

/* Clickjacking: no page of another site may frame the console (a loopback
 * --auth none console is an operator's), so every answer, pages, JSON,
 * errors, deferred answers and event streams, says so; and its pages load
 * only their own scripts and styles (the browser checks show they still
 * work under that policy). */
Test(web, no_page_may_frame_the_console, .timeout = 60) {
  it_cluster c;
  int port = web_start_local(&c);
  const char *gets[] = {"/",
                        "/static/app.js",
                        "/static/style.css",
                        "/api/cluster",
                        "/api/nothing",
                        "/api/jobs?limit=0"};
  for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
    char *r = web_http(port, "GET", gets[i], NULL);
    expect_no_framing(gets[i], r);
    free(r);
  }
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  char path[64];
  snprintf(path, sizeof(path), "/api/jobs/%llu/cancel", (unsigned long long)id);
  char *r = web_http(port, "POST", path, "Content-Length: 0\r\n"); /* refused at once */
  cr_assert_eq(web_status(r), 403, "%s", r);
  expect_no_framing("POST without X-Requested-With", r);
  free(r);
  r = web_http(port, "POST", path, "X-Requested-With: test\r\nContent-Length: 0\r\n");
  cr_assert_eq(web_status(r), 200, "%s", r); /* answered once durable */
  expect_no_framing("POST cancel", r);
  free(r);
  r = stream_head(port);
  cr_assert(strstr(r, "text/event-stream"), "%s", r);
  expect_no_framing("/api/events", r);
  free(r);
  it_cluster_stop(&c);
}

/* A method a path does not take: 405, JSON as every other error, with
 * Allow naming the methods it does take. */
static void expect_405(int port, const char *method, const char *path, const char *allow,
                       const char *says) {
  char *r = web_http(port, method, path, NULL);
  cr_assert_eq(web_status(r), 405, "%s %s: %s", method, path, r);
  cr_assert(strstr(r, allow), "%s %s: no \"%s\": %s", method, path, allow, r);
  cr_assert(strstr(r, "Content-Type: application/json"), "%s %s: %s", method, path, r);
  bool head = strcmp(method, "HEAD") == 0; /* the headers alone */
  cr_assert(head || (strstr(r, "{\"error\":") && strstr(r, says)),
            "%s %s: the error should say \"%s\": %s", method, path, says, r);
  free(r);
}

Test(web, methods_a_path_does_not_take_are_405_naming_those_it_does, .timeout = 60) {
  it_cluster c;
  int port = web_start_local(&c);
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  char path[64];
  snprintf(path, sizeof(path), "/api/jobs/%llu/cancel", (unsigned long long)id);
  expect_405(port, "GET", path, "\r\nAllow: POST\r\n", "is an action: it takes POST only");
  expect_405(port, "HEAD", "/api/arrays/7/hold", "\r\nAllow: POST\r\n", "");
  expect_405(port, "DELETE", path, "\r\nAllow: POST\r\n", "DELETE: ");
  expect_405(port, "PUT", "/api/cluster", "\r\nAllow: GET, HEAD\r\n",
             "PUT: /api/cluster takes GET and HEAD only");
  char *r = web_http(port, "POST", "/api/cluster", "X-Requested-With: t\r\nContent-Length: 0\r\n");
  cr_assert(web_status(r) == 405 && strstr(r, "\r\nAllow: GET, HEAD\r\n") &&
                strstr(r, "does not take POST"),
            "%s", r);
  free(r);
  /* Not an action: still the job's pages' own 404. */
  snprintf(path, sizeof(path), "/api/jobs/%llu/explode", (unsigned long long)id);
  web_expect_error(port, path, 404, "no such page");
  /* The job was not cancelled by any of it. */
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)id);
  char *job = web_get_ok(port, path);
  cr_assert(strstr(job, "\"state\":\"PENDING\""), "%s", job);
  free(job);
  it_cluster_stop(&c);
}

Test(web, console_serves_a_training_cluster, .timeout = 400) {
  /* 200 steps over at least 3 s, so the curve has several progress reports
   * however fast the machine trains the MLP (a quiet one did it in one). */
  setenv("TRAINYARD_STEP_DELAY_MS", "15", 1);
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = train(&c, cl);
  check_api(port, id, c.name[0]);
  check_refusals(port, id);
  check_history(cl, port, id);
  check_browser(&c, port, id, c.name[0]);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- a requeued job, and a plan
 * ----------------------------------------------------------------
 */

/* The points of a curve document: their steps and attempts (at most cap). */
static size_t parse_points(const char *json, uint64_t *steps, uint32_t *attempts, size_t cap) {
  const char *p = strstr(json, "\"points\":[");
  cr_assert(p, "%s", json);
  size_t n = 0;
  for (p += 10; *p == '[' && n < cap; n++) {
    const char *end = strchr(p, ']'), *last = end;
    cr_assert(end, "%s", json);
    while (last > p && *last != ',')
      last--;
    steps[n] = strtoull(p + 1, NULL, 10);
    attempts[n] = (uint32_t)strtoul(last + 1, NULL, 10);
    p = end + 1 + (end[1] == ',');
  }
  return n;
}

/* The job's progress field `key` ("step", "checkpoint_step"), or 0. */
static uint64_t progress_field(int port, uint64_t id, const char *key) {
  char path[64], want[40];
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)id);
  snprintf(want, sizeof(want), "\"%s\":", key);
  char *job = web_get_ok(port, path);
  const char *prog = strstr(job, "\"progress\":{"), *v = prog ? strstr(prog, want) : NULL;
  uint64_t n = v ? strtoull(v + strlen(want), NULL, 10) : 0;
  free(job);
  return n;
}

/* Its curve holds two attempts, in order, each going up; the second from
 * the checkpoint the first left. */
static void check_attempts(int port, uint64_t id, uint64_t steps) {
  char path[96];
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress", (unsigned long long)id);
  char *curve = web_get_ok(port, path);
  static uint64_t st[4096];
  static uint32_t at[4096];
  size_t n = parse_points(curve, st, at, 4096);
  cr_assert_gt(n, 2, "%s", curve);
  size_t first_of_1 = 0;
  for (size_t i = 1; i < n; i++) {
    cr_assert(at[i] >= at[i - 1], "attempts out of order at point %zu: %s", i, curve);
    if (at[i] == at[i - 1])
      cr_assert_gt(st[i], st[i - 1], "steps go back within attempt %u: %s", at[i], curve);
    else if (!first_of_1)
      first_of_1 = i;
  }
  cr_assert(at[0] == 0 && at[n - 1] == 1 && first_of_1, "not two attempts: %s", curve);
  /* Resumed from its checkpoint (step 20 or later; the killed run's last
   * report may come after the requeue, at its step), not from the start. */
  cr_assert_geq(st[first_of_1], 20, "the second attempt started over: %s", curve);
  cr_assert_eq(st[n - 1], steps, "%s", curve);
  free(curve);
  /* The cursor of the second attempt leaves the first out. */
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?after=%llu&attempt=1",
           (unsigned long long)id, (unsigned long long)st[first_of_1]);
  curve = web_get_ok(port, path);
  size_t m = parse_points(curve, st, at, 4096);
  cr_assert(m > 0 && m < n && at[0] == 1, "%s", curve);
  free(curve);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?attempt=1", (unsigned long long)id);
  web_expect_error(port, path, 400, "attempt");
}

/* Job pages in Chromium: the requeued job's loss chart has one series per
 * attempt, none running back; the planned job's plan is tables. */
static void check_job_pages(const it_cluster *c, int port, uint64_t requeued, uint64_t planned,
                            uint64_t steps) {
  if (!web_have_chromium()) cr_skip_test("chromium not found");
  char profile[400], url[256], wait[256];
  snprintf(profile, sizeof(profile), "%s/chromium", c->dir);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)requeued);
  snprintf(wait, sizeof(wait), "document.querySelector('#chart-loss[data-last-step=\"%llu\"]')",
           (unsigned long long)steps);
  char *dom = web_chromium(url, profile, "job-requeued", wait);
  cr_assert_eq(web_dom_attr(dom, "chart-loss", "data-series"), 2, "not one series per attempt:\n%s",
               dom);
  cr_assert(strstr(dom, "data-monotonic=\"true\"") && !strstr(dom, "data-monotonic=\"false\""),
            "a series runs backwards:\n%s", dom);
  free(dom);
  /* The plan page reads /api/jobs/ID/plan, which the test reads itself
   * under ASan (tests/support/subset.h): the tables are the first pass's. */
  if (ty_test_subset()) return;
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)planned);
  dom = web_chromium(url, profile, "job-plan", "document.getElementById('plan-ops')");
  cr_assert(strstr(dom, "id=\"plan-summary\"") && strstr(dom, "id=\"plan-alternatives\"") &&
                strstr(dom, "Predicted step"),
            "the plan is not shown as tables:\n%s", dom);
  free(dom);
}

static uint64_t submit_mlp(ty_rpc_client *cl, const it_cluster *c, uint32_t tpn, int mode,
                           uint64_t steps, uint64_t ckpt_every, const char *name) {
  char ckpt[400];
  snprintf(ckpt, sizeof(ckpt), "%s/%s.onnx", c->dir, name);
  size_t len;
  uint8_t *cfg = rk_make_config(steps, ckpt_every, ckpt, &len);
  rk_job j;
  rk_graph_job(&j, 1, tpn, cfg, len, mode);
  j.job.name = (char *)name;
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof(err)), 0, "submit: %s", err);
  free(cfg);
  return id;
}

static void expect_completed(const it_cluster *c, ty_rpc_client *cl, uint64_t id,
                             uint32_t requeues) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED &&
                r->job->requeue_count == requeues,
            "job %llu did not complete after %u requeue(s) (logs in %s)", (unsigned long long)id,
            requeues, c->dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
}

/* A data-parallel job that an operator requeues after its first checkpoint
 * resumes from it: its curve is two attempts, each going up, and its page
 * draws one series per attempt. A tensor-parallel job's page shows its
 * plan as tables. */
Test(web, requeued_job_plots_by_attempt_and_plans_are_tables, .timeout = 400) {
  setenv("TRAINYARD_STEP_DELAY_MS", "25", 1); /* the requeue lands mid-run */
  const uint64_t steps = 200;
  it_cluster c;
  int port = web_start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  char sid[24], path[96];
  uint64_t tp = submit_mlp(cl, &c, 2, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR, 20, 0, "mlp-tp");
  expect_completed(&c, cl, tp, 0);
  snprintf(path, sizeof(path), "/api/jobs/%llu/plan", (unsigned long long)tp);
  char *plan = web_get_ok(port, path);
  cr_assert(strstr(plan, "\"strategy\":") && strstr(plan, "\"alternatives\":"), "%s", plan);
  free(plan);
  uint64_t id =
      submit_mlp(cl, &c, 1, TRAINYARD__PARALLELISM__PARALLELISM_DATA, steps, 20, "mlp-rq");
  for (int i = 0; progress_field(port, id, "checkpoint_step") < 20; i++) {
    cr_assert_lt(i, 1200, "no checkpoint (logs in %s)", c.dir);
    it_sleep_ms(50);
  }
  cr_assert_lt(progress_field(port, id, "step"), steps, "the job ended before the requeue");
  snprintf(sid, sizeof(sid), "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "requeue", sid, NULL}), 0);
  expect_completed(&c, cl, id, 1);
  for (int i = 0; progress_field(port, id, "step") != steps; i++) {
    cr_assert_lt(i, 100, "no final progress report");
    it_sleep_ms(100);
  }
  check_attempts(port, id, steps);
  check_job_pages(&c, port, id, tp, steps);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
