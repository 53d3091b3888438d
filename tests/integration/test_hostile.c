/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hostile local user against a cluster set up as docs/security.md says
 * (traind and the worker as root, MUNGE): attacks that once worked, each
 * with the fix it checks. Real daemons, real users (it_user_add, removed
 * when the cluster stops or at exit), real trainrun ranks.
 *
 *   - a graph job's checkpoint path in a directory only root may write:
 *     the worker once made the missing directory as root and gave it to
 *     the user (anywhere: /root/.ssh); now trainrun makes it as the user;
 *   - a checkpoint directory another user planted in a world-writable
 *     directory is refused, not written;
 *   - other users' graph jobs once failed on job directories planted in
 *     traind's CHECKPOINT_DIR (then 1777): it is 0711 now, and the root
 *     worker moves aside whatever is found in a job's place and makes the
 *     job's directory for its user;
 *   - a FIFO in place of the checkpoint's state file once hung the worker's
 *     loop (its progress reader opened it as root, blocking): the worker
 *     still cancels the job and runs the next one;
 *   - SIGSTOP sent by the task's user to the worker's child between its
 *     setuid and its exec once held the worker's loop for ever (CLONE_VFORK):
 *     the launch now fails after a bound and the node keeps running jobs;
 *   - a checkpoint path naming root's state file once had the root worker
 *     report the step in it: it now reads only files the job's user owns;
 *   - a task once inherited every descriptor the root worker had without
 *     close-on-exec (here the test runner's shared memory and a pipe): it
 *     now gets its stdio only;
 *   - one user's arrays once filled the controller's memory (100000 jobs a
 *     request, no cap): a user's jobs that have not ended are capped
 *     (traind --max-user-jobs) and the others still submit;
 *   - a batch script's whole text was its runner's argument, which every
 *     local user reads in /proc/PID/cmdline (ps) while the job runs: the
 *     worker now hands it over in the runner's environment;
 *   - one user's WatchJob streams once took all the controller's watches,
 *     refusing every other user's rlaunch: one user holds at most 256;
 *   - (held) run_as and user filled in by a client are replaced by the
 *     credential's user; a batch script's -o/-e (append or create) into
 *     root's files or directories are refused, as the job opens them as
 *     its user.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/methods.h"
#include "tests/integration/ranks.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x
#define STEPS 10

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

/* A directory DIR/name made by root with mode and owner. */
static void make_dir(const it_cluster *c, const char *name, mode_t mode, uid_t uid, gid_t gid,
                     char *out, size_t n) {
  snprintf(out, n, "%s/%s", c->dir, name);
  cr_assert_eq(mkdir(out, 0700), 0, "mkdir %s: %s", out, strerror(errno));
  cr_assert_eq(chown(out, uid, gid), 0);
  cr_assert_eq(chmod(out, mode), 0);
}

/* Submits the MLP for STEPS steps checkpointing to ckpt, as u, through
 * `trainctl submit FILE`: the job's id. */
static uint64_t submit_graph_as(const it_cluster *c, const user *u, const char *ckpt) {
  char file[400];
  snprintf(file, sizeof file, "%s/job-%s-%d.pb", c->dir, u->name, (int)getpid());
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 0, ckpt, &len);
  rk_write_job(file, "hostile", 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(cfg);
  cr_assert_eq(chmod(file, 0644), 0);
  char *out = NULL, *err = NULL;
  const char *argv[] = {getenv("TY_TRAINCTL"), "submit", "--quiet", file, NULL};
  int rc = it_run_as(c, u->uid, u->gid, "/tmp", &out, &err, argv);
  cr_assert_eq(rc, 0, "submit as %s: %s", u->name, err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  unlink(file);
  cr_assert_gt(id, 0u);
  return id;
}

/* Waits for the job's end: its final state, its reason in why. */
static int wait_end(const it_cluster *c, uint64_t id, char *why, size_t n) {
  ty_rpc_client *cl = it_client(c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c->dir);
  int state = r->job->state;
  snprintf(why, n, "%s", r->job->reason ? r->job->reason : "");
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  return state;
}

/* Rank 0's log of job id on the first worker (heap; "" when absent). */
static char *rank0_log(const it_cluster *c, uint64_t id) {
  char path[400];
  snprintf(path, sizeof path, "%s/w1/jobs/%llu/rank0.log", c->dir, (unsigned long long)id);
  char *t = it_read_text(path);
  return t ? t : strdup("");
}

Test(hostile, a_checkpoint_directory_is_made_with_its_users_rights_only, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user();
  char root_only[320], ckpt[400], sub[360];
  make_dir(&c, "root-only", 0755, 0, 0, root_only, sizeof root_only);
  snprintf(sub, sizeof sub, "%s/sub", root_only);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt.onnx", sub);
  uint64_t id = submit_graph_as(&c, &alice, ckpt);
  char why[512];
  int state = wait_end(&c, id, why, sizeof why);
  struct stat st;
  int made = stat(sub, &st);
  cr_expect_neq(made, 0, "%s was made for %s (uid %u): owner %u", sub, alice.name,
                (unsigned)alice.uid, made == 0 ? (unsigned)st.st_uid : 0u);
  cr_expect_eq(state, ST(FAILED), "job %llu ended %d: %s", (unsigned long long)id, state, why);
  char *log = rank0_log(&c, id);
  cr_expect(strstr(log, "cannot create the directory") && strstr(log, "Permission denied"),
            "rank 0's log: %s", log);
  free(log);
  it_cluster_stop(&c);
}

Test(hostile, a_checkpoint_directory_planted_by_another_user_is_refused, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user(), bob = make_user();
  char shared[320], planted[360], ckpt[400];
  make_dir(&c, "shared", 01777, 0, 0, shared, sizeof shared);
  snprintf(planted, sizeof planted, "%s/ck", shared);
  cr_assert_eq(mkdir(planted, 0777), 0);
  cr_assert_eq(chown(planted, bob.uid, bob.gid), 0);
  cr_assert_eq(chmod(planted, 0777), 0);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt.onnx", planted);
  uint64_t id = submit_graph_as(&c, &alice, ckpt);
  char why[512];
  int state = wait_end(&c, id, why, sizeof why);
  cr_expect_eq(state, ST(FAILED), "job %llu ended %d: %s", (unsigned long long)id, state, why);
  char *log = rank0_log(&c, id), want[64];
  snprintf(want, sizeof want, "belongs to uid %u", (unsigned)bob.uid);
  cr_expect(strstr(log, want), "rank 0's log lacks \"%s\": %s", want, log);
  free(log);
  cr_expect_neq(access(ckpt, F_OK), 0, "%s was written into %s's directory", ckpt, bob.name);
  it_cluster_stop(&c);
}

/* The id the next job gets: one more than a job submitted now. */
static uint64_t next_job_id(const it_cluster *c) {
  ty_rpc_client *cl = it_client(c);
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "probe", &id, err, sizeof err), 0, "%s", err);
  ty_rpc_client_close(cl);
  char why[512];
  cr_assert_eq(wait_end(c, id, why, sizeof why), ST(COMPLETED), "%s", why);
  return id + 1;
}

/* Whether CHECKPOINT_DIR holds JOB's moved-aside entry, owned by uid. */
static bool stale_entry(const char *root, uint64_t job, uid_t uid) {
  char prefix[64], path[600];
  snprintf(prefix, sizeof prefix, ".stale-%llu-", (unsigned long long)job);
  DIR *d = opendir(root);
  bool found = false;
  for (struct dirent *e; d && !found && (e = readdir(d));) {
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", root, e->d_name);
    found =
        strncmp(e->d_name, prefix, strlen(prefix)) == 0 && stat(path, &st) == 0 && st.st_uid == uid;
  }
  if (d) closedir(d);
  return found;
}

Test(hostile, a_job_directory_planted_in_the_checkpoint_dir_does_not_fail_the_job, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user(), bob = make_user();
  char root[320], dir[360], planted[400], ckpt[420];
  snprintf(root, sizeof root, "%s/checkpoints", c.dir);
  struct stat st;
  cr_assert_eq(stat(root, &st), 0, "%s: %s", root, strerror(errno));
  cr_expect_eq(st.st_mode & 07777, 0711, "%s is %o", root, (unsigned)(st.st_mode & 07777));
  snprintf(planted, sizeof planted, "%s/by-bob", root);
  const char *mk[] = {"/bin/mkdir", planted, NULL};
  cr_expect_neq(it_run_as(&c, bob.uid, bob.gid, "/tmp", NULL, NULL, mk), 0, "%s could make %s",
                bob.name, planted);
  /* One planted when CHECKPOINT_DIR was still 1777, in the next job's place. */
  uint64_t id = next_job_id(&c);
  snprintf(dir, sizeof dir, "%s/%llu", root, (unsigned long long)id);
  cr_assert_eq(mkdir(dir, 0777), 0);
  cr_assert_eq(chown(dir, bob.uid, bob.gid), 0);
  cr_assert_eq(chmod(dir, 0777), 0);
  cr_assert_eq(submit_graph_as(&c, &alice, "mlp.ckpt.onnx"), id);
  char why[512];
  int state = wait_end(&c, id, why, sizeof why);
  cr_expect_eq(state, ST(COMPLETED), "job %llu ended %d: %s (logs in %s)", (unsigned long long)id,
               state, why, c.dir);
  cr_assert_eq(lstat(dir, &st), 0, "%s: %s", dir, strerror(errno));
  cr_expect(S_ISDIR(st.st_mode) && st.st_uid == alice.uid && (st.st_mode & 07777) == 0700,
            "%s: mode %o, owner %u (%s is %u)", dir, (unsigned)st.st_mode, (unsigned)st.st_uid,
            alice.name, (unsigned)alice.uid);
  snprintf(ckpt, sizeof ckpt, "%s/mlp.ckpt.onnx", dir);
  cr_expect_eq(access(ckpt, F_OK), 0, "%s was not written", ckpt);
  cr_expect(stale_entry(root, id, bob.uid), "%s's directory was not moved aside in %s", bob.name,
            root);
  it_cluster_stop(&c);
}

/* A store restored from a backup gives ids again: CHECKPOINT_DIR/ID may
 * hold a lost job's checkpoint, of the same user. A new job of that id
 * must train from scratch, not resume it ("nothing to train"): the
 * directory's stamp names another job, so it is moved aside. Here the
 * lost job's directory is a finished job's, copied to the next id with
 * the stamp an earlier job of that id would have left. */
Test(hostile, a_new_job_does_not_resume_an_earlier_jobs_checkpoint_of_its_id, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user();
  char root[320], cmd[1200], why[512], stamp[440];
  snprintf(root, sizeof root, "%s/checkpoints", c.dir);
  uint64_t first = submit_graph_as(&c, &alice, "mlp.ckpt.onnx");
  cr_assert_eq(wait_end(&c, first, why, sizeof why), ST(COMPLETED), "%s", why);
  uint64_t id = next_job_id(&c);
  snprintf(cmd, sizeof cmd,
           "cp -a %s/%llu %s/%llu && printf 'job %llu submitted 1000\\n' > %s/%llu/.trainyard-job",
           root, (unsigned long long)first, root, (unsigned long long)id, (unsigned long long)id,
           root, (unsigned long long)id);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  cr_assert_eq(submit_graph_as(&c, &alice, "mlp.ckpt.onnx"), id);
  int state = wait_end(&c, id, why, sizeof why);
  cr_expect_eq(state, ST(COMPLETED), "job %llu ended %d: %s", (unsigned long long)id, state, why);
  char *log = rank0_log(&c, id);
  cr_expect_null(strstr(log, "nothing to train"), "job %llu resumed job %llu's checkpoint: %s",
                 (unsigned long long)id, (unsigned long long)first, log);
  free(log);
  cr_expect(stale_entry(root, id, alice.uid), "the earlier directory was not moved aside in %s",
            root);
  snprintf(stamp, sizeof stamp, "%s/%llu/.trainyard-job", root, (unsigned long long)id);
  char *text = it_read_text(stamp), want[64];
  snprintf(want, sizeof want, "job %llu submitted ", (unsigned long long)id);
  cr_expect(text && strstr(text, want) && !strstr(text, "submitted 1000\n"), "%s: %s", stamp,
            text ? text : "(none)");
  free(text);
  it_cluster_stop(&c);
}

Test(hostile, a_fifo_for_the_checkpoint_state_does_not_hang_the_worker, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user();
  char own[320], fifo[420], ckpt[400];
  make_dir(&c, "alice", 0700, alice.uid, alice.gid, own, sizeof own);
  snprintf(ckpt, sizeof ckpt, "%s/c.onnx", own);
  snprintf(fifo, sizeof fifo, "%s.state", ckpt);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(chown(fifo, alice.uid, alice.gid), 0);
  uint64_t id = submit_graph_as(&c, &alice, ckpt);
  /* trainrun refuses a state that is no regular file at once (it once
   * waited on it in open()); the worker, which reads the state at each
   * heartbeat (200 ms here), must not wait on it either: whether the job
   * failed by itself or is cancelled after a few, the next one runs. */
  ty_rpc_client *cl = it_client(&c);
  it_sleep_ms(2000);
  char sid[32], why[512];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  (void)it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}); /* if it still runs */
  int end = wait_end(&c, id, why, sizeof why);
  cr_expect(end == ST(CANCELLED) || (end == ST(FAILED) && strstr(why, "not a regular file")),
            "job %s ended %d: %s", sid, end, why);
  uint64_t next = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "after", &next, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, next, 0, 60000);
  cr_assert(r, "the job after the FIFO did not end: the worker hangs (logs in %s)", c.dir);
  cr_expect_eq(r->job->state, ST(COMPLETED), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* As u: SIGSTOP to every process of u's but this one (kill(-1) skips the
 * caller), in a tight loop, until killed (or its parent dies, or 120 s). */
static pid_t start_stopper(const user *u) {
  pid_t parent = getpid(), pid = fork();
  cr_assert_geq(pid, 0);
  if (pid != 0) return pid;
  if (setgroups(0, NULL) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0) _exit(120);
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
  if (getppid() != parent) _exit(0);
  for (time_t end = time(NULL) + 120; time(NULL) < end;)
    kill(-1, SIGSTOP);
  _exit(0);
}

static void stop_stopper(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* PATH=ENTRIES:/usr/bin:/bin with many entries that do not exist: the
 * child tries each before it finds `true`, a window of milliseconds
 * between its setuid and its exec. */
static char *long_path(void) {
  enum { ENTRIES = 30000 };
  char *v = malloc(5 + ENTRIES * 4 + 32);
  size_t n = (size_t)sprintf(v, "PATH=");
  for (int i = 0; i < ENTRIES; i++)
    n += (size_t)sprintf(v + n, "/nx:");
  sprintf(v + n, "/usr/bin:/bin");
  return v;
}

/* One try: alice's held job released while her stopper runs; whether the
 * stopper caught its start (the launch then failed, naming the bound). */
static bool stopped_launch(const it_cluster *c, const user *alice) {
  char *path = long_path(), *out = NULL, *err = NULL;
  const char *argv[] = {getenv("TY_TRAINCTL"),
                        "submit",
                        "--command",
                        "-q",
                        "-H",
                        "--export",
                        path,
                        "--",
                        "true",
                        NULL};
  int rc = it_run_as(c, alice->uid, alice->gid, "/tmp", &out, &err, argv);
  free(path);
  cr_assert_eq(rc, 0, "submit as %s: %s", alice->name, err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  char sid[32], why[512];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  pid_t stopper = start_stopper(alice);
  cr_assert_eq(it_trainctl(c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  ty_rpc_client *cl = it_client(c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 30000);
  if (r) trainyard__get_job_response__free_unpacked(r, NULL);
  stop_stopper(stopper);
  if (!r) /* it started, and the stopper stopped the task itself */
    cr_assert_eq(it_trainctl(c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  wait_end(c, id, why, sizeof why);
  char *log = rank0_log(c, id);
  bool caught = strstr(log, "did not reach its exec") != NULL;
  free(log);
  return caught;
}

Test(hostile, a_task_stopped_before_its_exec_does_not_hold_the_worker, .timeout = 600) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.node_timeout_ms = 60000});
  user alice = make_user();
  bool caught = false;
  for (int i = 0; i < 4 && !caught; i++)
    caught = stopped_launch(&c, &alice);
  /* The worker still runs jobs. */
  ty_rpc_client *cl = it_client(&c);
  uint64_t next = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "after", &next, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, next, 0, 60000);
  cr_assert(r, "the job after the stopped start did not end: the worker hangs (logs in %s)", c.dir);
  cr_expect_eq(r->job->state, ST(COMPLETED), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
  if (!caught) cr_skip_test("the stopper never caught a start between setuid and exec here");
}

/* A SubmitJob whose run_as and user the client filled with root's: the
 * task still runs as the credential's user, and the job is theirs. */
Test(hostile, run_as_and_user_sent_by_a_client_are_replaced, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  user alice = make_user();
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"/usr/bin/id", "-u"};
  cmd.n_argv = 2, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__UnixUser root = TRAINYARD__UNIX_USER__INIT;
  root.uid = 0, root.gid = 0;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "as-root", job.user = "root", job.run_as = &root;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_reserve(&b, trainyard__submit_job_request__get_packed_size(&req)), 0);
  b.len = trainyard__submit_job_request__pack(&req, b.data);
  char msg[TY_ERR_LEN] = "";
  cr_assert_eq(it_call_as(&c, alice.uid, alice.gid, TY_M_SUBMIT_JOB, &b, msg, sizeof msg), 0, "%s",
               msg);
  ty_buf_close(&b);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__ListJobsResponse *l = it_list_jobs(cl);
  cr_assert_eq(l->n_jobs, 1u);
  uint64_t id = l->jobs[0]->id;
  trainyard__list_jobs_response__free_unpacked(l, NULL);
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), ST(COMPLETED));
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r && r->job->spec && r->job->spec->run_as);
  cr_expect_eq(r->job->spec->run_as->uid, alice.uid);
  cr_expect_str_eq(r->job->spec->user, alice.name);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  char *log = rank0_log(&c, id), want[32];
  snprintf(want, sizeof want, "%u\n", (unsigned)alice.uid);
  cr_expect_str_eq(log, want, "the task ran as: %s", log);
  free(log);
  it_cluster_stop(&c);
}

/* A task inherits no descriptor of the root worker's (its listening
 * sockets, other tasks' logs or pipes, pidfds), only its stdio. */
Test(hostile, a_task_inherits_only_its_stdio, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user();
  /* A second task running beside it, so the worker holds its fds too. */
  const char *sleeper[] = {
      getenv("TY_TRAINCTL"), "submit", "--command", "-q", "--", "sleep", "30", NULL};
  const char *lister[] = {getenv("TY_TRAINCTL"), "submit", "--command", "-q", "--", "sh", "-c",
                          "ls /proc/$$/fd",      NULL};
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_run_as(&c, alice.uid, alice.gid, "/tmp", &out, &err, sleeper), 0, "%s", err);
  uint64_t sleeping = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_eq(it_run_as(&c, alice.uid, alice.gid, "/tmp", &out, &err, lister), 0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), ST(COMPLETED));
  ty_rpc_client_close(cl);
  char *log = rank0_log(&c, id);
  cr_expect_str_eq(log, "0\n1\n2\n", "the task's descriptors: %s", log);
  free(log);
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)sleeping);
  it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL});
  it_cluster_stop(&c);
}

/* A batch script's -o/-e are opened by the job as its user: a root-owned
 * file (appended to) and a file in a directory only root may write are
 * refused, nothing is created or changed there, and the job fails. */
Test(hostile, output_paths_are_opened_with_the_users_rights, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  user alice = make_user();
  char root_only[320], owned[360], made[360], script[360];
  make_dir(&c, "root-only", 0755, 0, 0, root_only, sizeof root_only);
  snprintf(owned, sizeof owned, "%s/root.out", root_only);
  snprintf(made, sizeof made, "%s/new-%%j.out", root_only);
  rk_write_file(owned, (const uint8_t *)"root's\n", 7);
  cr_assert_eq(chmod(owned, 0644), 0);
  snprintf(script, sizeof script, "%s/job.sh", c.dir);
  rk_write_file(script, (const uint8_t *)"#!/bin/sh\necho hi\n", 18);
  cr_assert_eq(chmod(script, 0644), 0);
  const char *append[] = {getenv("TY_TRAINCTL"), "submit", "-q", "-o", owned,
                          "--open-mode=append",  script,   NULL};
  const char *create[] = {getenv("TY_TRAINCTL"), "submit", "-q", "-o", made, script, NULL};
  const char *const *tries[] = {append, create};
  ty_rpc_client *cl = it_client(&c);
  for (int i = 0; i < 2; i++) {
    char *out = NULL, *err = NULL;
    cr_assert_eq(it_run_as(&c, alice.uid, alice.gid, "/tmp", &out, &err, tries[i]), 0, "%s", err);
    uint64_t id = strtoull(out, NULL, 10);
    free(out), free(err);
    cr_expect_eq(it_wait_state(cl, id, 0, 60000), ST(FAILED), "try %d", i);
  }
  ty_rpc_client_close(cl);
  char *text = it_read_text(owned);
  cr_expect_str_eq(text, "root's\n");
  free(text);
  snprintf(made, sizeof made, "%s/new-2.out", root_only);
  cr_expect_neq(access(made, F_OK), 0, "%s was created", made);
  it_cluster_stop(&c);
}

/* The worker reads a graph job's checkpoint state as root: a path naming a
 * file the job's user does not own (here root's, in a directory only root
 * may read) reports nothing of it. */
Test(hostile, the_worker_reads_no_checkpoint_state_its_user_does_not_own, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  user alice = make_user();
  char root_only[320], state[380], ckpt[360];
  make_dir(&c, "root-only", 0700, 0, 0, root_only, sizeof root_only);
  snprintf(ckpt, sizeof ckpt, "%s/x.onnx", root_only);
  snprintf(state, sizeof state, "%s.state", ckpt);
  uint8_t header[16] = {'T', 'Y', 'T', 'S', 1, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
  rk_write_file(state, header, sizeof header);
  uint64_t id = submit_graph_as(&c, &alice, ckpt);
  char why[512];
  wait_end(&c, id, why, sizeof why);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r);
  cr_expect(!r->progress || r->progress->checkpoint_step == 0,
            "root's state file was read for %s's job: checkpoint step %llu", alice.name,
            r->progress ? (unsigned long long)r->progress->checkpoint_step : 0ull);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* alice's `trainctl submit --command -q ARGS... -- true`: its exit status,
 * the job's id in *id (0 when refused), the error text in err. */
static int submit_true_as(const it_cluster *c, const user *u, const char *array, uint64_t *id,
                          char *err, size_t n) {
  const char *argv[] = {
      getenv("TY_TRAINCTL"), "submit", "--command", "-q", "--array", array, "--", "true", NULL};
  if (!array) argv[4] = "--", argv[5] = "true", argv[6] = NULL;
  char *out = NULL, *e = NULL;
  int rc = it_run_as(c, u->uid, u->gid, "/tmp", &out, &e, argv);
  *id = rc == 0 ? strtoull(out, NULL, 10) : 0;
  snprintf(err, n, "%s", e ? e : "");
  free(out), free(e);
  return rc;
}

/* Jobs not ended are capped per user (traind --max-user-jobs): one user's
 * arrays once grew the controller's memory without bound (100000 elements
 * in under a second, about 180 MB each time), which every user shares.
 * Past the cap a submit, or an array larger than what is left, is refused
 * by name; another user still submits; a job that ended frees its place. */
Test(hostile, a_users_jobs_that_have_not_ended_are_capped, .timeout = 120) {
  it_cluster c;
  const char *const cap[] = {"--max-user-jobs", "4", NULL};
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = cap});
  user alice = make_user(), bob = make_user();
  char err[2048];
  uint64_t id, first;
  cr_assert_eq(submit_true_as(&c, &alice, "0-2", &first, err, sizeof err), 0, "%s", err);
  cr_assert_neq(submit_true_as(&c, &alice, "0-1", &id, err, sizeof err), 0);
  cr_expect(strstr(err, "has 3 jobs that have not ended, and this submit of 2 more would pass the "
                        "limit of 4 per user (traind --max-user-jobs)"),
            "%s", err);
  cr_assert_eq(submit_true_as(&c, &alice, NULL, &id, err, sizeof err), 0, "%s", err);
  cr_assert_neq(submit_true_as(&c, &alice, NULL, &id, err, sizeof err), 0);
  cr_expect(strstr(err, "has 4 jobs that have not ended"), "%s", err);
  cr_assert_eq(submit_true_as(&c, &bob, NULL, &id, err, sizeof err), 0, "bob: %s", err);
  /* A cancelled job counts no more once the cancel answered, not only
   * once the sweep (a tick or two later) moves it out of the live set:
   * 4 live, 3 of them cancelled, so 3 more fit at once. */
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)first);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  int rc = submit_true_as(&c, &alice, "0-2", &id, err, sizeof err);
  cr_expect_eq(rc, 0, "alice right after a cancel: %s", err);
  it_cluster_stop(&c);
}

/* The processes of uid whose command line (NULs as spaces) holds `what`;
 * *runners counts those that are a batch script's runner. */
static int cmdlines_with(uid_t uid, const char *what, int *runners) {
  int hits = 0;
  *runners = 0;
  DIR *d = opendir("/proc");
  cr_assert(d);
  for (struct dirent *e; (e = readdir(d));) {
    char path[300], buf[1 << 17];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    if (e->d_name[0] < '1' || e->d_name[0] > '9' || stat(path, &st) != 0 || st.st_uid != uid)
      continue;
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    for (size_t i = 0; i < n; i++)
      buf[i] = buf[i] ? buf[i] : ' ';
    buf[n] = '\0';
    hits += strstr(buf, what) != NULL;
    *runners += strstr(buf, "trainyard-batch") != NULL;
  }
  closedir(d);
  return hits;
}

/* A batch script's text is not in any of its processes' arguments, which
 * every local user may read (/proc/PID/cmdline, ps), while it runs: the
 * worker hands it to trainctl's runner in TRAINYARD_BATCH_SCRIPT (only its
 * user and root read a process's environment), which the script does not
 * inherit. */
Test(hostile, a_batch_scripts_text_is_not_in_its_arguments, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  user alice = make_user();
  char script[400];
  snprintf(script, sizeof script, "%s/secret.sh", c.dir);
  FILE *f = fopen(script, "w");
  cr_assert(f);
  fputs("#!/bin/sh\n# DB_PASSWORD=walk-secret-5c1d\n"
        "echo \"started ${TRAINYARD_BATCH_SCRIPT-unset}\"\nexec sleep 60\n",
        f);
  fclose(f);
  cr_assert_eq(chmod(script, 0644), 0);
  const char *argv[] = {getenv("TY_TRAINCTL"), "submit", "--quiet", script, NULL};
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_run_as(&c, alice.uid, alice.gid, "/tmp", &out, &err, argv), 0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  char *log = NULL;
  for (int i = 0; i < 600 && !strstr(log ? log : "", "\n"); i++) {
    free(log);
    log = rank0_log(&c, id);
    if (!strchr(log, '\n')) it_sleep_ms(50);
  }
  cr_expect_str_eq(log, "started unset\n", "the script's output: %s", log);
  free(log);
  int runners;
  cr_expect_eq(cmdlines_with(alice.uid, "walk-secret-5c1d", &runners), 0,
               "the script's text is in a command line of the job's");
  cr_expect_eq(runners, 1, "the runner was not found among alice's processes");
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL});
  it_cluster_stop(&c);
}

/* ---- watches ------------------------------------------------------------------------------ */

typedef struct watch_tally {
  int admitted, refused;
  char why[TY_ERR_LEN];
} watch_tally;

static void on_watch_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                            void *ud) {
  (void)c;
  watch_tally *t = ud;
  if (!final && msg && msg->kind == TY_RPC_STREAM && status == 0) {
    t->admitted++;
  } else if (final && status != 0) {
    t->refused++;
    snprintf(t->why, sizeof t->why, "%s", msg && msg->message ? msg->message : "");
  }
}

/* n WatchJob streams of job id on cl, each admitted (its first event) or
 * refused before this returns; the admitted ones stay open. */
static void watch_many(ty_rpc_client *cl, uint64_t id, int n, watch_tally *t) {
  Trainyard__WatchJobRequest req = TRAINYARD__WATCH_JOB_REQUEST__INIT;
  req.job_id = id;
  uint8_t buf[64];
  size_t len = trainyard__watch_job_request__pack(&req, buf);
  int want = t->admitted + t->refused + n;
  for (int i = 0; i < n; i++)
    cr_assert_eq(ty_rpc_client_start(cl, TY_M_WATCH_JOB, buf, len, 60000, on_watch_answer, t, NULL),
                 0);
  while (t->admitted + t->refused < want)
    cr_assert_neq(uv_run(ty_rpc_client_loop(cl), UV_RUN_ONCE), 0, "the watches stopped short");
}

/* One user holds at most 256 job watches: one user's watches (of any job,
 * 128 a connection) once took the controller's 4096, and every other
 * user's rlaunch and submit --wait were refused while they stayed. */
Test(hostile, one_user_cannot_take_every_job_watch, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2); /* the watched job's CPU and alice's */
  user alice = make_user();
  ty_rpc_client *cl = it_client(&c), *more[3];
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, "sleep 60", "watched", &id, NULL, 0), 0);
  watch_tally t = {0};
  for (int i = 0; i < 3; i++) {
    more[i] = it_client(&c);
    watch_many(more[i], id, 100, &t);
  }
  cr_expect_eq(t.admitted, 256, "watches one user holds (%d refused)", t.refused);
  cr_expect(strstr(t.why, "already holds 256 job watches, as many as one user may"), "%s", t.why);
  /* submit --wait watches its job as rlaunch does. */
  const char *argv[] = {
      getenv("TY_TRAINCTL"), "submit", "--command", "-W", "-q", "--", "true", NULL};
  char *out = NULL, *err = NULL;
  cr_expect_eq(it_run_as(&c, alice.uid, alice.gid, "/tmp", &out, &err, argv), 0,
               "alice's submit --wait beside them: %s", err);
  free(out), free(err);
  for (int i = 0; i < 3; i++)
    ty_rpc_client_close(more[i]);
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL});
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
