/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Clients of a started cluster for integration tests: job submission and
 * polling over RPC, trainctl runs with the cluster's address, plain HTTP
 * GETs of the web and metrics endpoints, and raw sockets for peers that
 * misbehave. Helpers fail the test (Criterion assertions) where a test
 * could not go on; the others return what happened for the test to judge.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/methods.h"

int it_submit_job(ty_rpc_client *cl, Trainyard__Job *job, uint64_t *out_id, char *err,
                  size_t err_len) {
  return it_submit_job_id(cl, job, NULL, out_id, err, err_len);
}

int it_submit_job_id(ty_rpc_client *cl, Trainyard__Job *job, const char *request_id,
                     uint64_t *out_id, char *err, size_t err_len) {
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = job;
  if (request_id) req.request_id = (char *)request_id;
  size_t n = trainyard__submit_job_request__get_packed_size(&req);
  uint8_t *buf = malloc(n ? n : 1);
  trainyard__submit_job_request__pack(&req, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_SUBMIT_JOB, buf, n, 10000, &res);
  free(buf);
  if (rc != 0) {
    ty_rpc_result_close(&res); /* a failed call's result still holds its message */
    return rc;
  }
  rc = res.status;
  if (err) snprintf(err, err_len, "%s", res.message);
  if (rc == 0) {
    Trainyard__SubmitJobResponse *r =
        trainyard__submit_job_response__unpack(NULL, res.payload_len, res.payload);
    cr_assert(r, "SubmitJobResponse does not decode");
    *out_id = r->job_id;
    trainyard__submit_job_response__free_unpacked(r, NULL);
  }
  ty_rpc_result_close(&res);
  return rc;
}

int it_submit_sh(ty_rpc_client *cl, const char *script, const char *name, uint64_t *out_id,
                 char *err, size_t err_len) {
  return it_submit_sh_nodes(cl, script, name, 1, out_id, err, err_len);
}

int it_submit_sh_nodes(ty_rpc_client *cl, const char *script, const char *name, uint32_t nodes,
                       uint64_t *out_id, char *err, size_t err_len) {
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = nodes;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"/bin/sh", "-c", (char *)script};
  cmd.n_argv = 3;
  cmd.argv = argv;
  cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = (char *)name;
  job.resources = nodes > 1 ? &res : NULL;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  return it_submit_job(cl, &job, out_id, err, err_len);
}

Trainyard__GetJobResponse *it_get_job(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = id;
  uint8_t buf[32];
  size_t n = trainyard__get_job_request__pack(&req, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_GET_JOB, buf, n, 10000, &res);
  Trainyard__GetJobResponse *r = NULL;
  if (rc == 0 && res.status == 0)
    r = trainyard__get_job_response__unpack(NULL, res.payload_len, res.payload);
  ty_rpc_result_close(&res);
  return r;
}

Trainyard__ListJobsResponse *it_list_jobs(ty_rpc_client *cl) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  return it_list_jobs_req(cl, &req);
}

Trainyard__ListJobsResponse *it_list_jobs_req(ty_rpc_client *cl,
                                              const Trainyard__ListJobsRequest *req) {
  size_t n = trainyard__list_jobs_request__get_packed_size(req);
  uint8_t *buf = malloc(n ? n : 1);
  cr_assert(buf);
  trainyard__list_jobs_request__pack(req, buf);
  ty_rpc_result r;
  int rc = ty_rpc_client_call(cl, TY_M_LIST_JOBS, buf, n, 10000, &r);
  free(buf);
  cr_assert_eq(rc, 0, "ListJobs: %s", ty_strerror(rc));
  cr_assert_eq(r.status, 0, "ListJobs: %s", r.message);
  Trainyard__ListJobsResponse *resp =
      trainyard__list_jobs_response__unpack(NULL, r.payload_len, r.payload);
  cr_assert(resp, "ListJobsResponse does not decode");
  ty_rpc_result_close(&r);
  return resp;
}

bool it_is_final(int state) {
  return state == TRAINYARD__JOB_STATE__JOB_COMPLETED ||
         state == TRAINYARD__JOB_STATE__JOB_FAILED ||
         state == TRAINYARD__JOB_STATE__JOB_CANCELLED ||
         state == TRAINYARD__JOB_STATE__JOB_TIMEOUT ||
         state == TRAINYARD__JOB_STATE__JOB_OUT_OF_MEMORY ||
         state == TRAINYARD__JOB_STATE__JOB_NODE_FAIL || /* a no_requeue job's ends */
         state == TRAINYARD__JOB_STATE__JOB_PREEMPTED;
}

Trainyard__GetJobResponse *it_wait_job(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    if (r && r->job) {
      int s = (int)r->job->state;
      if ((state == 0 && it_is_final(s)) || s == state) return r;
    }
    if (r) trainyard__get_job_response__free_unpacked(r, NULL);
    it_sleep_ms(20);
  }
  return NULL;
}

int it_wait_state(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, state, timeout_ms);
  cr_assert(r, "job %llu never reached state %d", (unsigned long long)id, state);
  int s = (int)r->job->state;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}

int it_job_state(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r, "job %llu not found", (unsigned long long)id);
  int s = (int)r->job->state;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}

size_t it_count_nodes_in_state(ty_rpc_client *cl, int state) {
  Trainyard__ListNodesRequest req = TRAINYARD__LIST_NODES_REQUEST__INIT;
  uint8_t buf[8];
  size_t n = trainyard__list_nodes_request__pack(&req, buf);
  ty_rpc_result res;
  if (ty_rpc_client_call(cl, TY_M_LIST_NODES, buf, n, 5000, &res) != 0) return 0;
  size_t count = 0;
  Trainyard__ListNodesResponse *r =
      res.status == 0 ? trainyard__list_nodes_response__unpack(NULL, res.payload_len, res.payload)
                      : NULL;
  for (size_t i = 0; r && i < r->n_nodes; i++)
    if ((int)r->nodes[i]->state == state) count++;
  if (r) trainyard__list_nodes_response__free_unpacked(r, NULL);
  ty_rpc_result_close(&res);
  return count;
}

bool it_wait_nodes(ty_rpc_client *cl, size_t n, int state, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (it_count_nodes_in_state(cl, state) == n) return true;
    it_sleep_ms(20);
  }
  return false;
}

static char *read_all(int fd) {
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  ssize_t n;
  while ((n = read(fd, s + len, cap - len - 1)) > 0) {
    len += (size_t)n;
    if (cap - len < 1024) s = realloc(s, cap *= 2);
  }
  s[len] = '\0';
  return s;
}

int it_trainctl(const it_cluster *c, char **out, const char *const *args) {
  return it_trainctl_err(c, out, NULL, args);
}

void it_expect_in_order(const char *text, const char *const *want, const char *what) {
  const char *at = text;
  for (size_t i = 0; want[i]; i++) {
    const char *hit = strstr(at, want[i]);
    cr_assert(hit, "%s: no [%s] after [%s] in:\n%s", what, want[i], i ? want[i - 1] : "", text);
    cr_expect(!strstr(hit + 1, want[i]) && strstr(text, want[i]) == hit,
              "%s: [%s] more than once in:\n%s", what, want[i], text);
    at = hit + strlen(want[i]);
  }
}

void it_expect_run_state(const it_cluster *c, uint64_t id, uint32_t run, const char *state) {
  char sid[32], want[96], *out = NULL;
  snprintf(sid, sizeof sid, "%" PRIu64, id);
  if (run > 1)
    snprintf(want, sizeof want, "\n%" PRIu64 ".0#%" PRIu32 "|%s\n", id, run, state);
  else
    snprintf(want, sizeof want, "\n%" PRIu64 ".0|%s\n", id, state);
  const char *args[] = {"history", "--job", sid,        "--ranks", "--noheader",
                        "-P",      "-o",    "id,state", NULL};
  cr_assert_eq(it_trainctl(c, &out, args), 0);
  char *text = NULL;
  cr_assert(asprintf(&text, "\n%s", out) > 0);
  cr_expect(strstr(text, want), "run %" PRIu32 " of job %" PRIu64 " is not %s:\n%s", run, id, state,
            out);
  free(text);
  free(out);
}

int it_trainctl_as(const it_cluster *c, uid_t uid, gid_t gid, const char *cwd, char **out,
                   char **err, const char *const *args) {
  const char *argv[32] = {it_bin("TY_TRAINCTL")};
  size_t n = 1;
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return it_run_as(c, uid, gid, cwd, out, err, argv);
}

int it_trainctl_ok(const it_cluster *c, char **out, const char *const *args) {
  char *err = NULL;
  int rc = it_trainctl_err(c, out, &err, args);
  cr_assert_eq(rc, 0, "trainctl %s: exit %d: %s", args[0], rc, err);
  free(err);
  return rc;
}

int it_trainctl_err(const it_cluster *c, char **out, char **err_out, const char *const *args) {
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%d", it_controller_host(c), c->rpc_port);
  const char *argv[32] = {it_bin("TY_TRAINCTL"), "--controller", addr};
  size_t n = 3;
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int pfd[2], efd[2] = {-1, -1};
  /* Close-on-exec: a daemon another thread spawns meanwhile must not keep
   * these pipes open (read_all would wait for them). */
  cr_assert(pipe2(pfd, O_CLOEXEC) == 0);
  cr_assert(!err_out || pipe2(efd, O_CLOEXEC) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    if (err_out) dup2(efd[1], 2);
    close(pfd[0]);
    close(pfd[1]);
    if (err_out) close(efd[0]), close(efd[1]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(pfd[1]);
  if (err_out) close(efd[1]);
  char *s = read_all(pfd[0]); /* stderr is a line or two: the pipe holds it meanwhile */
  close(pfd[0]);
  if (err_out) {
    *err_out = read_all(efd[0]);
    close(efd[0]);
  }
  int st;
  waitpid(pid, &st, 0);
  if (out)
    *out = s;
  else
    free(s);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

pid_t it_trainctl_spawn(const it_cluster *c, const char *log, const char *const *args) {
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%d", it_controller_host(c), c->rpc_port);
  char *argv[16] = {(char *)it_bin("TY_TRAINCTL"), "--controller", addr};
  size_t n = 3;
  for (size_t i = 0; args[i] && n + 1 < sizeof argv / sizeof *argv; i++)
    argv[n++] = (char *)args[i];
  argv[n] = NULL;
  return it_spawn(NULL, log, argv);
}

int it_wait_exit(pid_t pid, const char *log, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    it_sleep_ms(50);
  }
  it_kill9(&pid);
  char *text = it_read_text(log);
  cr_assert_fail("%s: still running after %d ms:\n%s", log, timeout_ms, text ? text : "");
  return -1;
}

void it_wait_log(const char *log, const char *want) {
  for (int i = 0; i < 400; i++) {
    char *text = it_read_text(log);
    bool there = text && strstr(text, want);
    free(text);
    if (there) return;
    it_sleep_ms(50);
  }
  char *text = it_read_text(log);
  cr_assert_fail("no [%s] in %s after 20 s:\n%s", want, log, text ? text : "");
}

int it_raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0, "connect: %s",
               strerror(errno));
  return fd;
}

int it_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

bool it_closed_by_peer(int fd) {
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[256];
  ssize_t n;
  while ((n = read(fd, b, sizeof b)) > 0) {
  }
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

char *it_http_get(int port, const char *path, int *out_status) {
  return it_http_get_at("127.0.0.1", port, path, out_status);
}

char *it_http_get_at(const char *host, int port, const char *path, int *out_status) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  cr_assert_eq(inet_pton(AF_INET, host, &a.sin_addr), 1, "%s is not an IPv4 address", host);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
  cr_assert(n > 0 && (size_t)n < sizeof req, "path too long: %s", path);
  cr_assert(write(fd, req, (size_t)n) == (ssize_t)n);
  char *resp = read_all(fd);
  close(fd);
  char *body = strstr(resp, "\r\n\r\n");
  if (!body) {
    free(resp);
    return NULL;
  }
  if (out_status) *out_status = strncmp(resp, "HTTP/1.", 7) == 0 ? atoi(resp + 9) : 0;
  char *copy = strdup(body + 4);
  free(resp);
  return copy;
}

char *it_http_get_metrics(int port) {
  return it_http_get_metrics_at("127.0.0.1", port);
}

char *it_http_get_metrics_at(const char *host, int port) {
  char *body = it_http_get_at(host, port, "/metrics", NULL);
  cr_assert(body, "no /metrics from %s:%d", host, port);
  return body;
}

double it_metric_in(const char *scrape, const char *prefix) {
  double sum = NAN;
  size_t n = strlen(prefix);
  for (const char *p = scrape; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, prefix, n) != 0) continue;
    const char *end = strchr(p, '\n'), *v = end ? end : p + strlen(p);
    while (v > p && v[-1] != ' ') /* the value is the line's last field */
      v--;
    sum = (isnan(sum) ? 0 : sum) + strtod(v, NULL);
  }
  return sum;
}

double it_metric(int port, const char *prefix) {
  char *scrape = it_http_get_metrics(port);
  double v = it_metric_in(scrape, prefix);
  free(scrape);
  return v;
}

uint64_t it_submit_quiet(const it_cluster *c, const char *const *args) {
  const char *argv[32] = {"submit", "--quiet"};
  size_t n = 2;
  for (; *args && n < 31; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, argv);
  cr_assert_eq(rc, 0, "submit failed (%d): %s", rc, err ? err : "");
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert(id > 0);
  return id;
}

uint64_t it_submit_cli(const it_cluster *c, const char *const *args) {
  const char *argv[30] = {"--command"};
  size_t n = 1;
  for (; *args && n < 29; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  return it_submit_quiet(c, argv);
}
