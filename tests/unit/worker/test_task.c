/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task supervision (worker/task.c) with real processes on a real libuv loop:
 * log capture, exit codes, signals, kill with grace, time limits, and the
 * launch errors the controller turns into "launch failed on NODE: ...".
 */
#include <criterion/criterion.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/worker.h"

typedef struct fixture {
  uv_loop_t loop;
  ty_tasks *tasks;
  char dir[64];
  int ended;
  ty_task_report last;
} fixture;

static void on_end(ty_tasks *t, const ty_task_report *r, void *ud) {
  (void)t;
  fixture *f = ud;
  f->ended++;
  f->last = *r;
  f->last.reason = ""; /* borrowed: do not keep the pointer */
}

static void setup(fixture *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ty-worker-test-XXXXXX");
  cr_assert_not_null(mkdtemp(f->dir));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(ty_tasks_create(&f->loop, f->dir, "w1", on_end, f, &f->tasks), 0);
  ty_tasks_set_isolation(f->tasks, getenv("TY_EXEC_HELPER"), NULL);
}

static void teardown(fixture *f) {
  ty_tasks_kill_all_now(f->tasks);
  ty_tasks_destroy(f->tasks);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  cr_expect_eq(system(cmd), 0);
}

static void run_until_ended(fixture *f, int n) {
  while (f->ended < n) uv_run(&f->loop, UV_RUN_ONCE);
}

static ty_task_spec shell(uint64_t job, const char *script) {
  static const char *argv[3];
  argv[0] = "sh";
  argv[1] = "-c";
  argv[2] = script;
  ty_task_spec s = {.job_id = job, .rank = 0, .world_size = 1, .local_world_size = 1,
                    .master_addr = "127.0.0.1", .master_port = 29501, .argv = argv,
                    .argc = 3, .cpus = 1, .has_uid = true, .uid = getuid(), .gid = getgid()};
  return s;
}

static char *read_log(fixture *f, uint64_t job, uint32_t rank) {
  char path[512];
  cr_assert_eq(ty_tasks_log_path(f->tasks, job, rank, path, sizeof path), 0);
  FILE *fp = fopen(path, "r");
  cr_assert_not_null(fp, "no log at %s", path);
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

/* Waits (without a deadline: Criterion's timeout bounds it) until the task
 * printed `word`, i.e. reached the point of its script the test cares about. */
static void wait_for_output(fixture *f, uint64_t job, const char *word) {
  for (;;) {
    char *log = read_log(f, job, 0);
    bool found = strstr(log, word) != NULL;
    free(log);
    if (found) return;
    usleep(10000);
  }
}

Test(task, captures_stdout_stderr_and_exit_code) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(1, "echo out; echo err >&2; read x; echo \"stdin:$x\"; exit 3");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  cr_expect_eq(ty_tasks_running(f.tasks), 1);
  cr_expect(ty_tasks_is_running(f.tasks, 1, 0));
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_EXITED);
  cr_expect_eq(f.last.exit_code, 3);
  cr_expect_eq(f.last.term_signal, 0);
  cr_expect_not(f.last.timed_out);
  char *log = read_log(&f, 1, 0);
  cr_expect_str_eq(log, "out\nerr\nstdin:\n");
  free(log);
  cr_expect_eq(ty_tasks_running(f.tasks), 0);
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_expect_eq(st.started, 1);
  cr_expect_eq(st.exit_failure, 1);
  teardown(&f);
}

Test(task, environment_reaches_the_process) {
  fixture f;
  setup(&f);
  static const uint32_t gpus[] = {1, 3};
  ty_task_spec s = shell(2, "echo \"$RANK $WORLD_SIZE $MASTER_PORT $TRAINYARD_JOB_ID "
                            "$TRAINYARD_NODE $CUDA_VISIBLE_DEVICES $FOO\"");
  static const char *const env[] = {"FOO=bar"};
  s.env = env;
  s.n_env = 1;
  s.gpu_indices = gpus;
  s.n_gpus = 2;
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  cr_expect_eq(ty_tasks_gpus_used(f.tasks), 2);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.exit_code, 0);
  char *log = read_log(&f, 2, 0);
  cr_expect_str_eq(log, "0 1 29501 2 w1 1,3 bar\n");
  free(log);
  teardown(&f);
}

Test(task, reports_terminating_signal) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(3, "kill -KILL $$");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  teardown(&f);
}

Test(task, kill_sends_sigterm_to_the_group) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(4, "sleep 60");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  cr_expect_eq(ty_tasks_kill(f.tasks, 4, 0, 30), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGTERM);
  cr_expect_not(f.last.timed_out);
  teardown(&f);
}

Test(task, kill_escalates_to_sigkill_after_grace) {
  fixture f;
  setup(&f);
  /* The shell and its sleep ignore SIGTERM; only SIGKILL ends them. */
  ty_task_spec s = shell(5, "trap '' TERM; echo ready; sleep 60");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  wait_for_output(&f, 5, "ready");
  cr_expect_eq(ty_tasks_kill(f.tasks, 5, 0, 1), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  teardown(&f);
}

Test(task, kill_with_explicit_signal_and_unknown_job) {
  fixture f;
  setup(&f);
  /* exec: a dash waiting for a child defers SIGINT until the child ends. */
  ty_task_spec s = shell(6, "exec sleep 60");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  cr_expect_eq(ty_tasks_kill(f.tasks, 999, 0, 0), 0, "unknown job is idempotent");
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, -1, 0), TY_EINVAL);
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, SIGINT, 0), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.term_signal, SIGINT);
  teardown(&f);
}

Test(task, time_limit_kills_and_reports_timed_out) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(7, "sleep 60");
  s.time_limit_s = 1;
  s.kill_grace_s = 1;
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect(f.last.timed_out);
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_expect_eq(st.exit_timed_out, 1);
  teardown(&f);
}

Test(task, missing_cwd_is_refused_with_a_clear_message) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(8, "true");
  s.cwd = "/no/such/dir";
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ENOTFOUND);
  cr_expect_str_eq(err, "cwd /no/such/dir does not exist on node w1");
  cr_expect_eq(ty_tasks_running(f.tasks), 0);
  teardown(&f);
}

Test(task, cwd_that_is_a_file_is_refused) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(8, "true");
  s.cwd = "/etc/passwd";
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "not a directory") != NULL, "%s", err);
  teardown(&f);
}

Test(task, cwd_is_used) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(9, "pwd");
  s.cwd = "/";
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  run_until_ended(&f, 1);
  char *log = read_log(&f, 9, 0);
  cr_expect_str_eq(log, "/\n");
  free(log);
  teardown(&f);
}

Test(task, unknown_program_is_refused_and_noted_in_the_log) {
  fixture f;
  setup(&f);
  static const char *const argv[] = {"no-such-program-trainyard"};
  ty_task_spec s = {.job_id = 10, .argv = argv, .argc = 1, .has_uid = true, .uid = getuid(),
                    .gid = getgid()};
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), UV_ENOENT);
  cr_expect_str_eq(err, "argv[0] \"no-such-program-trainyard\" not found on node w1");
  char *log = read_log(&f, 10, 0);
  cr_expect(strstr(log, "not found") != NULL, "log: %s", log);
  free(log);
  cr_expect_eq(ty_tasks_get(f.tasks, 10, 0, &f.last), TY_ENOTFOUND);
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_expect_eq(st.launch_failures, 1);
  teardown(&f);
}

Test(task, empty_argv_is_refused) {
  fixture f;
  setup(&f);
  ty_task_spec s = {.job_id = 11};
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect_str_eq(err, "command.argv: must not be empty");
  teardown(&f);
}

Test(task, bad_env_entry_is_refused) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(12, "true");
  static const char *const env[] = {"JUSTANAME"};
  s.env = env;
  s.n_env = 1;
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "command.env[0]") != NULL, "%s", err);
  teardown(&f);
}

Test(task, same_rank_twice_is_refused_while_running) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(13, "sleep 60");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EEXIST);
  cr_expect(strstr(err, "already runs") != NULL, "%s", err);
  teardown(&f);
}

static void count_report(const ty_task_report *r, void *ud) {
  (void)r;
  (*(int *)ud)++;
}

Test(task, ended_reports_are_kept_until_acknowledged) {
  fixture f;
  setup(&f);
  ty_task_spec s = shell(14, "exit 0");
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  run_until_ended(&f, 1);
  int n = 0;
  ty_tasks_foreach(f.tasks, count_report, &n);
  cr_expect_eq(n, 1);
  ty_task_report r;
  cr_expect_eq(ty_tasks_get(f.tasks, 14, 0, &r), 0);
  cr_expect_eq(r.state, TY_TASK_EXITED);
  ty_tasks_ack(f.tasks, 14, 0);
  n = 0;
  ty_tasks_foreach(f.tasks, count_report, &n);
  cr_expect_eq(n, 0);
  cr_expect_eq(ty_tasks_get(f.tasks, 14, 0, &r), TY_ENOTFOUND);
  teardown(&f);
}

Test(task, destroy_accepts_null) { ty_tasks_destroy(NULL); }

Test(task, launch_is_refused_once_stopping) {
  fixture f;
  setup(&f);
  ty_tasks_kill_all(f.tasks);
  ty_task_spec s = shell(15, "true");
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ESTATE);
  cr_expect_str_eq(err, "node w1 is shutting down");
  teardown(&f);
}

/* ---- running as the submitter (root only) ------------------------------------------ */

Test(task, runs_as_its_submitter_with_a_private_log) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  setup(&f);
  ty_task_spec s = shell(20, "echo $(id -u) $USER $HOME; id -G");
  s.uid = pw->pw_uid, s.gid = pw->pw_gid;
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0, "%s", err);
  run_until_ended(&f, 1);
  char *log = read_log(&f, 20, 0), want[256];
  snprintf(want, sizeof want, "%u nobody %s\n", (unsigned)pw->pw_uid, pw->pw_dir);
  cr_expect(strncmp(log, want, strlen(want)) == 0, "log: %s", log);
  free(log);
  char path[512];
  struct stat st;
  cr_assert_eq(ty_tasks_log_path(f.tasks, 20, 0, path, sizeof path), 0);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_uid, pw->pw_uid);
  cr_expect_eq(st.st_mode & 0777, 0600);
  teardown(&f);
}

Test(task, a_submitter_unknown_here_or_missing_is_refused) {
  if (geteuid() != 0) cr_skip_test("needs root");
  fixture f;
  setup(&f);
  ty_task_spec s = shell(21, "true");
  s.uid = 3999999999u, s.user = "ghost";
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ENOTFOUND);
  cr_expect_str_eq(err, "uid 3999999999 (ghost) is unknown on node w1: no passwd entry, so the "
                        "job cannot run as its submitter here");
  s = shell(22, "true");
  s.has_uid = false;
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EPERM);
  cr_expect(strstr(err, "carries no submitter uid"), "%s", err);
  teardown(&f);
}

Test(task, a_cwd_the_submitter_cannot_enter_is_refused) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  setup(&f);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/private", f.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  ty_task_spec s = shell(23, "true");
  s.uid = pw->pw_uid, s.gid = pw->pw_gid, s.cwd = dir;
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EPERM);
  cr_expect(strstr(err, "is not accessible for nobody on node w1"), "%s", err);
  teardown(&f);
}
