/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster integration tests: a real traind and real trainworkerd processes on
 * loopback. They check behaviour (states, exit codes, logs, recovery), never
 * wall-clock time; the time bounds below are only there so a broken build
 * fails instead of hanging.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

/* ---- 200 jobs from 4 parallel clients -------------------------------------- */

#define BURST_CLIENTS 4
#define BURST_JOBS 50 /* per client */

typedef struct burst_arg {
  const it_cluster *c;
  int client;
  uint64_t ids[BURST_JOBS];
} burst_arg;

static void *burst_client(void *p) {
  burst_arg *a = p;
  ty_rpc_client *cl = it_client(a->c);
  for (int j = 0; j < BURST_JOBS; j++) {
    int n = a->client * BURST_JOBS + j;
    char script[96], name[32], err[256];
    snprintf(script, sizeof script, "echo out-%d; echo err-%d >&2; exit %d", n, n, n % 4);
    snprintf(name, sizeof name, "burst-%d", n);
    cr_assert_eq(it_submit_sh(cl, script, name, &a->ids[j], err, sizeof err), 0, "%s", err);
  }
  ty_rpc_client_close(cl);
  return NULL;
}

Test(cluster, two_hundred_jobs_from_four_clients_complete, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 2, 4);
  burst_arg args[BURST_CLIENTS];
  pthread_t th[BURST_CLIENTS];
  for (int i = 0; i < BURST_CLIENTS; i++) {
    args[i] = (burst_arg){.c = &c, .client = i};
    pthread_create(&th[i], NULL, burst_client, &args[i]);
  }
  for (int i = 0; i < BURST_CLIENTS; i++)
    pthread_join(th[i], NULL);

  ty_rpc_client *cl = it_client(&c);
  for (int i = 0; i < BURST_CLIENTS; i++) {
    for (int j = 0; j < BURST_JOBS; j++) {
      int n = i * BURST_JOBS + j;
      Trainyard__GetJobResponse *r = it_wait_job(cl, args[i].ids[j], 0, 120000);
      cr_assert(r, "job %d (id %lu) did not finish; logs in %s", n, (unsigned long)args[i].ids[j],
                c.dir);
      int want = n % 4 == 0 ? ST(COMPLETED) : ST(FAILED);
      cr_assert_eq((int)r->job->state, want, "job %d state %d reason %s", n, r->job->state,
                   r->job->reason);
      cr_assert_eq(r->job->exit_code, n % 4);
      trainyard__get_job_response__free_unpacked(r, NULL);
    }
  }
  /* Logs come straight from the worker that ran the task. */
  char id[32], *out = NULL, want[64];
  snprintf(id, sizeof id, "%lu", (unsigned long)args[2].ids[7]);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"logs", id, NULL}), 0);
  snprintf(want, sizeof want, "out-%d\n", 2 * BURST_JOBS + 7);
  cr_assert(strstr(out, want), "logs of job %s lack %s: [%s]", id, want, out);
  snprintf(want, sizeof want, "err-%d\n", 2 * BURST_JOBS + 7);
  cr_assert(strstr(out, want), "logs of job %s lack %s: [%s]", id, want, out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A job requeued onto another node (`job requeue` with its first node
 * drained): `logs` shows both runs in order, each under a marker naming
 * its node, the first read from the node that ran it; --rank and -f too. */
Test(cluster, logs_show_every_run_of_a_job_requeued_onto_another_node, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  ty_rpc_client *cl = it_client(&c);
  char script[1024], err[256];
  snprintf(script, sizeof script,
           "if [ -e %s/ran ]; then echo output-of-run-two; exit 0; fi; echo output-of-run-one; "
           "touch %s/ran; sleep 60",
           c.dir, c.dir);
  uint64_t id;
  cr_assert_eq(it_submit_sh(cl, script, "moves", &id, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(RUNNING), 30000);
  cr_assert(r && r->job->n_nodes == 1, "job never ran");
  char first[64], sid[24], ran[300];
  snprintf(first, sizeof first, "%s", r->job->nodes[0]);
  trainyard__get_job_response__free_unpacked(r, NULL);
  snprintf(ran, sizeof ran, "%s/ran", c.dir);
  for (int i = 0; i < 1500 && access(ran, F_OK) != 0; i++)
    it_sleep_ms(20);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"node", "drain", first, "--reason", "move it", NULL}),
      0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "requeue", sid, NULL}), 0);
  r = it_wait_job(cl, id, ST(COMPLETED), 60000);
  cr_assert(r, "the requeued job did not complete; logs in %s", c.dir);
  char second[64], run1[96], run2[96];
  snprintf(second, sizeof second, "%s", r->job->nodes[0]);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_str_neq(first, second);
  snprintf(run1, sizeof run1, "==> run 1 (node %s, started ", first);
  snprintf(run2, sizeof run2, "==> run 2 (node %s, started ", second);
  const char *want[] = {run1, "output-of-run-one\n", run2, "output-of-run-two\n", NULL};
  const char *const cmds[][5] = {
      {"logs", sid, NULL}, {"logs", sid, "--rank", "0", NULL}, {"logs", sid, "-f", NULL}};
  for (size_t i = 0; i < TY_ARRAY_LEN(cmds); i++) {
    char *out = NULL;
    cr_assert_eq(it_trainctl(&c, &out, cmds[i]), 0, "%s %s", cmds[i][0], cmds[i][2]);
    it_expect_in_order(out, want, "logs of the requeued job");
    free(out);
  }
  it_expect_run_state(&c, id, 1, "REQUEUED");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- cancel ---------------------------------------------------------------- */

Test(cluster, cancel_running_job_kills_it_and_frees_its_slot, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char err[256], sid[32];
  cr_assert_eq(
      it_submit_sh(cl, "trap 'exit 143' TERM; sleep 60 & wait", "sleeper", &id, err, sizeof err), 0,
      "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(RUNNING), 30000);
  cr_assert(r, "job never ran");
  trainyard__get_job_response__free_unpacked(r, NULL);
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  r = it_wait_job(cl, id, 0, 30000);
  cr_assert(r);
  cr_assert_eq((int)r->job->state, ST(CANCELLED));
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* The slot comes back: a new job runs to completion on the same node. */
  cr_assert_eq(it_submit_sh(cl, "true", "after", &id, err, sizeof err), 0);
  r = it_wait_job(cl, id, 0, 30000);
  cr_assert(r && (int)r->job->state == ST(COMPLETED));
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* A second cancel of a finished job says why it cannot. */
  cr_assert_neq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  /* Issue 14: one result per id, in order, and exit 4 for an unknown one. */
  uint64_t a, b;
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "a", &a, err, sizeof err), 0);
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "b", &b, err, sizeof err), 0);
  char sa[32], sb[32], want[96], *out = NULL;
  snprintf(sa, sizeof sa, "%llu", (unsigned long long)a);
  snprintf(sb, sizeof sb, "%llu", (unsigned long long)b);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", sa, "99999", sb, NULL}), 4);
  snprintf(want, sizeof want, "Cancelled job %s\nCancelled job %s\n", sa, sb);
  cr_assert_str_eq(out, want);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", "99998", sid, "--json", NULL}), 4);
  cr_assert(strstr(out, "\"id\":99998,\"cancelled\":false,\"status\":-") &&
                strstr(out, "is already CANCELLED"),
            "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- controller crash during a burst --------------------------------------- */

typedef struct crash_arg {
  const it_cluster *c;
  uint64_t acked[2000];
  size_t n_acked;
  volatile int stop;
} crash_arg;

static void *crash_submitter(void *p) {
  crash_arg *a = p;
  ty_rpc_client *cl = it_client(a->c);
  while (!a->stop && a->n_acked < TY_ARRAY_LEN(a->acked)) {
    uint64_t id;
    if (it_submit_sh(cl, "exit 0", "burst", &id, NULL, 0) != 0) break; /* controller died */
    a->acked[a->n_acked++] = id;
  }
  ty_rpc_client_close(cl);
  return NULL;
}

Test(cluster, controller_kill9_mid_burst_loses_no_acknowledged_job, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 2, 4);
  crash_arg a = {.c = &c};
  pthread_t th;
  pthread_create(&th, NULL, crash_submitter, &a);
  while (a.n_acked < 100)
    it_sleep_ms(5);
  it_kill9(&c.traind);
  a.stop = 1;
  pthread_join(th, NULL);
  it_controller_start(&c);

  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 2, TRAINYARD__NODE_STATE__NODE_UP, 20000), "workers did not return");
  for (size_t i = 0; i < a.n_acked; i++) {
    Trainyard__GetJobResponse *r = it_wait_job(cl, a.acked[i], ST(COMPLETED), 120000);
    cr_assert(r, "acknowledged job %lu lost or unfinished after restart (logs in %s)",
              (unsigned long)a.acked[i], c.dir);
    trainyard__get_job_response__free_unpacked(r, NULL);
  }
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Issue 14: right after a controller restart a node is UNKNOWN until its
 * worker registers again, not UP on the strength of the store. */
Test(cluster, nodes_are_unknown_until_they_register_after_a_restart, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  c.node_timeout_ms = 60000; /* the restarted controller waits long for the node */
  /* A job acknowledged and finished after the registration means the
   * registration's commit, queued before it, is durable: the restarted
   * controller must know the node (under TSan the kill came first). */
  ty_rpc_client *first = it_client(&c);
  uint64_t id = 0;
  char err[TY_ERR_LEN];
  cr_assert_eq(it_submit_sh(first, "true", "durable", &id, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *done = it_wait_job(first, id, ST(COMPLETED), 60000);
  cr_assert(done, "job %lu did not complete", (unsigned long)id);
  trainyard__get_job_response__free_unpacked(done, NULL);
  ty_rpc_client_close(first);
  it_kill9(&c.traind);
  kill(c.worker[0], SIGSTOP); /* keeps it from registering again for now */
  it_controller_start(&c);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"state\":\"UNKNOWN\"") &&
                strstr(out, "not registered since the controller started"),
            "%s", out);
  free(out);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 0u);
  kill(c.worker[0], SIGCONT);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not return");
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", NULL}), 0);
  cr_assert(strstr(out, "w1    UP"), "%s", out);
  free(out);
  /* sinfo's line for a script that asks for the idle nodes */
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"nodes", "-h", "-t", "idle", "-o", "%N|%T", NULL}), 0);
  cr_assert_str_eq(out, "w1|idle\n");
  free(out);
  /* -t narrows the table and --json too, as sinfo's every form */
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", "-t", "down", NULL}), 0);
  cr_assert(!strstr(out, "w1"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", "-t", "idle", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"w1\""), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- bad input -------------------------------------------------------------- */

Test(cluster, malformed_frames_close_only_their_connection, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *good = it_client(&c);
  static const uint8_t garbage[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t oversize[] = {0x7f, 0xff, 0xff, 0xff};
  static const uint8_t zero[] = {0, 0, 0, 0};
  const struct {
    const uint8_t *b;
    size_t n;
  } bad[] = {{garbage, sizeof garbage}, {oversize, sizeof oversize}, {zero, sizeof zero}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int fd = it_raw_connect(c.rpc_port);
    cr_assert_eq(write(fd, bad[i].b, bad[i].n), (ssize_t)bad[i].n);
    cr_assert(it_closed_by_peer(fd), "case %zu: connection not closed", i);
    close(fd);
  }
  /* A truncated frame followed by EOF. */
  int fd = it_raw_connect(c.rpc_port);
  static const uint8_t truncated[] = {0, 0, 0, 100, 1, 2, 3};
  cr_assert_eq(write(fd, truncated, sizeof truncated), (ssize_t)sizeof truncated);
  shutdown(fd, SHUT_WR);
  cr_assert(it_closed_by_peer(fd));
  close(fd);
  /* The well-behaved client was never disturbed. */
  uint64_t id;
  char err[256];
  cr_assert_eq(it_submit_sh(good, "true", "still-served", &id, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(good, id, ST(COMPLETED), 30000);
  cr_assert(r);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(good);
  it_cluster_stop(&c);
}

Test(cluster, invalid_specs_are_refused_with_the_field_named, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char err[256];
  uint64_t id;

  Trainyard__Job nokind = TRAINYARD__JOB__INIT;
  cr_assert_eq(it_submit_job(cl, &nokind, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job."), "message does not name a field: %s", err);

  Trainyard__CommandSpec empty = TRAINYARD__COMMAND_SPEC__INIT;
  Trainyard__Job noargv = TRAINYARD__JOB__INIT;
  noargv.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  noargv.command = &empty;
  cr_assert_eq(it_submit_job(cl, &noargv, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.command.argv"), "got: %s", err);

  char *argv[] = {"true"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = 1;
  cmd.argv = argv;
  Trainyard__Job badq = TRAINYARD__JOB__INIT;
  badq.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  badq.command = &cmd;
  badq.queue = "no-such-queue";
  cr_assert_neq(it_submit_job(cl, &badq, &id, err, sizeof err), 0);
  cr_assert(strstr(err, "no-such-queue"), "got: %s", err);

  /* Issue 14: the priority's range and UTF-8 names (a variable's value is
   * any bytes but NUL: job_spec/env_values_need_not_be_utf8). */
  badq.queue = "";
  badq.priority = 5000;
  cr_assert_eq(it_submit_job(cl, &badq, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.priority: 5000 is outside -1000..1000"), "got: %s", err);
  badq.priority = 0;
  badq.name = "n\xffme";
  cr_assert_eq(it_submit_job(cl, &badq, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.name: not valid UTF-8"), "got: %s", err);
  badq.name = "";

  /* A payload that is not a SubmitJobRequest at all. */
  ty_rpc_result res;
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_SUBMIT_JOB, junk, sizeof junk, 5000, &res), 0);
  cr_assert_eq(res.status, TY_EPROTO, "status %d: %s", res.status, res.message);
  ty_rpc_result_close(&res);
  /* An unknown method. */
  cr_assert_eq(ty_rpc_client_call(cl, "NoSuchMethod", NULL, 0, 5000, &res), 0);
  cr_assert_eq(res.status, TY_ENOTFOUND);
  cr_assert(strstr(res.message, "NoSuchMethod"), "got: %s", res.message);
  ty_rpc_result_close(&res);

  /* The CLI maps refusals to documented exit codes. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"show", "987654", NULL}), 4);
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *[]){"submit", "--command", "--queue", "nope", "--", "true", NULL}),
      5);
  /* More CPUs than any node has: refused, as too many GPUs are. */
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *[]){"submit", "--command", "--cpus", "64", "--", "true", NULL}),
      5);
  cr_assert_eq(it_trainctl(&c, NULL,
                           (const char *[]){"submit", "--command", "--priority", "5000", "--",
                                            "true", NULL}),
               2);
  /* Nothing was half-written: no job exists besides none submitted. */
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "--all", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"id\"") == NULL, "refused submissions left jobs behind: %s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- metrics ------------------------------------------------------------------ */

static void promtool_check(const char *what, const char *text) {
  const char *promtool = getenv("TY_PROMTOOL");
  if (!promtool || !*promtool) cr_skip_test("promtool not found");
  char path[] = "/tmp/trainyard-metrics-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s check metrics < %s", promtool, path);
  int rc = system(cmd);
  unlink(path);
  cr_assert_eq(rc, 0, "promtool check metrics failed on %s:\n%s", what, text);
}

Test(cluster, metrics_of_both_daemons_pass_promtool, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  cr_assert_eq(it_submit_sh(cl, "true", "m", &id, NULL, 0), 0);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 30000);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char *ctl = it_http_get_metrics(c.metrics_port);
  cr_assert(strstr(ctl, "trainyard_jobs"), "%s", ctl);
  cr_assert(strstr(ctl, "trainyard_rpc_requests_total"), "%s", ctl);
  promtool_check("traind", ctl);
  char *wrk = it_http_get_metrics(c.worker_metrics_port[0]);
  cr_assert(strstr(wrk, "process_resident_memory_bytes"), "%s", wrk);
  promtool_check("trainworkerd", wrk);
  free(ctl);
  free(wrk);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- a stop during the store's integrity check --------------------------------------------- */

/* The whole-store check runs after the start, off the loop (seconds at a
 * million jobs); TRAINYARD_TEST_STORE_CHECK_HOLD_MS makes it hold ten
 * minutes inside SQLite. SIGTERM interrupts it: traind exits 0 and says
 * so, rather than waiting for the check's end. The 30 s bound only turns
 * a wait for the whole check into a failure. */
Test(cluster, sigterm_interrupts_the_store_check, .timeout = 120) {
  setenv("TRAINYARD_TEST_STORE_CHECK_HOLD_MS", "600000", 1);
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  unsetenv("TRAINYARD_TEST_STORE_CHECK_HOLD_MS");
  kill(c.traind, SIGTERM);
  int st = 0;
  bool exited = false;
  for (int i = 0; i < 3000 && !exited; i++) {
    exited = waitpid(c.traind, &st, WNOHANG) == c.traind;
    if (!exited) it_sleep_ms(10);
  }
  cr_assert(exited, "traind still runs 30 s after SIGTERM: it waits for the store check");
  c.traind = 0;
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's exit status %d", st);
  char path[400], log[16384] = "";
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s", path);
  log[fread(log, 1, sizeof log - 1, f)] = '\0';
  fclose(f);
  cr_assert(strstr(log, "store integrity check interrupted by the shutdown"), "%s", log);
  cr_assert_null(strstr(log, "integrity check failed"), "%s", log);
  it_cluster_stop(&c);
}

/* ---- one controller per state directory ------------------------------------------------------ */

/* A second traind on a running one's state directory (another socket, so
 * only the store is shared) is refused before it opens the store, naming
 * the first's pid, and exits non-zero; the first keeps serving, and a
 * backup of its live store (traind --backup, which takes no lock) works. */
Test(cluster, a_second_traind_on_the_same_state_dir_is_refused, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.auth_none = true});
  char state[300], log[300], bk[300], want[400];
  snprintf(state, sizeof state, "%s/traind", c.dir);
  snprintf(log, sizeof log, "%s/second.stderr", c.dir);
  snprintf(bk, sizeof bk, "%s/bk.db", c.dir);
  char *argv[] = {(char *)it_bin("TY_TRAIND"),
                  "--listen",
                  "127.0.0.1:0",
                  "--metrics-listen",
                  "127.0.0.1:0",
                  "--state-dir",
                  state,
                  "--auth",
                  "none",
                  "--socket",
                  "none",
                  NULL};
  pid_t second = it_spawn(NULL, log, argv);
  cr_assert_neq(it_wait_exit(second, log, 30000), 0, "the second traind exited 0");
  char *text = it_read_text(log);
  snprintf(want, sizeof want, "another traind (pid %d) uses %s", (int)c.traind, state);
  cr_assert(text && strstr(text, want), "no [%s] in:\n%s", want, text ? text : "");
  cr_assert_null(strstr(text, "loaded"), "the second traind loaded the store:\n%s", text);
  free(text);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--", "true", NULL});
  cr_assert_eq(id, 1u);
  char *backup[] = {(char *)it_bin("TY_TRAIND"), "--state-dir", state, "--backup", bk, NULL};
  snprintf(log, sizeof log, "%s/backup.stderr", c.dir);
  cr_assert_eq(it_wait_exit(it_spawn(NULL, log, backup), log, 30000), 0, "%s", it_read_text(log));
  it_cluster_stop(&c);
}

/* ---- a store that fails the integrity check ---------------------------------------------------
 */

/* traind started on a store whose history pages are damaged starts (the
 * tables a start reads are intact), fails the whole-file check just after,
 * and exits 1: its signal handlers and watchdog keep-alive must not keep
 * it alive. */
Test(cluster, a_failed_store_check_makes_traind_exit_1, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.auth_none = true});
  for (int i = 0; i < 100; i++)
    it_submit_cli(&c, (const char *[]){"--name", "fills-the-events-table", "--", "true", NULL});
  char log[300];
  snprintf(log, sizeof log, "%s/traind.stderr", c.dir);
  kill(c.traind, SIGTERM);
  cr_assert_eq(it_wait_exit(c.traind, log, 30000), 0);
  c.traind = 0;
  char db[300], py[300], cmd[700];
  snprintf(db, sizeof db, "%s/traind/traind.db", c.dir);
  snprintf(py, sizeof py, "%s/damage.py", c.dir);
  /* The events table's root page: history, read by no start. */
  FILE *f = fopen(py, "w");
  cr_assert(f, "%s", py);
  fprintf(f, "import sqlite3, sys\n"
             "d = sqlite3.connect(sys.argv[1])\n"
             "size = d.execute('PRAGMA page_size').fetchone()[0]\n"
             "page = d.execute(\"SELECT rootpage FROM sqlite_master WHERE name = 'events'\")"
             ".fetchone()[0]\n"
             "d.close()\n"
             "f = open(sys.argv[1], 'r+b')\n"
             "f.seek((page - 1) * size + 16)\n"
             "f.write(b'\\xff' * (size - 32))\n");
  fclose(f);
  snprintf(cmd, sizeof cmd, "python3 %s %s", py, db);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  setenv("WATCHDOG_USEC", "10000000", 1); /* the keep-alive runs, as under systemd */
  it_controller_start(&c);
  unsetenv("WATCHDOG_USEC");
  int rc = it_wait_exit(c.traind, log, 30000);
  c.traind = 0;
  char *text = it_read_text(log);
  cr_assert(text && strstr(text, "integrity check failed"), "%s", text ? text : "");
  cr_assert_eq(rc, 1, "traind's exit status %d:\n%s", rc, text);
  free(text);
  it_cluster_stop(&c);
}

/* A worker that can find no trainrun (none next to it, in a build tree
 * above it or in PATH) says at start that graph jobs will fail on its
 * node, instead of leaving each graph job to fail with "trainrun not
 * found". The binary is copied alone into a temporary directory. */
Test(cluster, a_worker_without_trainrun_says_so_at_start, .timeout = 60) {
  char dir[] = "/tmp/ty-no-trainrun-XXXXXX", cmd[600], bin[200], log[200], state[200];
  cr_assert(mkdtemp(dir), "%s", strerror(errno));
  snprintf(bin, sizeof bin, "%s/trainworkerd", dir);
  snprintf(log, sizeof log, "%s/w.stderr", dir);
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", it_bin("TY_TRAINWORKERD"), bin);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char *path = ty_strdup(getenv("PATH") ? getenv("PATH") : "");
  setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1); /* the child's: no build tree in it */
  pid_t w = it_spawn(NULL, log,
                     (char *const[]){bin, "--controller", "127.0.0.1:9", "--name", "nt",
                                     "--state-dir", state, "--auth", "none", "--cpus", "1", NULL});
  setenv("PATH", path, 1);
  free(path);
  /* Up to 30 s: a sanitizer-built worker on a loaded machine takes
   * seconds to start (its hwloc topology load) before it logs this. */
  char *text = NULL;
  for (int i = 0; i < 600 && !(text && strstr(text, "no trainrun next to trainworkerd")); i++) {
    free(text);
    it_sleep_ms(50);
    text = it_read_text(log);
  }
  it_kill9(&w);
  cr_assert(text && strstr(text, "graph jobs will fail on this node"), "%s", text ? text : "");
  free(text);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}
