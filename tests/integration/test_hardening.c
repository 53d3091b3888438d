/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hardening of the controller (issue 13) with real daemons on loopback:
 *   - retry-safe submits: eight trainctl loops submit while the controller
 *     is killed with SIGKILL and restarted five times; every acknowledged
 *     job exists exactly once and no job ran twice;
 *   - a repeated request id is answered with the first job's id;
 *   - with authentication on (the harness's private munged): a trainctl
 *     submit whose controller died before answering is resent on a new,
 *     signed connection and creates its job once; a resent request needs a
 *     credential of its own (munged refuses a replayed one);
 *   - limits at the door: idle connections beyond the per-address cap are
 *     refused, the rest closed at the handshake deadline, both counted in
 *     /metrics, while trainctl keeps being served; a CancelJob with more ids
 *     than its cap is refused naming the field, as are strings holding a
 *     NUL (nothing stored);
 *   - a user's --export (LD_DEBUG here, LD_PRELOAD for an attacker) reaches
 *     the task and never the root exec helper that starts it;
 *   - a full state disk: test_full_disk.c; floods of store reads and of
 *     worker methods: test_floods.c (the same suite).
 * Behaviour only: the time bounds are there so a broken build fails
 * instead of hanging.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

/* ---- retry-safe submit across SIGKILLed controllers -------------------------------- */

#define LOOPS 8
#define PER_LOOP 25
#define RESTARTS 5

typedef struct loop_arg {
  const it_cluster *c;
  int loop;
  int done;                 /* submissions attempted; read by the main thread */
  uint64_t acked[PER_LOOP]; /* 0 = not acknowledged */
  char out_path[300];
} loop_arg;

/* One trainctl per submission, as a user's script would run it. */
static void *submit_loop(void *p) {
  loop_arg *a = p;
  for (int i = 0; i < PER_LOOP; i++) {
    char name[32], script[400];
    snprintf(name, sizeof name, "L%d-%d", a->loop, i);
    snprintf(script, sizeof script, "echo %s >> %s", name, a->out_path);
    const char *args[] = {"--timeout", "60", "submit", "--command", "--quiet", "--name",
                          name,        "--", "sh",     "-c",        script,    NULL};
    char *out = NULL;
    if (it_trainctl(a->c, &out, args) == 0) a->acked[i] = strtoull(out, NULL, 10);
    free(out);
    __atomic_store_n(&a->done, i + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static int total_done(loop_arg *a) {
  int n = 0;
  for (int l = 0; l < LOOPS; l++)
    n += __atomic_load_n(&a[l].done, __ATOMIC_ACQUIRE);
  return n;
}

/* Every job the controller knows: names by id (index = id), and states. */
typedef struct job_list {
  char **name;
  int *state;
  uint64_t max_id;
} job_list;

static void list_jobs(ty_rpc_client *cl, job_list *out) {
  Trainyard__ListJobsResponse *resp = it_list_jobs(cl);
  out->max_id = 0;
  for (size_t i = 0; i < resp->n_jobs; i++)
    if (resp->jobs[i]->id > out->max_id) out->max_id = resp->jobs[i]->id;
  out->name = calloc(out->max_id + 1, sizeof *out->name);
  out->state = calloc(out->max_id + 1, sizeof *out->state);
  for (size_t i = 0; i < resp->n_jobs; i++) {
    const Trainyard__JobInfo *j = resp->jobs[i];
    out->name[j->id] = strdup(j->spec && j->spec->name ? j->spec->name : "");
    out->state[j->id] = j->state;
  }
  trainyard__list_jobs_response__free_unpacked(resp, NULL);
}

static void job_list_close(job_list *l) {
  for (uint64_t i = 0; i <= l->max_id; i++)
    free(l->name[i]);
  free(l->name);
  free(l->state);
}

/* Polls until every job the controller knows has ended. */
static void wait_all_final(const it_cluster *c, job_list *out) {
  ty_rpc_client *cl = it_client(c);
  for (int tries = 0;; tries++) {
    list_jobs(cl, out);
    bool all = true;
    for (uint64_t id = 1; id <= out->max_id; id++)
      if (out->name[id] && !it_is_final(out->state[id])) all = false;
    if (all) break;
    cr_assert_lt(tries, 600, "jobs still running after 2 minutes (logs in %s)", c->dir);
    job_list_close(out);
    it_sleep_ms(200);
  }
  ty_rpc_client_close(cl);
}

/* How often each job name appears in the file the jobs append to. */
static int times_ran(const char *path, const char *name) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[64];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    n += strcmp(line, name) == 0;
  }
  fclose(f);
  return n;
}

Test(hardening, submits_survive_five_sigkilled_controllers_exactly_once, .timeout = 600) {
  it_cluster c;
  /* Nodes must outlive every restart: they re-register within this. */
  it_cluster_start_with(&c, 1, 8, &(it_options){.node_timeout_ms = 60000});
  loop_arg a[LOOPS];
  pthread_t th[LOOPS];
  for (int l = 0; l < LOOPS; l++) {
    a[l] = (loop_arg){.c = &c, .loop = l};
    snprintf(a[l].out_path, sizeof a[l].out_path, "%s/ran.txt", c.dir);
    pthread_create(&th[l], NULL, submit_loop, &a[l]);
  }
  for (int k = 0; k < RESTARTS; k++) {
    /* Kill in the middle of the stream: after the next 25 submissions. */
    int target = (k + 1) * LOOPS * PER_LOOP / (RESTARTS + 2);
    while (total_done(a) < target)
      it_sleep_ms(5);
    it_kill9(&c.traind);
    it_sleep_ms(100 + 100 * k);
    it_controller_start(&c);
  }
  for (int l = 0; l < LOOPS; l++)
    pthread_join(th[l], NULL);

  job_list jobs;
  wait_all_final(&c, &jobs);
  char ran[300];
  snprintf(ran, sizeof ran, "%s/ran.txt", c.dir);
  int acked = 0;
  for (int l = 0; l < LOOPS; l++)
    for (int i = 0; i < PER_LOOP; i++) {
      char name[32];
      snprintf(name, sizeof name, "L%d-%d", l, i);
      int copies = 0;
      for (uint64_t id = 1; id <= jobs.max_id; id++)
        copies += jobs.name[id] && strcmp(jobs.name[id], name) == 0;
      cr_expect_leq(copies, 1, "%s was created %d times (logs in %s)", name, copies, c.dir);
      cr_expect_leq(times_ran(ran, name), 1, "%s ran twice (logs in %s)", name, c.dir);
      uint64_t id = a[l].acked[i];
      if (!id) continue;
      acked++;
      cr_expect(id <= jobs.max_id && jobs.name[id] && strcmp(jobs.name[id], name) == 0,
                "acknowledged job %llu (%s) is missing or another job (logs in %s)",
                (unsigned long long)id, name, c.dir);
      if (id <= jobs.max_id && jobs.state[id] == TRAINYARD__JOB_STATE__JOB_COMPLETED)
        cr_expect_eq(times_ran(ran, name), 1, "%s completed but did not run", name);
    }
  /* trainctl retries for 60 s: with restarts this short, every submit gets
   * through, so the test exercises retries rather than give-ups. */
  cr_expect_eq(acked, LOOPS * PER_LOOP, "only %d of %d submissions were acknowledged", acked,
               LOOPS * PER_LOOP);
  job_list_close(&jobs);
  it_cluster_stop(&c);
}

/* ---- a repeated request id -------------------------------------------------------------- */

static int submit_with_id(ty_rpc_client *cl, const char *name, const char *rid, uint64_t *out_id,
                          char *msg, size_t msg_len) {
  char *argv[] = {"true"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.argv = argv;
  cmd.n_argv = 1;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = (char *)name;
  job.user = "alice";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  return it_submit_job_id(cl, &job, rid, out_id, msg, msg_len);
}

Test(hardening, a_repeated_request_id_answers_the_first_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t first = 0, again = 0, other = 0;
  char msg[TY_ERR_LEN];
  cr_assert_eq(submit_with_id(cl, "once", "abc123", &first, msg, sizeof msg), 0, "%s", msg);
  cr_assert_eq(submit_with_id(cl, "once", "abc123", &again, msg, sizeof msg), 0, "%s", msg);
  cr_expect_eq(again, first);
  /* The id with another job is a client's mistake, not a retry: it was
   * once answered with the first job's id, the second never created. */
  char want[128];
  snprintf(want, sizeof want, "request_id abc123 was used for job %llu with a different job",
           (unsigned long long)first);
  cr_expect_eq(submit_with_id(cl, "other", "abc123", &other, msg, sizeof msg), TY_EEXIST);
  cr_expect_str_eq(msg, want);
  /* After a restart the id is still known (it is stored with the job). */
  it_kill9(&c.traind);
  it_controller_start(&c);
  ty_rpc_client_close(cl);
  cl = it_client(&c);
  cr_assert_eq(submit_with_id(cl, "once", "abc123", &again, msg, sizeof msg), 0, "%s", msg);
  cr_expect_eq(again, first);
  cr_expect_eq(submit_with_id(cl, "other", "abc123", &other, msg, sizeof msg), TY_EEXIST);
  cr_expect_str_eq(msg, want);
  cr_assert_eq(submit_with_id(cl, "twice", "def456", &other, msg, sizeof msg), 0, "%s", msg);
  cr_expect_neq(other, first);
  cr_expect_eq(submit_with_id(cl, "bad", "has space", &other, msg, sizeof msg), TY_EINVAL);
  cr_expect_str_eq(msg, "request_id: byte 3 is not printable ASCII (0x20)");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- retries with authentication ------------------------------------------------------------ */

typedef struct ctl_run {
  const it_cluster *c;
  int rc;
  char *out, *err;
} ctl_run;

static void *submit_once(void *p) {
  ctl_run *a = p;
  const char *args[] = {"--timeout", "60",   "submit", "--command", "--quiet",
                        "--name",    "once", "--",     "true",      NULL};
  a->rc = it_trainctl_err(a->c, &a->out, &a->err, args);
  return NULL;
}

/* trainctl reopens the connection for its retry: the new one signs too
 * (each copy with its own credential), so the retry is accepted, and the
 * job exists once and runs once. */
Test(hardening, a_signed_submit_is_retried_across_a_restart_exactly_once, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.node_timeout_ms = 60000});
  /* A stopped controller: trainctl's connection is accepted by the kernel
   * (or refused, once it is killed), its request never answered. */
  kill(c.traind, SIGSTOP);
  ctl_run a = {.c = &c};
  pthread_t th;
  pthread_create(&th, NULL, submit_once, &a);
  it_sleep_ms(500);
  it_kill9(&c.traind);
  it_sleep_ms(300);
  it_controller_start(&c);
  pthread_join(th, NULL);
  cr_assert_eq(a.rc, 0, "trainctl submit failed: %s", a.err);
  cr_expect(strstr(a.err, "retrying"), "no retry happened: %s", a.err);
  uint64_t id = strtoull(a.out, NULL, 10);
  job_list jobs;
  wait_all_final(&c, &jobs);
  int copies = 0;
  for (uint64_t i = 1; i <= jobs.max_id; i++)
    copies += jobs.name[i] && !strcmp(jobs.name[i], "once");
  cr_expect_eq(copies, 1, "the submit created %d jobs (logs in %s)", copies, c.dir);
  cr_expect(id <= jobs.max_id && jobs.name[id] && !strcmp(jobs.name[id], "once"));
  cr_expect_eq(jobs.state[id], TRAINYARD__JOB_STATE__JOB_COMPLETED);
  job_list_close(&jobs);
  free(a.out), free(a.err);
  it_cluster_stop(&c);
}

/* Signs each request anew, or (replay) sends the last credential again. */
typedef struct replaying {
  ty_auth *auth;
  ty_buf last;
  bool replay;
} replaying;

static int sign_or_replay(void *ud, const char *method, const void *p, size_t n, ty_buf *out) {
  replaying *s = ud;
  if (!s->replay) {
    uint8_t *cred = NULL;
    size_t len = 0;
    char err[TY_ERR_LEN];
    cr_assert_eq(ty_auth_sign(s->auth, method, p, n, &cred, &len, err, sizeof err), 0, "%s", err);
    s->last.len = 0;
    ty_buf_append(&s->last, cred, len);
    free(cred);
  }
  return ty_buf_append(out, s->last.data, s->last.len);
}

static ty_rpc_client *replaying_client(const it_cluster *c, replaying *s) {
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", c->rpc_port, 5000, &cl), 0);
  ty_rpc_client_set_signer(cl, sign_or_replay, s);
  return cl;
}

/* Why a retry must sign again: the first copy's credential, resent as it
 * was, is refused as a replay; a fresh one gets the first copy's job. */
Test(hardening, a_resent_submit_needs_a_credential_of_its_own, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  replaying s = {0};
  ty_buf_init(&s.last);
  char msg[TY_ERR_LEN];
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c.munged.socket};
  cr_assert_eq(ty_auth_create(&cfg, &s.auth, msg, sizeof msg), 0, "%s", msg);
  ty_rpc_client *cl = replaying_client(&c, &s);
  uint64_t first = 0, again = 0;
  cr_assert_eq(submit_with_id(cl, "resent", "resent-1", &first, msg, sizeof msg), 0, "%s", msg);
  ty_rpc_client_close(cl);
  /* The answer was lost; the client tries again on a new connection. */
  s.replay = true;
  cl = replaying_client(&c, &s);
  cr_expect_eq(submit_with_id(cl, "resent", "resent-1", &again, msg, sizeof msg), TY_EPERM);
  cr_expect(strstr(msg, "replayed"), "got: %s", msg);
  ty_rpc_client_close(cl);
  s.replay = false;
  cl = replaying_client(&c, &s);
  cr_assert_eq(submit_with_id(cl, "resent", "resent-1", &again, msg, sizeof msg), 0, "%s", msg);
  cr_expect_eq(again, first);
  ty_rpc_client_close(cl);
  ty_auth_destroy(s.auth);
  ty_buf_close(&s.last);
  it_cluster_stop(&c);
}

/* ---- limits at the door -------------------------------------------------------------------- */

/* The value of one sample line "NAME{LABELS} V" in a scrape, or -1. */
Test(hardening, idle_connections_are_capped_and_timed_out, .timeout = 120) {
  it_cluster c;
  static const char *const limits[] = {"--max-conns-per-addr", "12", "--handshake-timeout-ms",
                                       "300", NULL};
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = limits});
  enum { N = 30 };
  int fds[N];
  for (int i = 0; i < N; i++)
    fds[i] = it_raw_connect(c.rpc_port);
  /* Every one ends: over the cap, the oldest without a credential makes
   * room for the newer (they never authenticate), the others at the
   * deadline. */
  for (int i = 0; i < N; i++) {
    cr_expect(it_closed_by_peer(fds[i]), "connection %d was kept", i);
    close(fds[i]);
  }
  const char *nodes[] = {"nodes", NULL};
  cr_expect_eq(it_trainctl(&c, NULL, nodes), 0, "trainctl nodes failed");
  char *m = it_http_get_metrics(c.metrics_port);
  cr_expect_gt(
      it_metric_in(m, "trainyard_connections_closed_total{listener=\"rpc\",reason=\"unproven\"} "),
      0, "%s", m);
  cr_expect_gt(
      it_metric_in(m, "trainyard_connections_closed_total{listener=\"rpc\",reason=\"handshake\"} "),
      0, "%s", m);
  free(m);
  it_cluster_stop(&c);
}

/* Under --auth none no request carries a credential: a connection that
 * had one admitted (a worker's registration) is not closed for a newer one
 * at --max-conns; the idle ones that never sent a request are. */
Test(hardening, under_auth_none_the_connection_cap_spares_the_workers_sessions, .timeout = 120) {
  it_cluster c;
  static const char *const limits[] = {"--max-conns", "6", NULL};
  it_cluster_start_with(&c, 1, 2, &(it_options){.auth_none = true, .traind_args = limits});
  enum { N = 8 };
  int fds[N];
  for (int i = 0; i < N; i++)
    fds[i] = it_raw_connect(c.rpc_port);
  /* Two workers' sessions and eight idle peers: the oldest idle ones make
   * room for the newer. */
  for (int i = 0; i < 2; i++)
    cr_expect(it_closed_by_peer(fds[i]), "idle connection %d was kept", i);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  const char *nodes[] = {"nodes", NULL};
  cr_expect_eq(it_trainctl(&c, NULL, nodes), 0, "trainctl nodes failed");
  char path[340];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  char *log = it_read_text(path);
  cr_expect(log && !strstr(log, ": connection from "), "a worker's session was closed:\n%s",
            log ? log : "(no log)");
  free(log);
  it_cluster_stop(&c);
}

Test(hardening, cancel_with_too_many_ids_is_refused_naming_the_field, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  enum { IDS = 100000 };
  uint64_t *ids = malloc(IDS * sizeof *ids);
  for (size_t i = 0; i < IDS; i++)
    ids[i] = i + 1;
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  req.job_ids = ids;
  req.n_job_ids = IDS;
  size_t n = trainyard__cancel_job_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  trainyard__cancel_job_request__pack(&req, buf);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_CANCEL_JOB, buf, n, 10000, &r), 0);
  cr_expect_eq(r.status, TY_EINVAL);
  cr_expect_str_eq(r.message, "job_ids: 100000 entries or more; at most 1024 are allowed");
  ty_rpc_result_close(&r);
  free(buf);
  free(ids);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Calls method with m, its '@' bytes made NUL (protobuf-c packs a string
 * up to its first NUL), and expects TY_EINVAL with `want` as the message. */
static void expect_refused(ty_rpc_client *cl, const char *method, uint8_t *m, size_t n,
                           const char *want) {
  for (size_t i = 0; i < n; i++)
    if (m[i] == '@') m[i] = 0;
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_client_call(cl, method, m, n, 10000, &r), 0);
  cr_expect_eq(r.status, TY_EINVAL, "%s: %d (%s), not TY_EINVAL", method, r.status, r.message);
  cr_expect_str_eq(r.message, want, "%s", method);
  ty_rpc_result_close(&r);
}

/* A client's strings holding a NUL are refused naming the field, and
 * nothing is stored: not a job named "a" (the C string cut there), not a
 * node drained with half its reason. */
Test(hardening, strings_with_a_nul_are_refused_naming_the_field, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char *argv[] = {"true"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.argv = argv, cmd.n_argv = 1;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "a@b", job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__SubmitJobRequest sj = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  sj.job = &job;
  uint8_t b[512];
  expect_refused(cl, TY_M_SUBMIT_JOB, b, trainyard__submit_job_request__pack(&sj, b),
                 "job.name: holds a NUL byte (at byte 1)");
  Trainyard__UpdateNodeRequest un = TRAINYARD__UPDATE_NODE_REQUEST__INIT;
  un.name = c.name[0], un.action = "drain", un.reason = "disk@full";
  expect_refused(cl, TY_M_UPDATE_NODE, b, trainyard__update_node_request__pack(&un, b),
                 "reason: holds a NUL byte (at byte 4)");
  Trainyard__ListJobsResponse *jobs = it_list_jobs(cl);
  cr_expect_eq(jobs->n_jobs, 0, "a job was stored");
  trainyard__list_jobs_response__free_unpacked(jobs, NULL);
  cr_expect_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 1, "the node changed");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- a task's environment stays out of root processes ------------------------------ */

/* A user's --export reaches the task, never a process the worker runs as
 * root before the task's user is taken: the exec helper of a
 * ThreadSanitizer build (worker/exec.c) once ran with the task's
 * environment, so LD_PRELOAD there loaded a library into a root process.
 * The dynamic loader's LD_DEBUG names each program it starts: the task's
 * log must name the task's program and never trainyard-exec. (Other
 * builds start tasks without the helper; the test holds there too.) */
Test(hardening, a_tasks_environment_never_reaches_a_root_helper, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char name[32];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  const char *argv[] = {getenv("TY_TRAINCTL"), "submit", "--command",     "-q", "--export",
                        "LD_DEBUG=libs",       "--",     "/usr/bin/true", NULL};
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_run_as(&c, uid, gid, "/tmp", &out, &err, argv), 0, "submit as %s: %s", name, err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  char path[400];
  snprintf(path, sizeof path, "%s/w1/jobs/%llu/rank0.log", c.dir, (unsigned long long)id);
  char *log = it_read_text(path);
  cr_assert(log, "no log at %s", path);
  cr_expect(strstr(log, "transferring control: /usr/bin/true"), "LD_DEBUG missed the task: %s",
            log);
  cr_expect(!strstr(log, "trainyard-exec"), "the task's LD_DEBUG reached the root helper: %s", log);
  free(log);
  it_cluster_stop(&c);
}
