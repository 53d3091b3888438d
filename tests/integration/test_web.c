/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console (issue 16) against a real cluster training a real graph
 * job (trainrun ranks started by the workers):
 *   - its JSON documents: the node, the job in the list, its ranks, history
 *     and curve, and a clear 4xx naming the bad part of each bad request;
 *   - who may look: with --web-token-required, nothing without the token,
 *     the token as a bearer or as the cookie that /?token= sets;
 *   - per-user tokens from `trainctl web-token` under MUNGE: a user's
 *     console may cancel and hold only that user's jobs, as trainctl; an
 *     expired, revoked or malformed token is refused, naming why;
 *   - headless Chromium (Debian's) loading each page: the node table, the
 *     job list and the loss chart's points read back from the DOM, and a
 *     screenshot of each page saved in the build directory.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/ranks.h"

#define STEPS 200

static int web_port(const it_cluster *c) {
  char path[400], line[128];
  snprintf(path, sizeof(path), "%s/traind.ports", c->dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  int port = -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "web=", 4) == 0) port = atoi(line + 4);
  fclose(f);
  cr_assert_gt(port, 0, "traind wrote no web port");
  return port;
}

/* METHOD path with extra header lines; the whole response (head and body). */
static char *http_req(int port, const char *method, const char *path, const char *headers) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "web port %d: %s", port,
            strerror(errno));
  char req[2048];
  int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
                   method, path, headers ? headers : "");
  cr_assert_eq(write(fd, req, (size_t)n), n);
  ty_buf b;
  ty_buf_init(&b);
  char chunk[65536];
  ssize_t got;
  while ((got = read(fd, chunk, sizeof(chunk))) > 0)
    ty_buf_append(&b, chunk, (size_t)got);
  close(fd);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

static char *http_raw(int port, const char *path, const char *headers) {
  return http_req(port, "GET", path, headers);
}

static int status_of(const char *resp) {
  return atoi(resp + 9);
}

/* The body of a 200 answer to path (asserting the status). */
static char *get_ok(int port, const char *path) {
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body && status == 200, "GET %s: %d %s", path, status, body ? body : "");
  return body;
}

static void expect_status(int port, const char *path, int want, const char *says) {
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body, "GET %s: no answer", path);
  cr_assert_eq(status, want, "GET %s: %d, not %d: %s", path, status, want, body);
  cr_assert(strstr(body, says), "GET %s: the error should say \"%s\": %s", path, says, body);
  free(body);
}

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
  snprintf(series, sizeof(series), "trainyard_train_step{job=\"%llu\",name=\"mlp-web\"} ",
           (unsigned long long)id);
  bool seen = false;
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 1800; i++) {
    r = it_get_job(cl, id);
    if (r && r->job && it_is_final(r->job->state)) break;
    trainyard__get_job_response__free_unpacked(r, NULL);
    r = NULL;
    char *m = it_http_get_metrics(c->metrics_port);
    seen |= strstr(m, series) != NULL && strstr(m, "trainyard_train_loss{job=") != NULL;
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
  char path[128], want[64];
  char *cluster = get_ok(port, "/api/cluster");
  snprintf(want, sizeof(want), "\"name\":\"%s\",\"state\":\"UP\"", node);
  cr_assert(strstr(cluster, want), "%s", cluster);
  free(cluster);
  char *jobs = get_ok(port, "/api/jobs?state=COMPLETED&queue=default");
  snprintf(want, sizeof(want), "\"id\":%llu,\"name\":\"mlp-web\"", (unsigned long long)id);
  cr_assert(strstr(jobs, want) && strstr(jobs, "\"matched\":1"), "%s", jobs);
  free(jobs);
  jobs = get_ok(port, "/api/jobs?state=PENDING");
  cr_assert(strstr(jobs, "\"jobs\":[]"), "%s", jobs);
  free(jobs);
  snprintf(path, sizeof(path), "/api/jobs/%llu", (unsigned long long)id);
  /* Rank 0's last report may come a heartbeat after the job ended. */
  snprintf(want, sizeof(want), "\"step\":%d,", STEPS);
  char *job = NULL;
  for (int i = 0; i < 100; i++) {
    free(job);
    job = get_ok(port, path);
    if (strstr(job, want)) break;
    it_sleep_ms(100);
  }
  cr_assert(strstr(job, "\"ranks\":[{\"rank\":0") && strstr(job, "\"to\":\"COMPLETED\"") &&
                strstr(job, "\"kind\":\"graph\""),
            "%s", job);
  snprintf(want, sizeof(want), "\"step\":%d,", STEPS);
  cr_assert(strstr(job, want), "the last progress is not step %d: %s", STEPS, job);
  free(job);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress", (unsigned long long)id);
  char *curve = get_ok(port, path);
  cr_assert_geq(count(curve, "],["), 1, "fewer than two points: %s", curve);
  free(curve);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?after=%d", (unsigned long long)id, STEPS);
  curve = get_ok(port, path);
  cr_assert(strstr(curve, "\"points\":[]"), "points after the last step: %s", curve);
  free(curve);
}

static void check_refusals(int port, uint64_t id) {
  char path[128];
  expect_status(port, "/api/jobs/abc", 400, "is not a number");
  expect_status(port, "/api/jobs/99999", 404, "job 99999 not found");
  expect_status(port, "/api/jobs?limit=0", 400, "limit");
  expect_status(port, "/api/jobs?limit=x", 400, "limit");
  expect_status(port, "/api/jobs?state=RUNNING,NOPE", 400, "\\\"NOPE\\\" is not a job state");
  expect_status(port, "/api/jobs?queue=%zz", 400, "queue: bad %-escape");
  expect_status(port, "/api/jobs?colour=red", 400, "unknown query parameter \\\"colour\\\"");
  expect_status(port, "/api/nothing", 404, "no such page");
  expect_status(port, "/static/missing.js", 404, "no such file");
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?after=-1", (unsigned long long)id);
  expect_status(port, path, 400, "after");
  snprintf(path, sizeof(path), "/api/jobs/%llu/plan", (unsigned long long)id);
  expect_status(port, path, 404, "not found"); /* data parallel: no plan */
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
  }
  char first[48], second[48];
  snprintf(first, sizeof(first), "{\"id\":%llu,", (unsigned long long)ids[1]);
  snprintf(second, sizeof(second), "{\"id\":%llu,", (unsigned long long)ids[0]);
  /* History is the store's: the last end is there once its commit is. */
  char *page = NULL;
  for (int i = 0; i < 100 && (!page || !strstr(page, first)); i++) {
    if (page) it_sleep_ms(50);
    free(page);
    page = get_ok(port, "/api/history?limit=2&state=COMPLETED");
  }
  cr_assert(strstr(page, first) && strstr(page, second) &&
                strstr(page, first) < strstr(page, second),
            "not the two newest, newest first: %s", page);
  const char *next = strstr(page, "\"next\":\"");
  cr_assert(next, "no cursor to the older page: %s", page);
  snprintf(path, sizeof(path), "/api/history?limit=2&state=COMPLETED&before=%.*s",
           (int)strcspn(next + 8, "\""), next + 8);
  free(page);
  page = get_ok(port, path);
  snprintf(first, sizeof(first), "{\"id\":%llu,", (unsigned long long)trained);
  cr_assert(strstr(page, first) && strstr(page, "\"next\":null") && count(page, "{\"id\":") == 1,
            "the older page is not the training job alone: %s", page);
  free(page);
  expect_status(port, "/api/history?state=RUNNING", 400, "RUNNING is not in the history");
  expect_status(port, "/api/history?before=12", 400, "before: \\\"12\\\" is not a cursor");
  expect_status(port, "/api/history?limit=0", 400, "limit");
}

/* ---- the browser --------------------------------------------------------------------------- */

/* Runs headless Chromium on url (tests/integration/browser.py, in real
 * time over the DevTools protocol) until the JavaScript expression `wait`
 * holds: the DOM then, and a screenshot in TY_ARTIFACTS/web-SHOT.png
 * (shot NULL: none). With `ready` (a file), the browser runs in the
 * background, creating it once `ready_when` holds: *bg is its pid, and
 * browser_finish gives the DOM. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s: %s", path, strerror(errno));
  ty_buf b;
  ty_buf_init(&b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    ty_buf_append(&b, chunk, n);
  fclose(f);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

static pid_t browser_start(const char *url, const char *profile, const char *shot, const char *wait,
                           const char *ready, const char *ready_when) {
  const char *art = getenv("TY_ARTIFACTS");
  char out[600], png[600] = "";
  snprintf(out, sizeof(out), "%s.dom", profile);
  unlink(out);
  if (shot && art && *art) snprintf(png, sizeof(png), "%s/web-%s.png", art, shot);
  const char *argv[20] = {"python3", getenv("TY_BROWSER"), url,     out,         "--wait",
                          wait,      "--profile",          profile, "--timeout", "60"};
  size_t n = 10;
  if (png[0]) argv[n++] = "--screenshot", argv[n++] = png;
  if (ready)
    argv[n++] = "--ready", argv[n++] = ready, argv[n++] = "--ready-when", argv[n++] = ready_when;
  argv[n] = NULL;
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  return pid;
}

static char *browser_finish(pid_t pid, const char *profile, const char *wait) {
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  char out[600];
  snprintf(out, sizeof(out), "%s.dom", profile);
  char *dom = access(out, R_OK) == 0 ? read_text(out) : strdup("(no DOM)");
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the page never had %s (browser.py: %d):\n%s",
            wait, st, dom);
  return dom;
}

static char *chromium(const char *url, const char *profile, const char *shot, const char *wait) {
  return browser_finish(browser_start(url, profile, shot, wait, NULL, NULL), profile, wait);
}

/* The number in attribute `attr="N"` of the element with id `id`, or -1. */
static long dom_attr(const char *dom, const char *id, const char *attr) {
  char key[64];
  snprintf(key, sizeof(key), "id=\"%s\"", id);
  const char *tag = strstr(dom, key);
  if (!tag) return -1;
  const char *end = strchr(tag, '>');
  snprintf(key, sizeof(key), "%s=\"", attr);
  const char *a = strstr(tag, key);
  return a && a < end ? strtol(a + strlen(key), NULL, 10) : -1;
}

static void check_browser(const it_cluster *c, int port, uint64_t id, const char *node) {
  const char *bin = getenv("TY_CHROMIUM");
  if (!bin || !*bin) cr_skip_test("chromium not found");
  char profile[400], url[256], cell[128], wait[256];
  snprintf(profile, sizeof(profile), "%s/chromium", c->dir);
  /* Overview: the node table holds the worker. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/", port);
  char *dom = chromium(url, profile, "overview", "document.querySelector('#nodes-table tbody tr')");
  snprintf(cell, sizeof(cell), "<td class=\"\">%s</td>", node);
  cr_assert(strstr(dom, cell), "the node table does not list %s:\n%s", node, dom);
  free(dom);
  /* Job list, filtered as a user would: the job with a link to its page. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/jobs?state=COMPLETED", port);
  dom = chromium(url, profile, "jobs", "document.querySelector('#jobs-table tbody tr')");
  snprintf(cell, sizeof(cell), "<a href=\"#/job/%llu\">%llu</a>", (unsigned long long)id,
           (unsigned long long)id);
  cr_assert(strstr(dom, cell) && strstr(dom, "mlp-web"), "the job list does not show job %llu:\n%s",
            (unsigned long long)id, dom);
  free(dom);
  /* Job page: the loss chart holds the curve, up to the last step. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)id);
  snprintf(wait, sizeof(wait),
           "document.querySelector('#chart-loss[data-last-step=\"%d\"]') && "
           "document.getElementById('events-table')",
           STEPS);
  dom = chromium(url, profile, "job", wait);
  cr_assert_geq(dom_attr(dom, "chart-loss", "data-points"), 2, "the loss chart is empty:\n%s", dom);
  cr_assert(strstr(dom, "id=\"ranks-table\""), "%s", dom);
  free(dom);
  /* History: the store's finished jobs, newest first. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/history", port);
  dom = chromium(url, profile, "history", "document.getElementById('view').dataset.historyRows");
  cr_assert(strstr(dom, "id=\"history-table\"") && strstr(dom, "mlp-web"), "%s", dom);
  cr_assert_eq(dom_attr(dom, "view", "data-history-rows"), 3, "%s", dom);
  free(dom);
}

/* One worker with 2 CPUs and the console under --auth none: loopback is
 * the operator, as for trainctl. The console's port. */
static int start_local(it_cluster *c) {
  it_options o = {.auth_none = true,
                  .traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(c, 1, 2, &o);
  return web_port(c);
}

Test(web, console_serves_a_training_cluster, .timeout = 400) {
  /* 200 steps over at least 3 s, so the curve has several progress reports
   * however fast the machine trains the MLP (a quiet one did it in one). */
  setenv("TRAINYARD_STEP_DELAY_MS", "15", 1);
  it_cluster c;
  int port = start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = train(&c, cl);
  check_api(port, id, c.name[0]);
  check_refusals(port, id);
  check_history(cl, port, id);
  check_browser(&c, port, id, c.name[0]);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

static void read_token(const it_cluster *c, char *token, size_t cap) {
  char path[400];
  snprintf(path, sizeof(path), "%s/traind/web.token", c->dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  cr_assert(fgets(token, (int)cap, f));
  fclose(f);
  token[strcspn(token, "\n")] = '\0';
  cr_assert_eq(strlen(token), 32, "token \"%s\"", token);
  struct stat st;
  cr_assert(stat(path, &st) == 0 && (st.st_mode & 077) == 0, "web.token is readable by others");
}

/* GET path with one header line (or none, NULL) expecting `status`; the
 * whole answer, for more checks (the caller frees it). */
static char *expect_raw(int port, const char *path, const char *header, int status) {
  char hdr[256] = "";
  if (header) snprintf(hdr, sizeof(hdr), "%s\r\n", header);
  char *r = http_raw(port, path, hdr);
  cr_assert_eq(status_of(r), status, "GET %s with \"%s\": %s", path, hdr, r);
  return r;
}

static void expect_only(int port, const char *path, const char *header, int status) {
  free(expect_raw(port, path, header, status));
}

/* Under MUNGE (the harness' default) loopback is nobody in particular: the
 * token is needed, as a bearer or as the cookie that /?token= sets. */
Test(web, token_needed_under_munge, .timeout = 60) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 0, 1, &o);
  int port = web_port(&c);
  char token[64] = "", path[200], hdr[200];
  read_token(&c, token, sizeof(token));
  char *r = expect_raw(port, "/api/cluster", NULL, 401);
  cr_assert(strstr(r, "web.token"), "the refusal should say where the token is: %s", r);
  free(r);
  expect_only(port, "/", "Authorization: Bearer 0123456789abcdef0123456789abcdef", 401);
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
  expect_only(port, "/api/cluster", hdr, 200);
  snprintf(path, sizeof(path), "/?token=%s", token);
  r = expect_raw(port, path, NULL, 200);
  cr_assert(strstr(r, "Set-Cookie: trainyard_token=") && strstr(r, "HttpOnly") &&
                strstr(r, "SameSite=Strict"),
            "%s", r);
  free(r);
  expect_only(port, "/?token=wrong", NULL, 401);
  snprintf(hdr, sizeof(hdr), "Cookie: other=1; trainyard_token=%s", token);
  expect_only(port, "/api/jobs", hdr, 200);
  it_cluster_stop(&c);
}

/* --auth none with --web-token-required: loopback needs the token too. */
Test(web, token_required_when_asked, .timeout = 60) {
  it_cluster c;
  it_options o = {
      .auth_none = true,
      .traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", "--web-token-required", NULL}};
  it_cluster_start_with(&c, 0, 1, &o);
  int port = web_port(&c);
  char token[64] = "", hdr[200];
  read_token(&c, token, sizeof(token));
  expect_only(port, "/api/cluster", NULL, 401);
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
  expect_only(port, "/api/cluster", hdr, 200);
  it_cluster_stop(&c);
}

/* ---- per-user tokens ----------------------------------------------------------------------- */

typedef struct user {
  char name[32];
  uid_t uid;
  gid_t gid;
} user;

/* trainctl ARGS... as u: its exit status; stdout in *out (heap). */
static int trainctl_as(const it_cluster *c, const user *u, char **out, const char *const *args) {
  const char *argv[16] = {getenv("TY_TRAINCTL")};
  size_t n = 1;
  for (size_t i = 0; args[i] && n < 15; i++)
    argv[n++] = args[i];
  char *err = NULL;
  int rc = it_run_as(c, u->uid, u->gid, "/tmp", out, &err, argv);
  if (rc != 0) fprintf(stderr, "trainctl as %s: %s", u->name, err);
  free(err);
  return rc;
}

static uint64_t sleep_as(const it_cluster *c, const user *u) {
  char *out = NULL;
  cr_assert_eq(
      trainctl_as(c, u, &out,
                  (const char *[]){"submit", "--command", "-q", "--", "sleep", "300", NULL}),
      0);
  uint64_t id = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(id, 0);
  return id;
}

/* `trainctl web-token [ttl]` as u: the token from the address it prints. */
static void token_as(const it_cluster *c, const user *u, const char *ttl, char *tok, size_t cap) {
  char *out = NULL;
  const char *args[] = {"web-token", ttl ? "--ttl" : NULL, ttl, NULL};
  cr_assert_eq(trainctl_as(c, u, &out, args), 0);
  const char *t = strstr(out, "/?token=");
  cr_assert(t && strstr(out, "http://127.0.0.1:"), "web-token printed no console address: %s", out);
  snprintf(tok, cap, "%.*s", (int)strcspn(t + 8, "\n"), t + 8);
  cr_assert_eq(strlen(tok), 37, "token \"%s\"", tok);
  free(out);
}

/* METHOD path as the token's user; the answer must be `status` and say `says`. */
static void as_token(int port, const char *method, const char *path, const char *tok, int status,
                     const char *says) {
  char hdr[256];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\nX-Requested-With: test\r\n", tok);
  char *r = http_req(port, method, path, hdr);
  cr_assert_eq(status_of(r), status, "%s %s: %s", method, path, r);
  cr_assert(strstr(r, says), "%s %s should say \"%s\": %s", method, path, says, r);
  free(r);
}

static void job_path(char *buf, size_t cap, uint64_t id, const char *tail) {
  snprintf(buf, cap, "/api/jobs/%llu%s", (unsigned long long)id, tail);
}

/* ---- event streams ----------------------------------------------------------------------------
 */

/* Opens GET path (with header lines hdr) and leaves the stream open. */
static int sse_open(int port, const char *path, const char *hdr) {
  int fd = it_raw_connect(port);
  cr_assert_geq(fd, 0);
  char req[1024];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, hdr);
  cr_assert_eq(write(fd, req, (size_t)n), n);
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

/* Reads the stream into seen (NUL-terminated) until it holds `needle`. */
static void sse_until(int fd, ty_buf *seen, const char *needle) {
  while (!seen->data || !strstr((char *)seen->data, needle)) {
    char chunk[4096];
    ssize_t got = read(fd, chunk, sizeof(chunk));
    cr_assert_gt(got, 0, "the stream ended or went quiet before \"%s\":\n%s", needle,
                 seen->data ? (char *)seen->data : "");
    ty_buf_append(seen, chunk, (size_t)got);
    ty_buf_append(seen, "", 1);
    seen->len--;
  }
}

/* Streams as alice: the head, then a job event when an operator holds
 * bob's job that she watches, and a cluster event when she cancels hers;
 * bad parameters named. */
static void check_streams(int port, const char *tok, const char *admin, uint64_t mine,
                          uint64_t bobs) {
  char hdr[160], path[96], want[96];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
  snprintf(path, sizeof(path), "/api/events?job=%llu", (unsigned long long)bobs);
  int job_fd = sse_open(port, path, hdr), all_fd = sse_open(port, "/api/events", hdr);
  ty_buf job_seen = {0}, all_seen = {0};
  sse_until(job_fd, &job_seen, "retry: 3000\n\n");
  sse_until(all_fd, &all_seen, "retry: 3000\n\n");
  cr_assert(strstr((char *)job_seen.data, "HTTP/1.1 200") &&
                strstr((char *)job_seen.data, "Content-Type: text/event-stream"),
            "%s", (char *)job_seen.data);
  job_path(path, sizeof(path), bobs, "/hold");
  as_token(port, "POST", path, admin, 200, "\"action\":\"hold\"");
  snprintf(want, sizeof(want), "event: job\ndata: {\"id\":%llu,\"state\":\"PENDING\"}\n\n",
           (unsigned long long)bobs);
  sse_until(job_fd, &job_seen, want);
  job_path(path, sizeof(path), mine, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  sse_until(all_fd, &all_seen, "event: cluster\ndata: {\"gen\":");
  close(job_fd), close(all_fd);
  ty_buf_close(&job_seen), ty_buf_close(&all_seen);
  as_token(port, "GET", "/api/events?job=abc", tok, 400, "job: \\\"abc\\\" is not a number");
  as_token(port, "GET", "/api/events?job=99999", tok, 404, "job 99999 not found");
  as_token(port, "GET", "/api/events?job=1&after=-1", tok, 400, "after");
}

/* The job page follows the job through the event stream, not by polling:
 * opened on alice's job, it shows the cancel made elsewhere while its
 * stream is live (the page would poll only every 30 s then). */
static void check_live_page(const it_cluster *c, int port, const char *tok, uint64_t id) {
  const char *bin = getenv("TY_CHROMIUM");
  if (!bin || !*bin) return; /* the API half ran; no browser here */
  char profile[400], url[256], ready[400], path[96];
  snprintf(profile, sizeof(profile), "%s/chromium-live", c->dir);
  snprintf(ready, sizeof(ready), "%s/live.ready", c->dir);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/?token=%s#/job/%llu", port, tok,
           (unsigned long long)id);
  const char *wait = "document.body.dataset.live === 'events' && "
                     "document.querySelector('#job-summary .state-CANCELLED')";
  pid_t pid = browser_start(url, profile, "job-live", wait, ready,
                            "document.body.dataset.live === 'events' && "
                            "document.querySelector('#job-summary .state-PENDING')");
  for (int i = 0; access(ready, F_OK) != 0; i++) {
    cr_assert_lt(i, 600, "the page never went live");
    it_sleep_ms(50);
  }
  job_path(path, sizeof(path), id, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  char *dom = browser_finish(pid, profile, wait);
  cr_assert(strstr(dom, "(live)"), "%s", dom);
  free(dom);
}

/* Alice's console acts as alice: her jobs, not bob's, as `trainctl cancel`
 * and `trainctl job hold` would; what it may not do is a 403 naming why. */
static void check_user_actions(int port, const char *tok, uint64_t mine, uint64_t bobs,
                               const char *bob) {
  char path[128], want[128];
  as_token(port, "GET", "/api/cluster", tok, 200, "\"operator\":false");
  job_path(path, sizeof(path), bobs, "/cancel");
  snprintf(want, sizeof(want), "permission denied: it belongs to %s", bob);
  as_token(port, "POST", path, tok, 403, want);
  job_path(path, sizeof(path), bobs, "/hold");
  as_token(port, "POST", path, tok, 403, want);
  /* Without X-Requested-With (a form, another site): refused before anything. */
  char hdr[128];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
  job_path(path, sizeof(path), mine, "/cancel");
  char *r = http_req(port, "POST", path, hdr);
  cr_assert(status_of(r) == 403 && strstr(r, "X-Requested-With"), "%s", r);
  free(r);
  job_path(path, sizeof(path), mine, "/explode");
  as_token(port, "POST", path, tok, 404, "is not one of cancel, hold, release");
  as_token(port, "POST", "/api/jobs/99999/cancel", tok, 404, "job 99999 not found");
  as_token(port, "POST", "/api/cluster", tok, 405, "does not take POST");
  job_path(path, sizeof(path), mine, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  as_token(port, "POST", path, tok, 409, "is already CANCELLED");
  job_path(path, sizeof(path), mine, "");
  as_token(port, "GET", path, tok, 200, "\"to\":\"CANCELLED\"");
  /* History is hers alone, as `trainctl history`'s. */
  snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)mine);
  as_token(port, "GET", "/api/history", tok, 200, want);
  snprintf(path, sizeof(path), "/api/history?user=%s", bob);
  as_token(port, "GET", path, tok, 403, "only operators see other users' jobs");
}

Test(web, per_user_tokens_act_as_their_user, .timeout = 180) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 1, 1, &o);
  int port = web_port(&c);
  user alice, bob;
  it_user_add(alice.name, sizeof(alice.name), &alice.uid, &alice.gid);
  it_user_add(bob.name, sizeof(bob.name), &bob.uid, &bob.gid);
  user root = {"root", 0, 0}; /* a drained node keeps the jobs pending: holdable */
  cr_assert_eq(trainctl_as(&c, &root, NULL, (const char *[]){"node", "drain", c.name[0], NULL}), 0);
  uint64_t mine = sleep_as(&c, &alice), bobs = sleep_as(&c, &bob), watched = sleep_as(&c, &alice),
           streamed = sleep_as(&c, &alice);
  char tok[64], short_tok[64], admin[64], hdr[128];
  token_as(&c, &alice, NULL, tok, sizeof(tok));
  check_user_actions(port, tok, mine, bobs, bob.name);
  /* The shared token (web.token, traind's user) is an operator's. */
  read_token(&c, admin, sizeof(admin));
  check_streams(port, tok, admin, streamed, bobs);
  check_live_page(&c, port, tok, watched);
  /* Expired, revoked, malformed and unknown tokens: 401 naming which. */
  token_as(&c, &alice, "1s", short_tok, sizeof(short_tok));
  it_sleep_ms(1500);
  as_token(port, "GET", "/api/cluster", short_tok, 401, "token: expired");
  char *out = NULL;
  cr_assert_eq(trainctl_as(&c, &alice, &out, (const char *[]){"web-token", "--revoke", NULL}), 0);
  cr_assert(strstr(out, "revoked 1 token"), "%s", out);
  free(out);
  as_token(port, "GET", "/api/cluster", tok, 401, "token: revoked");
  as_token(port, "GET", "/api/cluster", "tyw1.zz", 401, "token: not a console token");
  as_token(port, "GET", "/api/cluster", "tyw1.0123456789abcdef0123456789abcdef", 401,
           "token: unknown to this controller");
  snprintf(hdr, sizeof(hdr), "Cookie: trainyard_token=%s", tok);
  expect_only(port, "/api/jobs", hdr, 401);
  /* trainctl's own rejections. */
  cr_assert_neq(trainctl_as(&c, &alice, NULL, (const char *[]){"web-token", "--ttl", "100d", NULL}),
                0);
  cr_assert_neq(trainctl_as(&c, &alice, NULL, (const char *[]){"web-token", "--ttl", "soon", NULL}),
                0);
  it_cluster_stop(&c);
}

/* ---- a requeued job, and a plan -----------------------------------------------------------------
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
  char *job = get_ok(port, path);
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
  char *curve = get_ok(port, path);
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
  curve = get_ok(port, path);
  size_t m = parse_points(curve, st, at, 4096);
  cr_assert(m > 0 && m < n && at[0] == 1, "%s", curve);
  free(curve);
  snprintf(path, sizeof(path), "/api/jobs/%llu/progress?attempt=1", (unsigned long long)id);
  expect_status(port, path, 400, "attempt");
}

/* Job pages in Chromium: the requeued job's loss chart has one series per
 * attempt, none running back; the planned job's plan is tables. */
static void check_job_pages(const it_cluster *c, int port, uint64_t requeued, uint64_t planned,
                            uint64_t steps) {
  const char *bin = getenv("TY_CHROMIUM");
  if (!bin || !*bin) cr_skip_test("chromium not found");
  char profile[400], url[256], wait[256];
  snprintf(profile, sizeof(profile), "%s/chromium", c->dir);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)requeued);
  snprintf(wait, sizeof(wait), "document.querySelector('#chart-loss[data-last-step=\"%llu\"]')",
           (unsigned long long)steps);
  char *dom = chromium(url, profile, "job-requeued", wait);
  cr_assert_eq(dom_attr(dom, "chart-loss", "data-series"), 2, "not one series per attempt:\n%s",
               dom);
  cr_assert(strstr(dom, "data-monotonic=\"true\"") && !strstr(dom, "data-monotonic=\"false\""),
            "a series runs backwards:\n%s", dom);
  free(dom);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu", port, (unsigned long long)planned);
  dom = chromium(url, profile, "job-plan", "document.getElementById('plan-ops')");
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
  int port = start_local(&c);
  ty_rpc_client *cl = it_client(&c);
  char sid[24], path[96];
  uint64_t tp = submit_mlp(cl, &c, 2, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR, 20, 0, "mlp-tp");
  expect_completed(&c, cl, tp, 0);
  snprintf(path, sizeof(path), "/api/jobs/%llu/plan", (unsigned long long)tp);
  char *plan = get_ok(port, path);
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
