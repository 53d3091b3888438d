/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /metrics behind a bearer token (--metrics-token-file, as Prometheus'
 * `authorization: credentials_file:` sends it), against real daemons:
 * 401 without a token and with a wrong one (each counted in
 * trainyard_http_unauthorized_total), 200 with the right one, on traind
 * and on a worker; a token file every user may read refused at
 * start, naming it, by both daemons; the token rotated without a restart
 * (traind on `trainctl reconfigure`, a worker on SIGHUP), and a reload
 * that finds the file readable by every user refused with the old token
 * kept; a real Prometheus scraping both with `authorization:
 * credentials_file:` (targets up), and without it (down).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define TOKEN "k3H9-vQ2x_Lm8pR4tY6wZ1aB5cD7eF0g"
#define TOKEN2 "Zp4-second-token_8Qw2Er5Ty7Ui9Op"
#define TOKEN3 "never-applied-token-0123456789ab"

/* A directory of this test's own with a token file of `mode` in it. */
static void token_file(char *dir, size_t dlen, char *path, size_t plen, mode_t mode) {
  snprintf(dir, dlen, "/tmp/ty-mtok-XXXXXX");
  cr_assert(mkdtemp(dir), "mkdtemp");
  snprintf(path, plen, "%s/metrics.token", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f, "cannot write %s", path);
  fprintf(f, "%s\n", TOKEN);
  fclose(f);
  cr_assert_eq(chmod(path, mode), 0);
}

static void remove_token_dir(const char *dir, const char *path) {
  unlink(path);
  rmdir(dir);
}

/* A cluster whose traind and worker guard /metrics with a token file of
 * mode 600 (TOKEN) in a directory of the test's own; the file's paths and
 * the daemons' arguments live in *g, which outlives the cluster. */
typedef struct guarded {
  char dir[64], path[128];
  const char *args[3];
} guarded;

static void start_guarded(it_cluster *c, guarded *g) {
  token_file(g->dir, sizeof g->dir, g->path, sizeof g->path, 0600);
  g->args[0] = "--metrics-token-file";
  g->args[1] = g->path;
  g->args[2] = NULL;
  it_cluster_start_with(c, 1, 1, &(it_options){.traind_args = g->args, .worker_args = g->args});
}

/* GET /metrics with `auth` as the Authorization header (NULL: none): the
 * status, and the body in *body (may be NULL). */
static int get_metrics(int port, const char *auth, char **body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to port %d", port);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET /metrics HTTP/1.1\r\nHost: localhost\r\n%s%s%sConnection: close\r\n\r\n",
                   auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
  cr_assert_eq(write(fd, req, (size_t)n), n);
  size_t cap = 1 << 16, len = 0;
  char *resp = malloc(cap);
  ssize_t r;
  while ((r = read(fd, resp + len, cap - len - 1)) > 0) {
    len += (size_t)r;
    if (len + 1 == cap) resp = realloc(resp, cap *= 2);
  }
  close(fd);
  resp[len] = '\0';
  int status = strncmp(resp, "HTTP/1.1 ", 9) == 0 ? atoi(resp + 9) : 0;
  if (status == 401)
    cr_assert(strstr(resp, "WWW-Authenticate: Bearer"), "a 401 without WWW-Authenticate: %s", resp);
  if (body)
    *body = resp;
  else
    free(resp);
  return status;
}

static void check_guarded(const char *what, int port, const char *family) {
  char *body = NULL;
  cr_assert_eq(get_metrics(port, "Bearer " TOKEN, &body), 200, "%s: /metrics with the token", what);
  cr_assert(strstr(body, "trainyard_http_unauthorized_total{listener=\"metrics\"} 0\n"),
            "%s: no 401 counter from 0 before the first 401:\n%s", what, body);
  free(body);
  cr_assert_eq(get_metrics(port, NULL, NULL), 401, "%s: /metrics without a token", what);
  cr_assert_eq(get_metrics(port, "Bearer not-the-token-0123456789", NULL), 401,
               "%s: /metrics with a wrong token", what);
  cr_assert_eq(get_metrics(port, "Bearer " TOKEN "x", NULL), 401,
               "%s: /metrics with the token and more", what);
  cr_assert_eq(get_metrics(port, "Basic " TOKEN, NULL), 401, "%s: another scheme", what);
  body = NULL;
  cr_assert_eq(get_metrics(port, "Bearer " TOKEN, &body), 200, "%s: /metrics with the token", what);
  cr_assert(strstr(body, family), "%s: /metrics with the token has no %s", what, family);
  cr_assert(strstr(body, "trainyard_http_unauthorized_total{listener=\"metrics\"} 4\n"),
            "%s: the four 401s are not counted:\n%s", what, body);
  free(body);
}

Test(metrics_auth, token_guards_traind_and_worker_metrics, .timeout = 120) {
  guarded gd;
  it_cluster c;
  start_guarded(&c, &gd);
  check_guarded("traind", c.metrics_port, "trainyard_nodes");
  check_guarded("trainworkerd", c.worker_metrics_port[0], "trainyard_worker_");
  it_cluster_stop(&c);
  remove_token_dir(gd.dir, gd.path);
}

/* Rewrites the token file in place (its mode kept) with `token`. */
static void rewrite_token(const char *path, const char *token) {
  FILE *f = fopen(path, "w");
  cr_assert(f, "cannot rewrite %s", path);
  fprintf(f, "%s\n", token);
  fclose(f);
}

/* Polls until /metrics on `port` answers `status` to `token`'s bearer
 * (up to 30 s: a loaded machine's daemon may be slow to read its file). */
static bool answers(int port, const char *token, int status) {
  char auth[128];
  snprintf(auth, sizeof auth, "Bearer %s", token);
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end;) {
    if (get_metrics(port, auth, NULL) == status) return true;
    it_sleep_ms(50);
  }
  return false;
}

Test(metrics_auth, token_rotates_on_reload, .timeout = 120) {
  guarded gd;
  it_cluster c;
  start_guarded(&c, &gd);
  int tport = c.metrics_port, wport = c.worker_metrics_port[0];
  rewrite_token(gd.path, TOKEN2);
  /* traind: trainctl reconfigure reads the file again and says so. */
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(out, "metrics token: replaced") && !strstr(out, TOKEN2),
            "reconfigure's answer: %s", out);
  free(out);
  cr_assert_eq(get_metrics(tport, "Bearer " TOKEN, NULL), 401, "traind: the old token");
  cr_assert_eq(get_metrics(tport, "Bearer " TOKEN2, NULL), 200, "traind: the new token");
  /* The worker keeps its token until it is told. */
  cr_assert_eq(get_metrics(wport, "Bearer " TOKEN, NULL), 200, "worker before SIGHUP");
  cr_assert_eq(kill(c.worker[0], SIGHUP), 0);
  cr_assert(answers(wport, TOKEN2, 200), "worker: the new token after SIGHUP");
  cr_assert_eq(get_metrics(wport, "Bearer " TOKEN, NULL), 401, "worker: the old token");
  cr_assert_eq(kill(c.worker[0], 0), 0, "the worker died of SIGHUP");
  /* A file every user may read is refused on reload; the token stays. */
  rewrite_token(gd.path, TOKEN3);
  cr_assert_eq(chmod(gd.path, 0644), 0);
  char *err = NULL;
  out = NULL;
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"reconfigure", NULL}), 0,
                "reconfigure applied a world-readable token file");
  cr_assert(err && strstr(err, gd.path) && strstr(err, "readable") && strstr(err, "stay"),
            "the refusal does not name the file: %s", err ? err : "(none)");
  free(out);
  free(err);
  /* ... as a bad file (EINVAL), not as the caller's permission (EPERM,
   * which trainctl explains as a missing MUNGE credential). */
  char tlog[400];
  snprintf(tlog, sizeof tlog, "%s/traind.stderr", c.dir);
  char *tl = it_read_text(tlog);
  const char *refusal = tl ? strstr(tl, "refused Reconfigure") : NULL;
  cr_assert(refusal && strstr(refusal, "(EINVAL)") && !strstr(refusal, "(EPERM)"), "%s",
            refusal ? refusal : "no refusal in traind's log");
  free(tl);
  cr_assert_eq(kill(c.worker[0], SIGHUP), 0);
  char wlog[400];
  snprintf(wlog, sizeof wlog, "%s/%s.stderr", c.dir, c.name[0]);
  char *text = NULL; /* up to 30 s for the worker to log its refusal */
  for (int64_t end = ty_mono_ms() + 30000;
       ty_mono_ms() < end && !(text && strstr(text, "running metrics token stays"));) {
    free(text);
    it_sleep_ms(50);
    text = it_read_text(wlog);
  }
  cr_assert(text && strstr(text, "running metrics token stays") && strstr(text, gd.path),
            "the worker's log has no refusal naming %s", gd.path);
  cr_assert(!strstr(text, TOKEN2) && !strstr(text, TOKEN3), "a token in the worker's log");
  free(text);
  cr_assert_eq(get_metrics(tport, "Bearer " TOKEN2, NULL), 200, "traind kept its token");
  cr_assert_eq(get_metrics(wport, "Bearer " TOKEN2, NULL), 200, "the worker kept its token");
  it_cluster_stop(&c);
  remove_token_dir(gd.dir, gd.path);
}

/* Runs a daemon that must refuse to start: its exit status, its stderr in
 * log. Killed (and the test failed) if it is still up after many polls. */
static int refused_start(char *const argv[], const char *log) {
  pid_t pid = it_spawn(NULL, log, argv);
  int st = 0;
  for (int i = 0; i < 300; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    it_sleep_ms(100);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  cr_assert_fail("%s started with a world-readable token file (log %s)", argv[0], log);
  return 0;
}

Test(metrics_auth, world_readable_token_file_refused, .timeout = 120) {
  char dir[64], path[128], state[160], log[160];
  token_file(dir, sizeof dir, path, sizeof path, 0644);
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(log, sizeof log, "%s/daemon.log", dir);
  char *traind[] = {(char *)it_bin("TY_TRAIND"),
                    "--listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "127.0.0.1:0",
                    "--state-dir",
                    state,
                    "--socket",
                    "none",
                    "--auth",
                    "none",
                    "--metrics-token-file",
                    path,
                    NULL};
  cr_assert_neq(refused_start(traind, log), 0, "traind exited 0");
  char *text = it_read_text(log);
  cr_assert(text && strstr(text, path) && strstr(text, "readable"),
            "traind's refusal does not name the file: %s", text ? text : "(no log)");
  free(text);
  char *worker[] = {(char *)it_bin("TY_TRAINWORKERD"),
                    "--controller",
                    "127.0.0.1:1",
                    "--state-dir",
                    state,
                    "--io-listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "127.0.0.1:0",
                    "--auth",
                    "none",
                    "--no-cgroups",
                    "--metrics-token-file",
                    path,
                    NULL};
  unlink(log);
  cr_assert_neq(refused_start(worker, log), 0, "trainworkerd exited 0");
  text = it_read_text(log);
  cr_assert(text && strstr(text, path) && strstr(text, "readable"),
            "trainworkerd's refusal does not name the file: %s", text ? text : "(no log)");
  free(text);
  unlink(log);
  remove_token_dir(dir, path);
}

/* ---- a real Prometheus ------------------------------------------------------------------- */

/* Jobs "traind" and "trainworkerd" with the token file, "bare" without. */
static void write_prom_config(const it_cluster *c, const char *path, const char *token) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
          "scrape_configs:\n"
          "  - job_name: traind\n    authorization:\n      credentials_file: %s\n"
          "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
          "  - job_name: trainworkerd\n    authorization:\n      credentials_file: %s\n"
          "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
          "  - job_name: bare\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
          token, c->metrics_port, token, c->worker_metrics_port[0], c->metrics_port);
  fclose(f);
}

/* The value of `up{job="JOB"}` once Prometheus has scraped it (0, 1), or -1. */
static int up_of(int port, const char *job) {
  char path[256];
  snprintf(path, sizeof path, "/api/v1/query?query=up%%7Bjob%%3D%%22%s%%22%%7D", job);
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body && status == 200, "query up{job=%s}: HTTP %d", job, status);
  const char *v = strstr(body, "\"value\":[");
  v = v ? strstr(v, ",\"") : NULL;
  int up = v ? atoi(v + 2) : -1;
  free(body);
  return up;
}

static int wait_up(int port, const char *job, int want) {
  int up = -1;
  for (int i = 0; i < 300 && (up = up_of(port, job)) != want; i++)
    it_sleep_ms(100);
  return up;
}

Test(metrics_auth, prometheus_scrapes_with_the_credentials_file, .timeout = 180) {
  const char *prom = getenv("TY_PROMETHEUS");
  if (!prom || !*prom) cr_skip_test("prometheus not found");
  guarded gd;
  it_cluster c;
  start_guarded(&c, &gd);
  char cfg[340], data[340], log[340];
  snprintf(cfg, sizeof cfg, "%s/prometheus.yml", c.dir);
  snprintf(data, sizeof data, "%s/prometheus-data", c.dir);
  snprintf(log, sizeof log, "%s/prometheus.stderr", c.dir);
  write_prom_config(&c, cfg, gd.path);
  pid_t pid;
  int port = it_prometheus_start(prom, c.dir, cfg, data, log, &pid);
  cr_assert_eq(wait_up(port, "traind", 1), 1, "traind not up with the token");
  cr_assert_eq(wait_up(port, "trainworkerd", 1), 1, "the worker not up with the token");
  cr_assert_eq(wait_up(port, "bare", 0), 0, "traind up to a scrape without the token");
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  it_cluster_stop(&c);
  remove_token_dir(gd.dir, gd.path);
}
