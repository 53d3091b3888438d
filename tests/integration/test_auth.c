/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authentication and isolation end to end (docs/security.md), as root with
 * real test users, a private munged, the real traind, trainworkerd and
 * trainctl: what one user may not do to another's job and what its owner
 * may, operators-only administration, a fake worker, tasks running as their
 * submitter in their cgroup (a double-forked child dies with the job),
 * accounting, a worker killed with -9 never running a job twice, private
 * state, a uid unknown on the node, --auth none, and traind refusing to start
 * without munged.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/wire/wire.h"
#include "proto/methods.h"
#include "tests/integration/cleanup.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

typedef struct user {
  char name[32];
  uid_t uid;
  gid_t gid;
} user;

static user make_user(void) {
  user u;
  it_user_add(u.name, sizeof u.name, &u.uid, &u.gid);
  return u;
}

/* trainctl ARGS... as u from /tmp: exit status, stdout and stderr (heap). */
static int ctl_as(const it_cluster *c, const user *u, char **out, char **err,
                  const char *const *args) {
  return it_trainctl_as(c, u->uid, u->gid, "/tmp", out, err, args);
}

/* Submits `sh -c script` as u with trainctl; returns the job id. */
static uint64_t submit_as(const it_cluster *c, const user *u, const char *script) {
  char *out = NULL, *err = NULL;
  int rc = ctl_as(c, u, &out, &err,
                  (const char *[]){"submit", "--command", "-q", "--", "sh", "-c", script, NULL});
  cr_assert_eq(rc, 0, "submit as %s: %s", u->name, err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_gt(id, 0);
  return id;
}

/* Expects trainctl ARGS as u to be refused with `words` on stderr. */
static void refused(const it_cluster *c, const user *u, const char *words,
                    const char *const *args) {
  char *err = NULL;
  int rc = ctl_as(c, u, NULL, &err, args);
  cr_expect_neq(rc, 0, "trainctl %s %s as %s was not refused", args[0], args[1] ? args[1] : "",
                u->name);
  cr_expect(strstr(err, words), "trainctl %s as %s: expected \"%s\" in: %s", args[0], u->name,
            words, err);
  free(err);
}

static void ok_as(const it_cluster *c, const user *u, const char *const *args) {
  char *err = NULL;
  int rc = ctl_as(c, u, NULL, &err, args);
  cr_expect_eq(rc, 0, "trainctl %s as %s: %s", args[0], u->name, err);
  free(err);
}

static void wait_state(ty_rpc_client *cl, uint64_t id, int state) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, state, 30000);
  cr_assert(r, "job %lu never reached state %d", (unsigned long)id, state);
  trainyard__get_job_response__free_unpacked(r, NULL);
}

/* A job's accounting (resource use, exit code) is its owner's and the
 * operators': show and ListJobs give another user those fields empty,
 * as history refuses them (it once printed "usage: 84.0 MiB peak memory"
 * and "exit code: 3" to anyone). */
Test(auth, another_users_accounting_is_redacted, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user(), bob = make_user();
  uint64_t id = submit_as(&c, &alice, "head -c 20000000 /dev/zero | md5sum; exit 3");
  ty_rpc_client *cl = it_client(&c);
  wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_FAILED);
  ty_rpc_client_close(cl);
  char sid[24];
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  char *out = NULL;
  cr_assert_eq(ctl_as(&c, &alice, &out, NULL, (const char *[]){"show", sid, "--json", NULL}), 0);
  cr_expect(strstr(out, "\"exit_code\":3") && !strstr(out, "\"cpu_usec\":0,"), "alice: %s", out);
  free(out);
  cr_assert_eq(ctl_as(&c, &bob, &out, NULL, (const char *[]){"show", sid, "--json", NULL}), 0);
  cr_expect(strstr(out, "\"redacted\":true") && strstr(out, "\"exit_code\":0") &&
                strstr(out, "\"cpu_usec\":0,") && strstr(out, "\"mem_peak_bytes\":0"),
            "bob: %s", out);
  free(out);
  it_cluster_stop(&c);
}

Test(auth, other_users_are_refused_owners_and_operators_are_not, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user alice = make_user(), bob = make_user(), root = {"root", 0, 0};
  ok_as(&c, &root, (const char *[]){"node", "drain", "w1", NULL}); /* keep the job pending */
  uint64_t id = submit_as(&c, &alice, "echo secret-$((6*7)); sleep 300");
  char sid[24];
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  refused(&c, &bob, "permission denied", (const char *[]){"cancel", sid, NULL});
  refused(&c, &bob, "permission denied", (const char *[]){"job", "hold", sid, NULL});
  refused(&c, &bob, "permission denied", (const char *[]){"job", "move", sid, "default", NULL});
  refused(&c, &bob, "permission denied", (const char *[]){"job", "priority", sid, "-5", NULL});
  refused(&c, &bob, "only operators", (const char *[]){"queue", "create", "bobq", NULL});
  refused(&c, &bob, "only operators", (const char *[]){"node", "resume", "w1", NULL});
  /* Listings keep another user's command and environment to themselves. */
  char *out = NULL;
  cr_assert_eq(ctl_as(&c, &bob, &out, NULL, (const char *[]){"show", sid, "--json", NULL}), 0);
  cr_expect(!strstr(out, "secret") && strstr(out, "\"redacted\":true"), "bob sees: %s", out);
  free(out);
  cr_assert_eq(ctl_as(&c, &alice, &out, NULL, (const char *[]){"show", sid, "--json", NULL}), 0);
  cr_expect(strstr(out, "secret"), "alice sees: %s", out);
  free(out);
  /* The owner holds, releases, lowers the priority; raising it is for operators. */
  ok_as(&c, &alice, (const char *[]){"job", "hold", sid, NULL});
  ok_as(&c, &alice, (const char *[]){"job", "release", sid, NULL});
  ok_as(&c, &alice, (const char *[]){"job", "priority", sid, "-5", NULL});
  refused(&c, &alice, "only operators raise", (const char *[]){"job", "priority", sid, "5", NULL});
  ok_as(&c, &root, (const char *[]){"job", "priority", sid, "5", NULL});
  ok_as(&c, &root, (const char *[]){"node", "resume", "w1", NULL});
  ty_rpc_client *cl = it_client(&c);
  wait_state(cl, id, ST(RUNNING));
  /* Logs and attach tokens: the owner's and operators', nobody else's. */
  refused(&c, &bob, "permission denied", (const char *[]){"logs", sid, NULL});
  refused(&c, &bob, "permission denied", (const char *[]){"attach", sid, NULL});
  for (int i = 0; i < 100; i++) {
    char *err = NULL;
    int rc = ctl_as(&c, &alice, &out, &err, (const char *[]){"logs", sid, NULL});
    /* Until the worker has started the rank, there is no log yet. */
    cr_assert(rc == 0 || strstr(err, "no log for job"), "trainctl logs as %s: %s", alice.name, err);
    free(err);
    if (strstr(out, "secret-42")) break;
    free(out), out = NULL;
    it_sleep_ms(50);
  }
  cr_expect(out && strstr(out, "secret-42"), "alice's logs: %s", out ? out : "(none)");
  free(out);
  ok_as(&c, &alice, (const char *[]){"cancel", sid, NULL});
  wait_state(cl, id, ST(CANCELLED));
  cr_expect_geq(
      it_metric(c.metrics_port,
                "trainyard_rpc_refusals_total{method=\"CancelJob\",reason=\"not_owner\"} "),
      1);
  cr_expect_geq(it_metric(c.metrics_port, "trainyard_rpc_refusals_total{method=\"UpdateQueue\","
                                          "reason=\"not_operator\"} "),
                1);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `trainctl nodes` holds the line of node `name`, with `text` in it. */
static bool node_line_has(const it_cluster *c, const char *name, const char *text) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"nodes", NULL}), 0);
  bool has = false;
  for (char *line = strtok(out, "\n"); line && !has; line = strtok(NULL, "\n"))
    has = strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ' && strstr(line, text);
  free(out);
  return has;
}

/* A known node left out of auth.nodes at a restart shows, UNKNOWN and
 * then DOWN, that its registration is refused and when it last tried; its
 * worker fences its task saying it was refused, not that no answer came. */
Test(auth, a_refused_node_shows_the_refusal, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  char script[400], started[300];
  snprintf(started, sizeof started, "%s/started", c.dir);
  snprintf(script, sizeof script, "touch %s; exec sleep 300", started);
  uint64_t id = it_submit_cli(&c, (const char *[]){"-w", "w2", "--", "sh", "-c", script, NULL});
  ty_rpc_client *cl = it_client(&c);
  it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000);
  ty_rpc_client_close(cl);
  for (int i = 0; i < 300 && access(started, F_OK) != 0; i++) /* its task runs on w2 */
    it_sleep_ms(50);
  cr_assert_eq(access(started, F_OK), 0, "the job's task never started (logs in %s)", c.dir);
  FILE *f = fopen(c.config, "w");
  cr_assert(f, "%s", c.config);
  fputs("auth.nodes = w1\n", f);
  fclose(f);
  it_controller_restart(&c, false);
  const char *want = "registration refused: not listed in auth.nodes (last try ";
  bool seen = false;
  for (int i = 0; i < 100 && !seen; i++, it_sleep_ms(100))
    seen = node_line_has(&c, "w2", want);
  cr_assert(seen, "w2 does not show its refusal (logs in %s)", c.dir);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_DOWN, 30000), "w2 never went DOWN");
  ty_rpc_client_close(cl);
  cr_assert(node_line_has(&c, "w2", "DOWN"), "w2 is not DOWN");
  cr_assert(node_line_has(&c, "w2", want), "w2 DOWN does not show its refusal");
  char log[300];
  snprintf(log, sizeof log, "%s/w2.stderr", c.dir);
  it_wait_log(log, "fenced: node w2 was refused by the controller for ");
  it_wait_log(log, "not listed in auth.nodes");
  it_cluster_stop(&c);
}

/* RegisterNode for `name` with root's credential: its status, msg filled. */
static int register_as_root(const it_cluster *c, const char *name, char *msg, size_t len) {
  Trainyard__NodeInfo ni = TRAINYARD__NODE_INFO__INIT;
  ni.name = (char *)name, ni.io_addr = "127.0.0.1:9", ni.cpus = 1;
  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &ni;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  int st = it_call_as(c, 0, 0, TY_M_REGISTER_NODE, &b, msg, len);
  ty_buf_close(&b);
  return st;
}

/* A reload that takes a connected node out of auth.nodes drains it at once
 * (docs/security.md): its running job goes on, it gets no new one, the
 * reload's answer and admin event say so, `node resume` is refused while it
 * is unlisted, and its next RegisterNode is refused. */
Test(auth, a_reload_that_unlists_a_connected_node_drains_it, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  uint64_t running =
      it_submit_cli(&c, (const char *[]){"-w", "w2", "--", "sh", "-c", "exec sleep 300", NULL});
  ty_rpc_client *cl = it_client(&c);
  it_wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000);
  FILE *f = fopen(c.config, "w");
  cr_assert(f, "%s", c.config);
  fputs("auth.nodes = w1\n", f);
  fclose(f);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(out, "node w2: drained, not listed in auth.nodes (its running jobs go on"), "%s",
            out);
  cr_assert_null(strstr(out, "node w1"), "%s", out);
  free(out);
  cr_assert(node_line_has(&c, "w2", "not listed in auth.nodes since a reconfigure"),
            "w2 does not show why it is drained");
  cr_assert(node_line_has(&c, "w2", "DRAINING"), "w2 is not DRAINING");
  cr_assert(node_line_has(&c, "w1", " UP "), "w1 is not UP");
  uint64_t waits = it_submit_cli(&c, (const char *[]){"-w", "w2", "--", "true", NULL});
  it_sleep_ms(2000);
  Trainyard__GetJobResponse *r = it_get_job(cl, running);
  cr_assert(r && r->job->state == ST(RUNNING), "the running job did not go on");
  trainyard__get_job_response__free_unpacked(r, NULL);
  r = it_get_job(cl, waits);
  cr_assert(r && r->job->state == ST(PENDING), "a new job was placed on the drained node");
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  char *err = NULL;
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *[]){"node", "resume", "w2", NULL}), 0);
  cr_assert(strstr(err, "node w2 is not listed in auth.nodes"), "%s", err);
  free(out), free(err);
  char msg[TY_ERR_LEN];
  cr_expect_eq(register_as_root(&c, "w2", msg, sizeof msg), TY_EPERM, "%s", msg);
  cr_expect(strstr(msg, "not listed in auth.nodes"), "%s", msg);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"events", "--kind", "config", NULL}), 0);
  cr_assert(strstr(out, "node w2: drained, not listed in auth.nodes"), "%s", out);
  free(out);
  it_cluster_stop(&c);
}

/* RegisterNode as a user, without a credential, for an unlisted node. */
Test(auth, a_fake_worker_is_refused, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user mallory = make_user();
  Trainyard__NodeInfo ni = TRAINYARD__NODE_INFO__INIT;
  ni.name = "w2", ni.io_addr = "127.0.0.1:9", ni.cpus = 64;
  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &ni;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  char msg[TY_ERR_LEN];
  int st = it_call_as(&c, mallory.uid, mallory.gid, TY_M_REGISTER_NODE, &b, msg, sizeof msg);
  cr_expect_eq(st, TY_EPERM, "%s", msg);
  cr_expect(strstr(msg, "service"), "%s", msg);
  /* No credential at all. */
  ty_rpc_client *raw = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", c.rpc_port, 5000, &raw), 0);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(raw, TY_M_REGISTER_NODE, b.data, b.len, 5000, &res), 0);
  cr_expect_eq(res.status, TY_EPERM, "%s", res.message);
  cr_expect(strstr(res.message, "no credential"), "%s", res.message);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(raw);
  /* Root's credential, but a node traind's configuration does not list. */
  ni.name = "evil";
  b.len = 0;
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  st = it_call_as(&c, 0, 0, TY_M_REGISTER_NODE, &b, msg, sizeof msg);
  cr_expect_eq(st, TY_EPERM, "%s", msg);
  cr_expect(strstr(msg, "not listed in auth.nodes"), "%s", msg);
  ty_buf_close(&b);
  ty_rpc_client *cl = it_client(&c);
  cr_expect_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 1);
  ty_rpc_client_close(cl);
  const char *reasons[] = {"not_service", "no_credential", "node_not_listed"};
  for (size_t i = 0; i < 3; i++) {
    char series[160];
    snprintf(series, sizeof series,
             "trainyard_rpc_refusals_total{method=\"RegisterNode\",reason=\"%s\"} ", reasons[i]);
    cr_expect_geq(it_metric(c.metrics_port, series), 1, "%s", series);
  }
  it_cluster_stop(&c);
}

static void stat_log(const it_cluster *c, uint64_t id, struct stat *st) {
  char path[400];
  snprintf(path, sizeof path, "%s/w1/jobs/%lu/rank0.log", c->dir, (unsigned long)id);
  cr_assert_eq(stat(path, st), 0, "%s: %s", path, strerror(errno));
}

Test(auth, tasks_run_as_their_submitter_with_private_logs, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user alice = make_user();
  uint64_t id = submit_as(&c, &alice, "echo uid=$(id -u) gid=$(id -g) user=$USER home=$HOME");
  ty_rpc_client *cl = it_client(&c);
  wait_state(cl, id, ST(COMPLETED));
  char sid[24], want[160], *out = NULL;
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  cr_assert_eq(ctl_as(&c, &alice, &out, NULL, (const char *[]){"logs", sid, NULL}), 0);
  snprintf(want, sizeof want, "uid=%u gid=%u user=%s home=/home/%s", (unsigned)alice.uid,
           (unsigned)alice.gid, alice.name, alice.name);
  cr_expect(strstr(out, want), "want \"%s\" in the log: %s", want, out);
  free(out);
  struct stat st;
  stat_log(&c, id, &st);
  cr_expect_eq(st.st_uid, alice.uid);
  cr_expect_eq(st.st_mode & 0777, 0600);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The log of the job `submitted` names (submit -q's answer, freed here),
 * once it COMPLETED, read as u. */
static char *completed_log(const it_cluster *c, const user *u, char *submitted) {
  uint64_t id = strtoull(submitted, NULL, 10);
  free(submitted);
  ty_rpc_client *cl = it_client(c);
  wait_state(cl, id, ST(COMPLETED));
  ty_rpc_client_close(cl);
  char sid[24], *log = NULL;
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  cr_assert_eq(ctl_as(c, u, &log, NULL, (const char *[]){"logs", sid, NULL}), 0);
  return log;
}

/* As sbatch's SLURM_UMASK: a --wrap job's files get the submitter's umask
 * (077 here), not the worker's 022, so other users cannot read them. */
Test(auth, a_job_runs_with_its_submitters_umask, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user alice = make_user();
  char *out = NULL, *err = NULL;
  mode_t old = umask(077);
  int rc = ctl_as(&c, &alice, &out, &err,
                  (const char *[]){"submit", "-q", "--wrap",
                                   "umask; echo SLURM_UMASK=$SLURM_UMASK; "
                                   "f=$(mktemp -u /tmp/ty-um.XXXXXX); : > $f; "
                                   "stat -c mode=%a $f; rm -f $f",
                                   NULL});
  umask(old);
  cr_assert_eq(rc, 0, "submit as %s: %s", alice.name, err);
  free(err);
  char *log = completed_log(&c, &alice, out);
  cr_expect(strstr(log, "0077\nSLURM_UMASK=0077\nmode=600\n"), "the log: %s", log);
  free(log);
  it_cluster_stop(&c);
}

/* As Slurm's PropagateResourceLimits=ALL: a --wrap job gets its
 * submitter's soft limits (NOFILE 256 here), not the worker's raised ones. */
Test(auth, a_job_gets_its_submitters_soft_limits, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user alice = make_user();
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_geq(old.rlim_max, 256);
  low = (struct rlimit){.rlim_cur = 256, .rlim_max = old.rlim_max};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  char *out = NULL, *err = NULL;
  int rc = ctl_as(&c, &alice, &out, &err,
                  (const char *[]){"submit", "-q", "--wrap", "echo nofile=$(ulimit -S -n)", NULL});
  setrlimit(RLIMIT_NOFILE, &old);
  cr_assert_eq(rc, 0, "submit as %s: %s", alice.name, err);
  free(err);
  char *log = completed_log(&c, &alice, out);
  cr_expect(strstr(log, "nofile=256\n"), "the log: %s", log);
  free(log);
  it_cluster_stop(&c);
}

/* pid written by the task into path, once it is there. */
static pid_t read_pid(const char *path) {
  for (int i = 0; i < 500; i++) {
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f && fscanf(f, "%ld", &pid) == 1 && pid > 0) {
      fclose(f);
      return (pid_t)pid;
    }
    if (f) fclose(f);
    it_sleep_ms(20);
  }
  cr_assert_fail("no pid in %s", path);
  return -1;
}

static bool gone(pid_t pid) {
  for (int i = 0; i < 500; i++) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    it_sleep_ms(20);
  }
  return false;
}

Test(auth, a_double_forked_child_dies_with_its_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  ty_rpc_client *cl = it_client(&c);
  char script[512], p1[300], p2[300];
  /* A grandchild in a new session escapes the process group, not the cgroup. */
  snprintf(p1, sizeof p1, "%s/escaped.pid", c.dir);
  snprintf(script, sizeof script, "setsid sh -c 'sleep 300 & echo $! > %s'; sleep 300", p1);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, script, "fork", &id, NULL, 0), 0);
  pid_t escaped = read_pid(p1);
  ty_buf b;
  ty_buf_init(&b);
  Trainyard__CancelJobRequest creq = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  creq.n_job_ids = 1, creq.job_ids = &id;
  ty_wire_pack(&creq.base, &b);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_CANCEL_JOB, b.data, b.len, 5000, &res), 0);
  ty_rpc_result_close(&res);
  ty_buf_close(&b);
  cr_expect(gone(escaped), "the double-forked sleep %d outlived its cancelled job", (int)escaped);
  /* A job that exits leaving a daemon behind: the daemon goes with it. */
  snprintf(p2, sizeof p2, "%s/daemon.pid", c.dir);
  snprintf(script, sizeof script, "setsid sleep 300 & echo $! > %s; exit 0", p2);
  cr_assert_eq(it_submit_sh(cl, script, "daemon", &id, NULL, 0), 0);
  wait_state(cl, id, ST(COMPLETED));
  pid_t daemon = read_pid(p2);
  cr_expect(gone(daemon), "the daemon %d outlived its completed job", (int)daemon);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(auth, accounting_comes_from_the_cgroup, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl,
                            "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; "
                            "x=$(head -c 8000000 /dev/zero | tr '\\0' a); echo ${#x}",
                            "burn", &id, NULL, 0),
               0);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(COMPLETED), 60000);
  cr_assert(r, "the job did not complete (logs in %s)", c.dir);
  cr_expect_gt(r->job->cpu_usec, 10000, "cpu %lu us", (unsigned long)r->job->cpu_usec);
  cr_expect_gt(r->job->mem_peak_bytes, 1000000, "peak %lu", (unsigned long)r->job->mem_peak_bytes);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char sid[24], *out = NULL;
  snprintf(sid, sizeof sid, "%lu", (unsigned long)id);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_expect(strstr(out, "usage:") && strstr(out, "s CPU"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

static int count_lines(const char *path, const char *word) {
  FILE *f = fopen(path, "r");
  char line[64];
  int n = 0;
  while (f && fgets(line, sizeof line, f))
    n += strstr(line, word) != NULL;
  if (f) fclose(f);
  return n;
}

Test(auth, a_worker_killed_with_9_never_runs_a_job_twice, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  ty_rpc_client *cl = it_client(&c);
  char marks[300], lock[300], script[1200];
  snprintf(marks, sizeof marks, "%s/marks", c.dir);
  snprintf(lock, sizeof lock, "%s/lock", c.dir);
  /* The lock is held by every process of a run (the fd is inherited), the
   * double-forked sleeper included: a second run that finds it taken means
   * two runs at once. */
  snprintf(script, sizeof script,
           "exec 9>>%s; flock -n 9 || echo TWICE >> %s; echo run >> %s; "
           "setsid sleep 300 & sleep 300",
           lock, marks, marks);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, script, "once", &id, NULL, 0), 0);
  for (int i = 0; i < 500 && count_lines(marks, "run") < 1; i++)
    it_sleep_ms(20);
  cr_assert_eq(count_lines(marks, "run"), 1);
  it_kill9(&c.worker[0]);
  it_worker_start(&c, 0, 4);
  for (int i = 0; i < 1500 && count_lines(marks, "run") < 2; i++)
    it_sleep_ms(20);
  cr_expect_eq(count_lines(marks, "run"), 2, "the job did not run again (logs in %s)", c.dir);
  cr_expect_eq(count_lines(marks, "TWICE"), 0, "two runs of the job overlapped");
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r);
  cr_expect_eq(r->job->requeue_count, 1);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(auth, a_uid_unknown_on_the_node_fails_the_job_clearly, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user carol = make_user(), root = {"root", 0, 0};
  ok_as(&c, &root, (const char *[]){"node", "drain", "w1", NULL});
  uint64_t id = submit_as(&c, &carol, "true");
  it_user_del(carol.name);
  ok_as(&c, &root, (const char *[]){"node", "resume", "w1", NULL});
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(FAILED), 30000);
  cr_assert(r, "the job did not fail (logs in %s)", c.dir);
  char want[128];
  snprintf(want, sizeof want, "uid %u (%s) is unknown on node w1", (unsigned)carol.uid, carol.name);
  cr_expect(strstr(r->job->reason, want), "reason: %s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(auth, the_state_directory_is_private, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char path[400];
  struct stat st;
  snprintf(path, sizeof path, "%s/traind", c.dir);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0700);
  snprintf(path, sizeof path, "%s/traind/traind.db", c.dir);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0600);
  it_cluster_stop(&c);
}

Test(auth, auth_none_runs_a_single_user_cluster, .timeout = 60) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 4, &(it_options){.auth_none = true});
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, "id -u", "dev", &id, NULL, 0), 0);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(COMPLETED), 30000);
  cr_assert(r, "logs in %s", c.dir);
  cr_expect_str_eq(r->job->spec->user, "root");
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(auth, traind_refuses_to_start_without_munged, .timeout = 60) {
  char dir[256], state[300], log[300];
  /* Removed at exit like a cluster's directory, kept if the test fails. */
  cr_assert(it_cleanup_mkdtemp(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", dir, sizeof dir));
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(log, sizeof log, "%s/traind.stderr", dir);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT, 0600);
    dup2(fd, 2);
    execl(getenv("TY_TRAIND"), "traind", "--listen", "127.0.0.1:0", "--metrics-listen",
          "127.0.0.1:0", "--state-dir", state, "--munge-socket", "/nonexistent/munge.socket",
          (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "traind status %d", status);
  char buf[2048] = "";
  FILE *f = fopen(log, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  cr_expect(strstr(buf, "/nonexistent/munge.socket") && strstr(buf, "--auth none"), "%s", buf);
  it_cleanup_dir_done(dir);
}

/* auth.workers = key: the workers and traind prove themselves with the
 * cluster key; a worker with another key is refused and never registers. */
Test(auth, workers_with_the_cluster_key, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 4, &(it_options){.key_workers = true});
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, "echo keyed", "keyed", &id, NULL, 0), 0);
  wait_state(cl, id, ST(COMPLETED));
  /* Another key for w2. */
  snprintf(c.cluster_key, sizeof c.cluster_key, "%s/other.key", c.dir);
  int fd = open(c.cluster_key, O_WRONLY | O_CREAT, 0600);
  cr_assert(fd >= 0 && write(fd, "0123456789abcdef0123456789abcdef!", 33) == 33);
  close(fd);
  c.n_workers = 2;
  it_worker_start(&c, 1, 4);
  it_sleep_ms(1500);
  cr_expect_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 1);
  cr_expect_geq(it_metric(c.metrics_port, "trainyard_rpc_refusals_total{method=\"RegisterNode\","
                                          "reason=\"bad_credential\"} "),
                1);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A client that cannot reach munged sends no credential: refused, and it
 * says why it had none. */
Test(auth, a_client_without_munged_is_told_why, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char *saved = strdup(getenv("TRAINYARD_MUNGE_SOCKET"));
  setenv("TRAINYARD_MUNGE_SOCKET", "/nonexistent/munge.socket", 1);
  user root = {"root", 0, 0};
  char *err = NULL;
  int rc = ctl_as(&c, &root, NULL, &err, (const char *[]){"ls", NULL});
  setenv("TRAINYARD_MUNGE_SOCKET", saved, 1);
  free(saved);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(err, "no credential") &&
                strstr(err, "the request carried no MUNGE credential: munged at "
                            "/nonexistent/munge.socket"),
            "%s", err);
  free(err);
  it_cluster_stop(&c);
}

/* SubmitJob as u with request id `rid`, the Job naming `claimed` as its user
 * (the client's word, which traind ignores): the answer's status. */
static int submit_rid_as(const it_cluster *c, const user *u, const char *name, const char *claimed,
                         const char *rid, char *msg, size_t msg_len) {
  char *argv[] = {"true"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.argv = argv, cmd.n_argv = 1;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = (char *)name, job.user = (char *)claimed;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job, req.request_id = (char *)rid;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_reserve(&b, trainyard__submit_job_request__get_packed_size(&req)), 0);
  b.len = trainyard__submit_job_request__pack(&req, b.data);
  int rc = it_call_as(c, u->uid, u->gid, TY_M_SUBMIT_JOB, &b, msg, msg_len);
  ty_buf_close(&b);
  return rc;
}

/* How many jobs named `name` the controller holds, each owned by `owner`. */
static int jobs_named(const it_cluster *c, const char *name, const char *owner) {
  ty_rpc_client *cl = it_client(c);
  Trainyard__ListJobsResponse *resp = it_list_jobs(cl);
  int count = 0;
  for (size_t i = 0; i < resp->n_jobs; i++) {
    const Trainyard__Job *s = resp->jobs[i]->spec;
    if (!s || strcmp(s->name, name) != 0) continue;
    count++;
    cr_expect_str_eq(s->user, owner, "job %s belongs to %s", name, s->user);
  }
  trainyard__list_jobs_response__free_unpacked(resp, NULL);
  ty_rpc_client_close(cl);
  return count;
}

/* A SubmitJob request id is unique per uid the credential proved: another
 * user sending the same id, even naming its owner as the job's user, gets a
 * job of its own rather than the owner's job (and so never learns its id);
 * each user's retry still finds their own job, also after a restart. */
Test(auth, a_request_id_finds_only_its_submitters_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.node_timeout_ms = 60000});
  user alice = make_user(), bob = make_user();
  char msg[TY_ERR_LEN];
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(submit_rid_as(&c, &alice, "alices", alice.name, "shared-id", msg, sizeof msg), 0,
                 "%s", msg);
    cr_assert_eq(submit_rid_as(&c, &bob, "bobs", alice.name, "shared-id", msg, sizeof msg), 0, "%s",
                 msg);
    cr_expect_eq(jobs_named(&c, "alices", alice.name), 1, "round %d", round);
    cr_expect_eq(jobs_named(&c, "bobs", bob.name), 1, "round %d", round);
    /* The ids come back from the store: the second round runs on them. */
    it_kill9(&c.traind);
    it_controller_start(&c);
  }
  it_cluster_stop(&c);
}

/* ---- issue 15's requests under issue 12's rules ------------------------------------------ */

/* trainctl ARGS as u must succeed; its stdout (heap). */
static char *out_as(const it_cluster *c, const user *u, const char *const *args) {
  char *out = NULL, *err = NULL;
  int rc = ctl_as(c, u, &out, &err, args);
  cr_assert_eq(rc, 0, "trainctl %s as %s: %s", args[0], u->name, err);
  free(err);
  return out;
}

/* Arrays, elements, time limits, requeue and history: only the owner or an
 * operator changes a job or an array (each refused for another user), only
 * operators raise a time limit, and a user's history holds only their own
 * jobs (Slurm's PrivateData=jobs): another user's is refused, every user's
 * is an operator's. */
Test(auth, arrays_requeue_time_and_history_follow_owner_and_operator_rules, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  user alice = make_user(), bob = make_user(), root = {"root", 0, 0};
  ty_rpc_client *cl = it_client(&c);
  uint64_t done = submit_as(&c, &alice, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done");
  wait_state(cl, done, ST(COMPLETED));
  ok_as(&c, &root, (const char *[]){"node", "drain", "w1", NULL}); /* keep the array pending */
  char *out = out_as(&c, &alice,
                     (const char *[]){"submit", "--command", "-q", "--array", "0-3", "--time", "1h",
                                      "--", "sleep", "300", NULL});
  char arr[24], elem[32], sdone[24];
  snprintf(arr, sizeof arr, "%lu", strtoul(out, NULL, 10));
  snprintf(elem, sizeof elem, "%s_2", arr);
  snprintf(sdone, sizeof sdone, "%lu", (unsigned long)done);
  free(out);
  const char *deny = "permission denied";
  refused(&c, &bob, deny, (const char *[]){"job", "hold", arr, NULL});
  refused(&c, &bob, deny, (const char *[]){"job", "hold", elem, NULL});
  refused(&c, &bob, deny, (const char *[]){"job", "release", elem, NULL});
  refused(&c, &bob, deny, (const char *[]){"job", "update", arr, "--time", "10m", NULL});
  refused(&c, &bob, deny, (const char *[]){"job", "requeue", sdone, NULL});
  refused(&c, &bob, deny, (const char *[]){"cancel", arr, NULL});
  refused(&c, &bob, deny, (const char *[]){"cancel", elem, NULL});
  refused(&c, &bob, "only operators see other users' jobs",
          (const char *[]){"history", "--user", alice.name, NULL});
  /* Listings (served from the controller's cache when nothing changed) are
   * alice's abridged view to her (argv and env are show's), bob's redacted
   * one, whoever asked first; show has her command for her alone. */
  for (int round = 0; round < 2; round++) {
    out = out_as(&c, &bob, (const char *[]){"ls", "--json", NULL});
    cr_expect(strstr(out, "\"redacted\":true") && !strstr(out, "\"argv\":[\"sleep\""), "bob: %s",
              out);
    free(out);
    out = out_as(&c, &alice, (const char *[]){"ls", "--json", NULL});
    cr_expect(strstr(out, "\"abridged\":true") && !strstr(out, "\"redacted\":true"), "alice: %s",
              out);
    free(out);
  }
  out = out_as(&c, &alice, (const char *[]){"show", elem, "--json", NULL});
  cr_expect(strstr(out, "\"argv\":[\"sleep\"") && !strstr(out, "\"abridged\":true"), "alice: %s",
            out);
  free(out);
  /* Bob's own history is empty: alice's jobs are not in it. */
  out = out_as(&c, &bob, (const char *[]){"history", "--noheader", "--format", "id", NULL});
  cr_expect_str_eq(out, "", "bob's history: %s", out);
  free(out);
  /* The owner lowers a limit, an operator raises it; hold and release. */
  ok_as(&c, &alice, (const char *[]){"job", "update", arr, "--time", "10m", NULL});
  refused(&c, &alice, "only operators raise a time limit",
          (const char *[]){"job", "update", elem, "--time", "20m", NULL});
  ok_as(&c, &root, (const char *[]){"job", "update", elem, "--time", "20m", NULL});
  ok_as(&c, &alice, (const char *[]){"job", "hold", elem, NULL});
  ok_as(&c, &root, (const char *[]){"job", "release", elem, NULL});
  /* History: hers to her, anyone's to an operator; measured by the task's
   * cgroup when the worker has them. */
  const char *acct =
      it_worker_has_cgroups(&c) ? "\"accounting\":\"measured\"" : "\"accounting\":\"allocated\"";
  out = out_as(&c, &alice, (const char *[]){"history", "--job", sdone, "--json", NULL});
  cr_expect(strstr(out, acct), "expected %s in: %s", acct, out);
  free(out);
  out = out_as(
      &c, &root,
      (const char *[]){"history", "--user", alice.name, "--noheader", "--format", "id", NULL});
  cr_expect(strstr(out, sdone) && strstr(out, arr), "root's view of alice: %s", out);
  free(out);
  /* The owner requeues and cancels an element, then the array. */
  ok_as(&c, &alice, (const char *[]){"job", "requeue", sdone, NULL});
  ok_as(&c, &alice, (const char *[]){"cancel", elem, NULL});
  ok_as(&c, &alice, (const char *[]){"cancel", arr, NULL});
  cr_expect_geq(
      it_metric(c.metrics_port,
                "trainyard_rpc_refusals_total{method=\"UpdateJob\",reason=\"not_owner\"} "),
      5);
  cr_expect_geq(
      it_metric(c.metrics_port,
                "trainyard_rpc_refusals_total{method=\"CancelJob\",reason=\"not_owner\"} "),
      2);
  cr_expect_geq(it_metric(c.metrics_port, "trainyard_rpc_refusals_total{method=\"GetHistory\","
                                          "reason=\"not_operator\"} "),
                1);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* As Slurm's JobHeldAdmin: a hold an operator put on a job is released
 * only by an operator, not by its owner (who once released it), and says
 * so in show, ls and why, across a controller restart; the owner's own hold
 * (JobHeldUser) is the owner's to release. */
Test(auth, an_operators_hold_is_released_only_by_an_operator, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user(), root = {"root", 0, 0};
  char *out = out_as(&c, &alice,
                     (const char *[]){"submit", "--command", "-q", "--begin", "now+1h", "--",
                                      "sleep", "100", NULL});
  char id[24];
  snprintf(id, sizeof id, "%lu", strtoul(out, NULL, 10));
  free(out);
  ok_as(&c, &root, (const char *[]){"job", "hold", id, NULL});
  const char *refusal = "held by an operator (root); only an operator may release it";
  for (int restarted = 0; restarted < 2; restarted++) {
    refused(&c, &alice, refusal, (const char *[]){"job", "release", id, NULL});
    out = out_as(&c, &alice, (const char *[]){"show", id, NULL});
    cr_expect(strstr(out, "JobHeldAdmin: held by an operator (root)"), "show: %s", out);
    free(out);
    out = out_as(&c, &alice, (const char *[]){"ls", "--noheader", "-o", "id,reason", NULL});
    cr_expect(strstr(out, "JobHeldAdmin"), "ls: %s", out);
    free(out);
    out = out_as(&c, &alice, (const char *[]){"why", id, NULL});
    cr_expect(strstr(out, "JobHeldAdmin"), "why: %s", out);
    free(out);
    if (!restarted) it_controller_restart(&c, false);
  }
  ok_as(&c, &root, (const char *[]){"job", "release", id, NULL});
  ok_as(&c, &alice, (const char *[]){"job", "hold", id, NULL});
  out = out_as(&c, &alice, (const char *[]){"show", id, NULL});
  cr_expect(strstr(out, "JobHeldUser") && !strstr(out, "JobHeldAdmin"), "show: %s", out);
  free(out);
  ok_as(&c, &alice, (const char *[]){"job", "release", id, NULL});
  cr_expect_geq(
      it_metric(c.metrics_port,
                "trainyard_rpc_refusals_total{method=\"UpdateJob\",reason=\"not_operator\"} "),
      1);
  it_cluster_stop(&c);
}
