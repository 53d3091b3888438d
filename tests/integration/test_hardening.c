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
 *   - a full state disk (a small tmpfs): a submit is refused and never
 *     appears, a cancel kills the tasks and says it is not stored yet, and
 *     once there is room every job is written again, so a SIGKILLed
 *     controller comes back with the cancellation and every accepted job;
 *     a queue create or node drain refused as not stored is not in effect
 *     (not listed, not drained), then or after a restart; a job whose
 *     RUNNING record could not be stored is not launched (a restarted
 *     controller would find it PENDING and run it a second time): it
 *     waits PENDING, saying why, and runs once when the disk has room.
 *   - a client posing as a worker (worker methods with a replayed MUNGE
 *     credential, pipelined) is refused at the door, before any credential
 *     check on the workers' credential thread.
 *   - the store readers' gate is fair between users: two users whose
 *     pipelined GetHistory keep every slot busy do not hold back a third
 *     user's request until their backlogs are read.
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

/* ---- a full state disk ------------------------------------------------------------------ */

static char tmpfs_at[320]; /* the tmpfs under the controller's state, until unmounted */

static void unmount_state(void) {
  if (tmpfs_at[0]) umount2(tmpfs_at, MNT_DETACH);
  tmpfs_at[0] = '\0';
}

/* Restarts the controller on a copy of its state in a 16 MiB tmpfs (as
 * root, which CI is); skips the test when it cannot mount one. */
static void state_on_tmpfs(it_cluster *c) {
  char state[320], disk[340], cmd[800];
  snprintf(state, sizeof state, "%s/traind", c->dir);
  snprintf(disk, sizeof disk, "%s/traind.disk", c->dir);
  it_kill9(&c->traind);
  cr_assert_eq(rename(state, disk), 0, "%s", strerror(errno));
  cr_assert_eq(mkdir(state, 0700), 0, "%s", strerror(errno));
  if (mount("tmpfs", state, "tmpfs", 0, "size=16m,mode=0700") != 0) {
    rmdir(state);
    rename(disk, state);
    it_controller_start(c);
    it_cluster_stop(c);
    cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
  }
  snprintf(tmpfs_at, sizeof tmpfs_at, "%s", state);
  atexit(unmount_state); /* also when an assertion ends the test */
  snprintf(cmd, sizeof cmd, "cp -a '%s/.' '%s/'", disk, state);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  it_controller_start(c);
}

/* Fills the file system of path until a write of one page fails. */
static void fill_disk(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
  static char block[1 << 16];
  for (size_t len = sizeof block; len >= 4096; len /= 2)
    while (write(fd, block, len) == (ssize_t)len) {
    }
  close(fd);
}

/* Polls the controller's log for `text`. */
static bool log_says(const it_cluster *c, const char *text) {
  char path[340];
  snprintf(path, sizeof path, "%s/traind.stderr", c->dir);
  for (int i = 0; i < 300; i++) {
    char *log = it_read_text(path);
    bool found = log && strstr(log, text);
    free(log);
    if (found) return true;
    it_sleep_ms(100);
  }
  return false;
}

/* `ls --all` and `history` list job `id` (a decimal string). */
static void listed_ended(it_cluster *c, const char *id) {
  const char *const ls[] = {"ls", "--all", "--noheader", "-o", "%i", NULL};
  const char *const hist[] = {"history", "--noheader", "-o", "id", NULL};
  const char *const *argvs[] = {ls, hist};
  for (size_t k = 0; k < 2; k++) {
    char *out = NULL;
    it_trainctl_ok(c, &out, argvs[k]);
    bool found = false;
    for (char *line = strtok(out, "\n"); line && !found; line = strtok(NULL, "\n"))
      found = strtoull(line, NULL, 10) == strtoull(id, NULL, 10);
    cr_assert(found, "trainctl %s does not list job %s while the store is full", argvs[k][0], id);
    free(out);
  }
}

Test(hardening, a_full_state_disk_loses_no_job_and_no_cancel, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  state_on_tmpfs(&c);
  uint64_t run = it_submit_cli(&c, (const char *const[]){"--", "sleep", "300", NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, run, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  char filler[360];
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  fill_disk(filler);
  /* Submits until the store can no longer grow; each refused one says so. */
  uint64_t accepted[200];
  size_t n_ok = 0;
  bool refused = false;
  for (int i = 0; i < 200 && !refused; i++) {
    char *out = NULL, *err = NULL;
    int rc = it_trainctl_err(
        &c, &out, &err,
        (const char *const[]){"submit", "--parsable", "--hold", "--command", "--", "true", NULL});
    if (rc == 0) {
      accepted[n_ok++] = strtoull(out, NULL, 10);
    } else {
      cr_assert(strstr(err, "the job was not stored, so it was not accepted"), "%s", err);
      refused = true;
    }
    free(out), free(err);
  }
  cr_assert(refused, "200 submits were stored on a full disk");
  char ids[32], *out = NULL, *err = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)run);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"cancel", ids, NULL}), 0);
  cr_assert(strstr(err, "cancelled, but not stored yet"), "%s", err);
  free(out), free(err);
  /* The tasks go anyway. */
  cr_assert_eq(it_wait_state(cl, run, 0, 60000), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  /* Still listed after the sweeps of the next ticks: the store holds it as
   * RUNNING (its end was not stored), so memory answers for it (once, the
   * ended job left the live set and neither half listed it). */
  it_sleep_ms(2500);
  listed_ended(&c, ids);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  /* What the store holds now is what a new controller serves. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, run), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  for (size_t i = 0; i < n_ok; i++)
    cr_assert_eq(it_job_state(cl, accepted[i]), TRAINYARD__JOB_STATE__JOB_PENDING,
                 "accepted job %llu", (unsigned long long)accepted[i]);
  ty_rpc_client_close(cl);
  /* And nothing else: the refused submit left no job behind. */
  out = NULL;
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *const[]){"ls", "--all", "--noheader", "-o", "%i", NULL}),
      0);
  size_t lines = 0;
  for (const char *p = out; (p = strchr(p, '\n')); p++)
    lines++;
  cr_assert_eq(lines, n_ok + 1, "jobs listed: %s", out);
  free(out);
  it_cluster_stop(&c);
  unmount_state();
}

/* Submits until one is refused for the full disk. */
static void submit_until_refused(it_cluster *c) {
  for (int i = 0; i < 200; i++) {
    char *out = NULL, *err = NULL;
    int rc = it_trainctl_err(
        c, &out, &err,
        (const char *const[]){"submit", "--parsable", "--hold", "--command", "--", "true", NULL});
    free(out), free(err);
    if (rc != 0) return;
  }
  cr_assert_fail("200 submits were stored on a full disk");
}

/* `trainctl ARGV` fails saying the change was not stored. */
static void refused_not_stored(it_cluster *c, const char *const *argv) {
  char *out = NULL, *err = NULL;
  cr_assert_neq(it_trainctl_err(c, &out, &err, argv), 0, "%s %s was stored on a full disk", argv[0],
                argv[1]);
  cr_assert(strstr(err, "the change was not stored"), "%s", err);
  free(out), free(err);
}

/* The queue ls and nodes output: no queue q1, and the worker not drained. */
static void change_not_in_effect(it_cluster *c) {
  char *out = NULL;
  it_trainctl_ok(c, &out, (const char *const[]){"queue", "ls", NULL});
  cr_assert_null(strstr(out, "q1"), "a queue not stored is listed: %s", out);
  free(out);
  it_trainctl_ok(c, &out, (const char *const[]){"nodes", NULL});
  cr_assert_null(strstr(out, "DRAIN"), "a drain not stored is in effect: %s", out);
  free(out);
}

Test(hardening, a_queue_or_node_change_not_stored_is_not_in_effect, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  state_on_tmpfs(&c);
  /* The worker's registration may not have been stored before the kill:
   * the drain below needs it known again. */
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  ty_rpc_client_close(cl);
  char filler[360];
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  fill_disk(filler);
  submit_until_refused(&c);
  refused_not_stored(&c,
                     (const char *const[]){"queue", "create", "q1", "--max-running", "1", NULL});
  refused_not_stored(&c, (const char *const[]){"node", "drain", c.name[0], "--reason", "x", NULL});
  change_not_in_effect(&c);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  change_not_in_effect(&c);
  /* The retry is a create like the first, and its queue takes jobs. */
  char *out = NULL;
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"queue", "create", "q1", "--max-running", "1", NULL});
  free(out);
  it_submit_cli(&c, (const char *const[]){"-H", "-p", "q1", "--", "true", NULL});
  it_kill9(&c.traind);
  it_controller_start(&c);
  it_trainctl_ok(&c, &out, (const char *const[]){"queue", "ls", NULL});
  cr_assert(strstr(out, "q1"), "the stored queue is gone after a restart: %s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"nodes", NULL});
  cr_assert_null(strstr(out, "DRAIN"), "a drain not stored is in effect: %s", out);
  free(out);
  it_cluster_stop(&c);
  unmount_state();
}

/* `trainctl show ID` says `text`. */
static void show_says(it_cluster *c, uint64_t id, const char *text) {
  char ids[32], *out = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, text), "job %s does not say \"%s\": %s", ids, text, out);
  free(out);
}

Test(hardening, a_start_not_stored_is_not_launched_and_runs_once, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  state_on_tmpfs(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  char marks[340], script[400], filler[360];
  snprintf(marks, sizeof marks, "%s/runs", c.dir);
  snprintf(script, sizeof script, "echo run >> '%s'", marks);
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  uint64_t id =
      it_submit_cli(&c, (const char *const[]){"-b", "now+5s", "--", "sh", "-c", script, NULL});
  char after[48], want[80];
  snprintf(after, sizeof after, "after:%llu", (unsigned long long)id);
  uint64_t dep =
      it_submit_cli(&c, (const char *const[]){"--dependency", after, "--", "true", NULL});
  fill_disk(filler);
  submit_until_refused(&c); /* the store's own slack used up too */
  cr_assert(log_says(&c, "RUNNING record was not"), "the start was stored");
  it_sleep_ms(2000);
  cr_assert_eq(it_job_state(cl, id), TRAINYARD__JOB_STATE__JOB_PENDING);
  show_says(&c, id, "the controller's store failed: retried when it writes again");
  /* Its `after:` waiter waits on: the start that met it did not happen. */
  snprintf(want, sizeof want, "%s(PENDING)", after);
  cr_assert_eq(it_job_state(cl, dep), TRAINYARD__JOB_STATE__JOB_PENDING);
  show_says(&c, dep, want);
  cr_assert_neq(access(marks, F_OK), 0, "job %llu ran although its RUNNING record was not stored",
                (unsigned long long)id);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  cr_assert_eq(it_wait_state(cl, dep, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  /* What the store holds is that one run: a new controller runs it not again. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, id), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  it_sleep_ms(2000);
  cr_assert_eq(it_count_lines(marks), 1, "job %llu ran %d times", (unsigned long long)id,
               it_count_lines(marks));
  it_cluster_stop(&c);
  unmount_state();
}

/* An array's elements whose first writes (their RUNNING records) were not
 * stored are back in the array's record: a cancel of one, not stored
 * either, is stored with the store's repair once the disk has room, the
 * other runs, and a new controller finds them CANCELLED and COMPLETED. */
Test(hardening, an_array_element_not_stored_is_repaired_with_its_cancel, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  state_on_tmpfs(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  char filler[360], second[48], *out = NULL, *err = NULL;
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  uint64_t arr = it_submit_cli(
      &c, (const char *const[]){"-a", "0-1", "-b", "now+5s", "--", "sleep", "2", NULL});
  fill_disk(filler);
  submit_until_refused(&c); /* the store's own slack used up too */
  cr_assert(log_says(&c, "RUNNING record was not"), "the start was stored");
  it_sleep_ms(1000);
  cr_assert_eq(it_job_state(cl, arr), TRAINYARD__JOB_STATE__JOB_PENDING);
  snprintf(second, sizeof second, "%llu_1", (unsigned long long)arr);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"cancel", second, NULL}), 0);
  cr_assert(strstr(err, "cancelled, but not stored yet"), "%s", err);
  free(out), free(err);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  cr_assert_eq(it_wait_state(cl, arr, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  /* What the store holds now is what a new controller serves. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, arr), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  cr_assert_eq(it_job_state(cl, arr + 1), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
  unmount_state();
}

/* ---- store reads flooded on the local socket ---------------------------------------------- */

static int local_connect(const it_cluster *c) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  int n = snprintf(a.sun_path, sizeof a.sun_path, "%.90s/traind/traind.sock", c->dir);
  cr_assert(n > 0 && (size_t)n < sizeof a.sun_path, "the socket path is too long");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  cr_assert(fd >= 0);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect %s: %s", a.sun_path,
               strerror(errno));
  return fd;
}

/* `n` pipelined requests for `method` with an empty payload, as one blob. */
static ty_buf pipelined(const char *method, int n) {
  ty_buf b;
  ty_buf_init(&b);
  for (int i = 0; i < n; i++) {
    ty_rpc_msg m = {.version = TY_RPC_VERSION,
                    .request_id = (uint64_t)i + 1,
                    .kind = TY_RPC_REQUEST,
                    .method = method};
    uint8_t *f;
    size_t len;
    cr_assert_eq(ty_rpc_encode(&m, &f, &len), 0);
    cr_assert_eq(ty_buf_append(&b, f, len), 0);
    free(f);
  }
  return b;
}

static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

/* One user pipelining store reads (ListJobs, GetHistory) on many
 * connections without reading an answer: the worker's heartbeats are not
 * held behind them (its node stays UP, its job is not requeued), another
 * client is answered, and traind's memory stays bounded. */
static void flood_store_reads(const char *method) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char err[256];
  cr_assert_eq(it_submit_sh(cl, "sleep 300", "victim", &id, err, sizeof err), 0, "%s", err);
  it_wait_state(cl, id, ST(RUNNING), 30000);
  long rss0 = rss_kib(c.traind), rss_max = rss0;
  enum { CONNS = 30 };
  int fds[CONNS];
  size_t sent[CONNS] = {0};
  for (int i = 0; i < CONNS; i++)
    fds[i] = local_connect(&c);
  ty_buf blob = pipelined(method, 5000);
  int64_t t0 = ty_mono_ms(), next_probe = t0 + 1000;
  while (ty_mono_ms() - t0 < (int64_t)c.node_timeout_ms * 2 + 2000) {
    for (int i = 0; i < CONNS; i++) {
      ssize_t k = sent[i] < blob.len ? send(fds[i], blob.data + sent[i], blob.len - sent[i], 0) : 0;
      if (k > 0) sent[i] += (size_t)k;
    }
    usleep(20000);
    if (ty_mono_ms() < next_probe) continue;
    ty_rpc_result r; /* answered within the call's bound, not after the flood */
    int rc = ty_rpc_client_call(cl, TY_M_LIST_NODES, NULL, 0, 10000, &r);
    cr_expect(rc == 0 && r.status == 0, "another client's ListNodes failed: %s", r.message);
    ty_rpc_result_close(&r);
    long rss = rss_kib(c.traind);
    if (rss > rss_max) rss_max = rss;
    next_probe = ty_mono_ms() + 1000;
  }
  for (int i = 0; i < CONNS; i++)
    close(fds[i]);
  ty_buf_close(&blob);
  cr_expect_eq(it_job_state(cl, id), ST(RUNNING), "the running job was disturbed");
  char path[340];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  char *log = it_read_text(path);
  cr_expect(log && !strstr(log, "is DOWN"), "the node went DOWN:\n%s", log ? log : "(no log)");
  free(log);
  /* Under a sanitizer freed memory is quarantined: no bound to check. */
  cr_expect(it_sanitized() || rss_max - rss0 < 64 * 1024, "traind grew from %ld KiB to %ld KiB",
            rss0, rss_max);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(hardening, a_list_jobs_flood_does_not_starve_heartbeats, .timeout = 180) {
  flood_store_reads(TY_M_LIST_JOBS);
}

/* The flood's paths (pipelined requests held on their connections, store
 * reads beside the heartbeats, the commit thread) are the ListJobs
 * flood's: under the sanitizers, where a flood lasts 22 s, that one runs
 * them. */
Test(hardening, a_get_history_flood_does_not_starve_heartbeats, .timeout = 180) {
  it_unsanitized_only("a_list_jobs_flood_does_not_starve_heartbeats");
  flood_store_reads(TY_M_GET_HISTORY);
}

/* ---- a client posing as a worker ---------------------------------------------------- */

/* Appends one REQUEST frame for `method` (empty payload) with the
 * credential `auth` to b. */
static void request_frame(ty_buf *b, uint64_t id, const char *method, const uint8_t *auth,
                          size_t auth_len) {
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = id,
                  .kind = TY_RPC_REQUEST,
                  .method = method,
                  .auth = auth,
                  .auth_len = auth_len};
  uint8_t *f;
  size_t len;
  cr_assert_eq(ty_rpc_encode(&m, &f, &len), 0);
  cr_assert_eq(ty_buf_append(b, f, len), 0);
  free(f);
}

/* One answer frame read from fd (10 s at most): its status and message by
 * request id (ids 1 to 3). */
static void read_answer(int fd, int status[4], char msg[4][TY_ERR_LEN]) {
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t head[4];
  cr_assert_eq(recv(fd, head, 4, MSG_WAITALL), 4, "no answer: %s", strerror(errno));
  uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  uint8_t *body = malloc(n);
  cr_assert(body);
  cr_assert_eq(recv(fd, body, n, MSG_WAITALL), (ssize_t)n, "a short answer");
  ty_rpc_msg m;
  void *owner;
  cr_assert_eq(ty_rpc_decode(body, n, &m, &owner), 0);
  cr_assert(m.request_id >= 1 && m.request_id <= 3, "answer to request %llu",
            (unsigned long long)m.request_id);
  status[m.request_id] = m.status;
  snprintf(msg[m.request_id], TY_ERR_LEN, "%s", m.message);
  ty_rpc_msg_free(owner);
  free(body);
}

/* Worker methods are checked on the workers' own credential thread, one
 * munged round trip each (a replayed credential too), ahead of every
 * node's heartbeat: a client pipelining them there on many connections
 * held the heartbeats back until every node went DOWN. On a connection
 * that is no registered node's, a worker method other than one
 * RegisterNode at a time is refused at the door, before its credential is
 * looked at: here all three carry one credential (for the first), so a
 * check would have answered "replayed" or "does not match". */
Test(hardening, a_client_posing_as_a_worker_is_refused_before_any_credential_check, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_auth *auth;
  char err[TY_ERR_LEN];
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c.munged.socket};
  cr_assert_eq(ty_auth_create(&cfg, &auth, err, sizeof err), 0, "%s", err);
  uint8_t *cred = NULL;
  size_t cred_len = 0;
  cr_assert_eq(ty_auth_sign(auth, TY_M_REGISTER_NODE, NULL, 0, &cred, &cred_len, err, sizeof err),
               0, "%s", err);
  ty_buf b;
  ty_buf_init(&b);
  request_frame(&b, 1, TY_M_REGISTER_NODE, cred, cred_len);
  request_frame(&b, 2, TY_M_REGISTER_NODE, cred, cred_len);
  request_frame(&b, 3, TY_M_HEARTBEAT, cred, cred_len);
  int fd = it_raw_connect(c.rpc_port);
  cr_assert_eq(send(fd, b.data, b.len, 0), (ssize_t)b.len);
  int status[4] = {0};
  char msg[4][TY_ERR_LEN] = {{0}};
  for (int i = 0; i < 3; i++)
    read_answer(fd, status, msg);
  cr_expect_eq(status[2], TY_ESTATE, "%s", msg[2]);
  cr_expect(strstr(msg[2], "RegisterNode while another request is in flight on this connection"),
            "the second RegisterNode: %s", msg[2]);
  cr_expect_eq(status[3], TY_ESTATE, "%s", msg[3]);
  cr_expect(strstr(msg[3], "Heartbeat before RegisterNode on this connection"), "the Heartbeat: %s",
            msg[3]);
  cr_expect(!strstr(msg[1], "in flight"), "the first RegisterNode was checked: %s", msg[1]);
  close(fd);
  ty_buf_close(&b);
  free(cred);
  ty_auth_destroy(auth);
  /* The real worker, registered, is served as before. */
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  cr_assert_eq(it_submit_sh(cl, "true", "after", &id, err, sizeof err), 0, "%s", err);
  cr_expect_eq(it_wait_state(cl, id, ST(COMPLETED), 30000), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- the store readers' gate between users -------------------------------------------- */

/* Counts the whole frames in `n` bytes read from a stream (*head, *got and
 * *left carry a frame cut between reads). */
static int count_frames(const uint8_t *p, size_t n, uint8_t head[4], size_t *got, size_t *left) {
  int frames = 0;
  for (size_t k = 0; k < n;) {
    if (*left) {
      size_t take = n - k < *left ? n - k : *left;
      *left -= take, k += take;
      frames += *left == 0;
      continue;
    }
    head[(*got)++] = p[k++];
    if (*got < 4) continue;
    *got = 0;
    *left = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
    frames += *left == 0;
  }
  return frames;
}

/* A child as uid: `CONNS` connections each pipelining `n` GetHistory
 * requests, each with a MUNGE credential of its own; it counts the answers
 * into *answered (shared) until it is killed. */
enum { FLOOD_CONNS = 2 };
static pid_t history_reader_as(const it_cluster *c, uid_t uid, gid_t gid, int n, int *answered) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid > 0) return pid;
  if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(120);
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c->munged.socket};
  ty_auth *a;
  char err[TY_ERR_LEN];
  if (ty_auth_create(&cfg, &a, err, sizeof err) != 0) _exit(121);
  struct pollfd p[FLOOD_CONNS];
  uint8_t head[FLOOD_CONNS][4];
  size_t got[FLOOD_CONNS] = {0}, left[FLOOD_CONNS] = {0};
  for (int i = 0; i < FLOOD_CONNS; i++) {
    ty_buf b;
    ty_buf_init(&b);
    for (int k = 0; k < n; k++) {
      uint8_t *cred;
      size_t len;
      if (ty_auth_sign(a, TY_M_GET_HISTORY, NULL, 0, &cred, &len, err, sizeof err) != 0) _exit(122);
      request_frame(&b, (uint64_t)k + 1, TY_M_GET_HISTORY, cred, len);
      free(cred);
    }
    p[i] = (struct pollfd){.fd = it_raw_connect(c->rpc_port), .events = POLLIN};
    if (send(p[i].fd, b.data, b.len, 0) != (ssize_t)b.len) _exit(123);
    ty_buf_close(&b);
  }
  static uint8_t chunk[1 << 16];
  while (poll(p, FLOOD_CONNS, -1) > 0)
    for (int i = 0; i < FLOOD_CONNS; i++) {
      ssize_t k = p[i].revents ? read(p[i].fd, chunk, sizeof chunk) : 0;
      if (k > 0)
        __atomic_add_fetch(answered, count_frames(chunk, (size_t)k, head[i], &got[i], &left[i]),
                           __ATOMIC_SEQ_CST);
    }
  _exit(0);
}

/* Two operators (they read everyone's 10000 ended jobs) pipeline GetHistory
 * on two connections each, so their reads hold all 4 of the gate's slots,
 * 2 each, for many reads. A third user's GetHistory goes in the next slot
 * that frees: answered while most of their backlog still waits. (The gate
 * once ran the oldest waiter that fit: each freed slot went to its owner's
 * own older waiters, and the third user waited for both backlogs.) */
Test(hardening, a_third_users_store_read_is_not_held_behind_two_backlogs, .timeout = 240) {
  char a_name[64], b_name[64], extra[200];
  uid_t a_uid, b_uid;
  gid_t a_gid, b_gid;
  it_user_add(a_name, sizeof a_name, &a_uid, &a_gid);
  it_user_add(b_name, sizeof b_name, &b_uid, &b_gid);
  snprintf(extra, sizeof extra, "auth.operators = %s\nauth.operators = %s\n", a_name, b_name);
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.config_extra = extra});
  uint64_t arr = it_submit_cli(&c, (const char *[]){"-H", "--array", "0-9999", "--", "true", NULL});
  char sid[24], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)arr);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", sid, NULL}), 0);
  free(out);
  enum { EACH = 100 }; /* per connection: under --max-inflight, all read at once */
  int *answered =
      mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert(answered != MAP_FAILED);
  answered[0] = answered[1] = 0;
  pid_t a = history_reader_as(&c, a_uid, a_gid, EACH, &answered[0]);
  pid_t b = history_reader_as(&c, b_uid, b_gid, EACH, &answered[1]);
  for (int i = 0; i < 3000 && (__atomic_load_n(&answered[0], __ATOMIC_SEQ_CST) == 0 ||
                               __atomic_load_n(&answered[1], __ATOMIC_SEQ_CST) == 0);
       i++)
    it_sleep_ms(10); /* both backlogs are queued and being read */
  ty_rpc_client *cl = it_client(&c);
  ty_rpc_result r;
  int rc = ty_rpc_client_call(cl, TY_M_GET_HISTORY, NULL, 0, 120000, &r);
  int done = __atomic_load_n(&answered[0], __ATOMIC_SEQ_CST) +
             __atomic_load_n(&answered[1], __ATOMIC_SEQ_CST);
  cr_expect(rc == 0 && r.status == 0, "the third user's GetHistory: %s", r.message);
  ty_rpc_result_close(&r);
  cr_expect_lt(done, 2 * FLOOD_CONNS * EACH / 2,
               "%d of the two backlogs' %d reads were answered before the third user's", done,
               2 * FLOOD_CONNS * EACH);
  kill(a, SIGKILL), kill(b, SIGKILL);
  waitpid(a, NULL, 0), waitpid(b, NULL, 0);
  munmap(answered, 2 * sizeof(int));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
