/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task supervision (worker/task.c) with real processes on a real libuv loop:
 * log capture, exit codes, signals, kill with grace, time limits, and the
 * launch errors the controller turns into "launch failed on NODE: ...".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/unit/worker/task_fixture.h"
#include "lib/token/token.h"
#include "worker/worker.h"

Test(task, captures_stdout_stderr_and_exit_code) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(1, "echo out; echo err >&2; read x; echo \"stdin:$x\"; exit 3");
  fx_launch(&f, &s);
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
  fx_teardown(&f);
}

Test(task, environment_reaches_the_process) {
  fixture f;
  fx_setup(&f);
  static const uint32_t gpus[] = {1, 3};
  ty_task_spec s = shell(2, "echo \"$RANK $WORLD_SIZE $MASTER_PORT $TRAINYARD_JOB_ID "
                            "$TRAINYARD_NODE $CUDA_VISIBLE_DEVICES $FOO\"");
  static const char *const env[] = {"FOO=bar"};
  s.env = env;
  s.n_env = 1;
  s.gpu_indices = gpus;
  s.n_gpus = 2;
  fx_launch(&f, &s);
  cr_expect_eq(ty_tasks_gpus_used(f.tasks), 2);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.exit_code, 0);
  char *log = read_log(&f, 2, 0);
  cr_expect_str_eq(log, "0 1 29501 2 w1 1,3 bar\n");
  free(log);
  fx_teardown(&f);
}

/* The report says when the task ended, on this host's clock (RunningTask
 * and TaskUpdate's ended_ms): after its launch, not after the report, and
 * the same when asked again (a report resent after a reconnect). */
Test(task, report_carries_when_the_task_ended) {
  fixture f;
  fx_setup(&f);
  int64_t before = ty_now_ms();
  ty_task_spec s = shell(9, "true");
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  int64_t after = ty_now_ms();
  cr_expect(f.last.ended_ms >= before && f.last.ended_ms <= after, "ended_ms %lld",
            (long long)f.last.ended_ms);
  ty_task_report r;
  cr_assert_eq(ty_tasks_get(f.tasks, 9, 0, &r), 0);
  cr_expect_eq(r.ended_ms, f.last.ended_ms);
  fx_teardown(&f);
}

Test(task, reports_terminating_signal) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(3, "kill -KILL $$");
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  fx_teardown(&f);
}

/* A batch script's task (trainctl's runner: /bin/sh -c RUNNER
 * trainyard-batch ...) learns where trainyard-exec is, to learn its
 * script's exact end through it; no other task's environment changes. */
Test(task, a_batch_runner_alone_gets_trainyard_exec) {
  fixture f;
  fx_setup(&f);
  static const char *const batch[] = {"/bin/sh", "-c", "echo \"[$TRAINYARD_EXEC]\"",
                                      "trainyard-batch"};
  ty_task_spec s = shell(1, "echo \"[$TRAINYARD_EXEC]\"");
  s.argv = batch;
  s.argc = 4;
  fx_launch(&f, &s);
  ty_task_spec plain = shell(2, "echo \"[$TRAINYARD_EXEC]\"");
  fx_launch(&f, &plain);
  run_until_ended(&f, 2);
  char want[1100], *log = read_log(&f, 1, 0);
  snprintf(want, sizeof want, "[%s]\n", getenv("TY_EXEC_HELPER"));
  cr_expect_str_eq(log, want);
  free(log);
  log = read_log(&f, 2, 0);
  cr_expect_str_eq(log, "[]\n", "a plain task got TRAINYARD_EXEC");
  free(log);
  fx_teardown(&f);
}

Test(task, kill_sends_sigterm_to_the_group) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(4, "sleep 60");
  fx_launch(&f, &s);
  cr_expect_eq(ty_tasks_kill(f.tasks, 4, 0, 30), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGTERM);
  cr_expect_not(f.last.timed_out);
  fx_teardown(&f);
}

Test(task, kill_escalates_to_sigkill_after_grace) {
  fixture f;
  fx_setup(&f);
  /* The shell and its sleep ignore SIGTERM; only SIGKILL ends them. */
  ty_task_spec s = shell(5, "trap '' TERM; echo ready; sleep 60");
  fx_launch(&f, &s);
  wait_for_output(&f, 5, "ready");
  cr_expect_eq(ty_tasks_kill(f.tasks, 5, 0, 1), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  fx_teardown(&f);
}

/* A KillTask again during the grace (a controller restarted then kills
 * what it finds of a job it no longer runs) sends no second SIGTERM, and
 * the first deadline stands: SIGKILL after its 1 s, not the new 30. */
Test(task, a_second_kill_in_the_grace_does_not_signal_again) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(6, "trap 'echo term' TERM; echo ready; while :; do sleep 0.1; done");
  fx_launch(&f, &s);
  wait_for_output(&f, 6, "ready");
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, 0, 1), 0);
  wait_for_output(&f, 6, "term");
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, 0, 30), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  char *log = read_log(&f, 6, 0);
  const char *first = strstr(log, "term");
  cr_expect(first && !strstr(first + 4, "term"), "not one SIGTERM:\n%s", log);
  free(log);
  fx_teardown(&f);
}

/* Fencing: SIGKILL at once (a TERM trap does not delay it), the report
 * marked fenced, counted, and a second fence finds nothing left to kill. */
Test(task, fence_kills_at_once_and_marks_the_report) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(7, "trap '' TERM; echo ready; sleep 60");
  fx_launch(&f, &s);
  wait_for_output(&f, 7, "ready");
  cr_expect_eq(ty_tasks_fence(f.tasks, "fenced: test"), 1);
  cr_expect_eq(ty_tasks_fence(f.tasks, "fenced: again"), 0, "already fenced");
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  cr_expect(f.last.fenced);
  ty_task_report r;
  cr_assert_eq(ty_tasks_get(f.tasks, 7, 0, &r), 0);
  cr_expect_str_eq(r.reason, "fenced: test");
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_expect_eq(st.fenced, 1);
  fx_teardown(&f);
}

/* The worker's stop (ty_tasks_kill_all): the running task's report says
 * the stop ended it (its job is requeued, not failed), one that ended
 * before says nothing of it, and a launch after it is refused with
 * TY_ESTATE naming the node shutting down. */
Test(task, kill_all_marks_the_reports_worker_stopped) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(8, "exit 3");
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect(!f.last.worker_stopped, "ended by itself");
  s = shell(9, "echo ready; sleep 60");
  fx_launch(&f, &s);
  wait_for_output(&f, 9, "ready");
  ty_tasks_kill_all(f.tasks);
  run_until_ended(&f, 2);
  cr_expect_eq(f.last.job_id, 9u);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect(f.last.worker_stopped);
  ty_task_report r;
  cr_assert_eq(ty_tasks_get(f.tasks, 8, 0, &r), 0);
  cr_expect(!r.worker_stopped);
  s = shell(10, "true");
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ESTATE);
  cr_expect(strstr(err, "shutting down"), "%s", err);
  fx_teardown(&f);
}

Test(task, kill_with_explicit_signal_and_unknown_job) {
  fixture f;
  fx_setup(&f);
  /* exec: a dash waiting for a child defers SIGINT until the child ends. */
  ty_task_spec s = shell(6, "exec sleep 60");
  fx_launch(&f, &s);
  cr_expect_eq(ty_tasks_kill(f.tasks, 999, 0, 0), 0, "unknown job is idempotent");
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, -1, 0), TY_EINVAL);
  cr_expect_eq(ty_tasks_kill(f.tasks, 6, SIGINT, 0), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.term_signal, SIGINT);
  fx_teardown(&f);
}

Test(task, time_limit_kills_and_reports_timed_out) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(7, "sleep 60");
  s.time_limit_s = 1;
  s.kill_grace_s = 1;
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect(f.last.timed_out);
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_expect_eq(st.exit_timed_out, 1);
  fx_teardown(&f);
}

/* job update --time on a running job (SetTaskLimit): the limit is
 * re-armed from the task's start; lifted, a task outlives its old one;
 * lowered below what it ran, it ends now as timed out. */
Test(task, a_new_time_limit_is_counted_from_the_start) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(18, "sleep 2; exit 5");
  s.time_limit_s = 1;
  fx_launch(&f, &s);
  cr_expect_eq(ty_tasks_set_limit(f.tasks, 999, 1), 0, "unknown job is fine");
  cr_expect_eq(ty_tasks_set_limit(f.tasks, 18, 0), 0);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.exit_code, 5, "no limit any more: it ran to its end");
  cr_expect_not(f.last.timed_out);
  ty_task_spec t = shell(19, "sleep 60");
  t.time_limit_s = 600;
  t.kill_grace_s = 1;
  fx_launch(&f, &t);
  cr_expect_eq(ty_tasks_set_limit(f.tasks, 19, 1), 0);
  run_until_ended(&f, 2);
  cr_expect_eq(f.last.state, TY_TASK_SIGNALED);
  cr_expect(f.last.timed_out);
  fx_teardown(&f);
}

/* The --signal warning reaches the task and is reported (as a RUNNING
 * report, which the controller records in the job's history). */
Test(task, warning_signal_is_delivered_and_reported) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(17, "trap 'echo warned; exit 0' USR1; sleep 60 & wait");
  s.time_limit_s = 3;
  s.warn_signal = SIGUSR1;
  s.warn_before_s = 2;
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect_eq(f.warned, SIGUSR1);
  cr_expect_eq(f.last.exit_code, 0);
  char *log = read_log(&f, 17, 0);
  cr_expect_str_eq(log, "warned\n");
  free(log);
  fx_teardown(&f);
}

Test(task, missing_cwd_is_refused_with_a_clear_message) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(8, "true");
  s.cwd = "/no/such/dir";
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ENOTFOUND);
  cr_expect_str_eq(err, "cwd /no/such/dir does not exist on node w1");
  cr_expect_eq(ty_tasks_running(f.tasks), 0);
  fx_teardown(&f);
}

Test(task, cwd_that_is_a_file_is_refused) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(8, "true");
  s.cwd = "/etc/passwd";
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "not a directory") != NULL, "%s", err);
  fx_teardown(&f);
}

Test(task, cwd_is_used) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(9, "pwd");
  s.cwd = "/";
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  char *log = read_log(&f, 9, 0);
  cr_expect_str_eq(log, "/\n");
  free(log);
  fx_teardown(&f);
}

Test(task, unknown_program_is_refused_and_noted_in_the_log) {
  fixture f;
  fx_setup(&f);
  static const char *const argv[] = {"no-such-program-trainyard"};
  ty_task_spec s = {
      .job_id = 10, .argv = argv, .argc = 1, .has_uid = true, .uid = getuid(), .gid = getgid()};
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
  fx_teardown(&f);
}

/* Whose fault a failed launch is travels to the controller (node_fault:
 * it drains the node and requeues the job): an unknown program or cwd is
 * the job's; a job directory that cannot be made is the node's. */
Test(task, a_failed_launch_says_whether_the_node_or_the_job_is_at_fault) {
  fixture f;
  fx_setup(&f);
  static const char *const argv[] = {"no-such-program-trainyard"};
  ty_task_spec s = {
      .job_id = 12, .argv = argv, .argc = 1, .has_uid = true, .uid = getuid(), .gid = getgid()};
  char err[256] = "", jobs[128];
  bool node_fault = true;
  cr_expect_eq(ty_tasks_launch_classified(f.tasks, &s, &node_fault, err, sizeof err), UV_ENOENT);
  cr_expect_not(node_fault, "an unknown program is the job's fault: %s", err);
  ty_task_spec cwd = shell(13, "true");
  cwd.cwd = "/no-such-dir-trainyard";
  node_fault = true;
  cr_expect_neq(ty_tasks_launch_classified(f.tasks, &cwd, &node_fault, err, sizeof err), 0);
  cr_expect_not(node_fault, "a missing cwd is the job's fault: %s", err);
  snprintf(jobs, sizeof jobs, "%s/jobs", f.dir);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s && touch %s", jobs, jobs);
  cr_assert_eq(system(cmd), 0);
  ty_task_spec ok = shell(14, "true");
  cr_expect_neq(ty_tasks_launch_classified(f.tasks, &ok, &node_fault, err, sizeof err), 0);
  cr_expect(node_fault, "a job directory that cannot be made is the node's fault: %s", err);
  fx_teardown(&f);
}

Test(task, empty_argv_is_refused) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = {.job_id = 11};
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect_str_eq(err, "command.argv: must not be empty");
  fx_teardown(&f);
}

Test(task, bad_env_entry_is_refused) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(12, "true");
  static const char *const env[] = {"JUSTANAME"};
  s.env = env;
  s.n_env = 1;
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "command.env[0]") != NULL, "%s", err);
  fx_teardown(&f);
}

Test(task, same_rank_twice_is_refused_while_running) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(13, "sleep 60");
  char err[256] = "";
  fx_launch(&f, &s);
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EEXIST);
  cr_expect(strstr(err, "already runs") != NULL, "%s", err);
  fx_teardown(&f);
}

static void count_report(const ty_task_report *r, void *ud) {
  (void)r;
  (*(int *)ud)++;
}

Test(task, ended_reports_are_kept_until_acknowledged) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(14, "exit 0");
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  int n = 0;
  ty_tasks_foreach(f.tasks, count_report, &n);
  cr_expect_eq(n, 1);
  ty_task_report r;
  cr_expect_eq(ty_tasks_get(f.tasks, 14, 0, &r), 0);
  cr_expect_eq(r.state, TY_TASK_EXITED);
  ty_tasks_ack(f.tasks, 14, 0, r.ended_ms + 1); /* another end of the rank: this one stays */
  n = 0;
  ty_tasks_foreach(f.tasks, count_report, &n);
  cr_expect_eq(n, 1);
  ty_tasks_ack(f.tasks, 14, 0, r.ended_ms);
  n = 0;
  ty_tasks_foreach(f.tasks, count_report, &n);
  cr_expect_eq(n, 0);
  cr_expect_eq(ty_tasks_get(f.tasks, 14, 0, &r), TY_ENOTFOUND);
  fx_teardown(&f);
}

Test(task, destroy_accepts_null) {
  ty_tasks_destroy(NULL);
}

Test(task, launch_is_refused_once_stopping) {
  fixture f;
  fx_setup(&f);
  ty_tasks_kill_all(f.tasks);
  ty_task_spec s = shell(15, "true");
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_ESTATE);
  cr_expect_str_eq(err, "node w1 is shutting down");
  fx_teardown(&f);
}

/* ---- running as the submitter (root only) ------------------------------------------ */

Test(task, runs_as_its_submitter_with_a_private_log) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(20, "echo $(id -u) $USER $HOME; id -G");
  s.uid = pw->pw_uid, s.gid = pw->pw_gid;
  fx_launch(&f, &s);
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
  fx_teardown(&f);
}

/* The job's token key outlives its task (ReadLog checks tokens with it); a
 * root worker keeps it as a trusted attribute of the job directory, which
 * no task user can read, instead of a file. */
Test(task, the_job_key_is_kept_for_reads_after_the_task) {
  static const uint8_t key[TY_TOKEN_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                                12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(21, "true");
  s.attach_key = key, s.attach_key_len = sizeof key;
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  uint8_t got[TY_TOKEN_KEY_LEN] = {0};
  cr_assert_eq(ty_tasks_job_key(f.tasks, 21, got, sizeof got), 0);
  cr_expect_eq(memcmp(got, key, sizeof key), 0);
  cr_expect_eq(ty_tasks_job_key(f.tasks, 22, got, sizeof got), TY_ENOTFOUND);
  char path[512];
  snprintf(path, sizeof path, "%s/jobs/21/token.key", f.dir);
  struct stat st;
  bool in_file = stat(path, &st) == 0;
  if (geteuid() == 0 && !in_file) {
    snprintf(path, sizeof path, "%s/jobs/21", f.dir);
    cr_expect_eq(getxattr(path, "trusted.trainyard.token_key", got, sizeof got),
                 (ssize_t)sizeof got);
  } else {
    cr_expect(in_file, "the key is neither an attribute nor a file");
    cr_expect_eq(st.st_mode & 0777, 0600);
  }
  fx_teardown(&f);
}

Test(task, a_submitter_unknown_here_or_missing_is_refused) {
  if (geteuid() != 0) cr_skip_test("needs root");
  fixture f;
  fx_setup(&f);
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
  fx_teardown(&f);
}

Test(task, a_cwd_the_submitter_cannot_enter_is_refused) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  fx_setup(&f);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/private", f.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  ty_task_spec s = shell(23, "true");
  s.uid = pw->pw_uid, s.gid = pw->pw_gid, s.cwd = dir;
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), TY_EPERM);
  cr_expect(strstr(err, "is not accessible for nobody on node w1"), "%s", err);
  fx_teardown(&f);
}

/* ---- starts without the helper (worker/direct.c) ---- */

Test(task, a_failed_start_is_never_reported) {
  fixture f;
  fx_setup(&f);
  static const char *const argv[] = {"no-such-program-trainyard"};
  ty_task_spec s = {
      .job_id = 41, .argv = argv, .argc = 1, .has_uid = true, .uid = getuid(), .gid = getgid()};
  char err[256] = "";
  cr_expect_eq(ty_tasks_launch(f.tasks, &s, err, sizeof err), UV_ENOENT);
  cr_expect_eq(ty_tasks_running(f.tasks), 0);
  /* The child that could not exec is reaped and nothing is reported. */
  for (int i = 0; i < 50; i++)
    uv_run(&f.loop, UV_RUN_NOWAIT), usleep(2000);
  cr_expect_eq(f.ended, 0);
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child was left unreaped");
  fx_teardown(&f);
}

Test(task, a_burst_of_starts_all_run_and_all_ends_are_reported) {
  fixture f;
  fx_setup(&f);
  enum { N = 16 };
  for (int i = 0; i < N; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", i);
    ty_task_spec s = shell(100 + (uint64_t)i, cmd);
    fx_launch(&f, &s);
  }
  run_until_ended(&f, N);
  for (int i = 0; i < N; i++) {
    ty_task_report r;
    cr_assert_eq(ty_tasks_get(f.tasks, 100 + (uint64_t)i, 0, &r), 0, "task %d", i);
    cr_expect_eq(r.state, TY_TASK_EXITED, "task %d", i);
    cr_expect_eq(r.exit_code, i, "task %d", i);
  }
  ty_tasks_stats stats;
  ty_tasks_get_stats(f.tasks, &stats);
  cr_expect_eq(stats.started, N);
  cr_expect_eq(stats.exit_success, 1);
  cr_expect_eq(stats.exit_failure, N - 1);
  fx_teardown(&f);
}

/* A script without #! runs under /bin/sh, as execvp runs it; a command is
 * found in PATH of the task's environment, not the worker's. */
Test(task, commands_are_found_as_execvp_finds_them) {
  fixture f;
  fx_setup(&f);
  char bin[256], script[300];
  snprintf(bin, sizeof bin, "%s/bin", f.dir);
  cr_assert_eq(mkdir(bin, 0755), 0);
  snprintf(script, sizeof script, "%s/hello-trainyard", bin);
  FILE *fp = fopen(script, "w");
  cr_assert(fp);
  fputs("echo from a script without an interpreter line\n", fp);
  fclose(fp);
  cr_assert_eq(chmod(script, 0755), 0);
  static const char *argv[] = {"hello-trainyard"};
  char path[300];
  snprintf(path, sizeof path, "PATH=/nonexistent:%s", bin);
  const char *env[] = {path};
  ty_task_spec s = {.job_id = 50,
                    .argv = argv,
                    .argc = 1,
                    .env = env,
                    .n_env = 1,
                    .has_uid = true,
                    .uid = getuid(),
                    .gid = getgid()};
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.exit_code, 0);
  char *log = read_log(&f, 50, 0);
  cr_expect_str_eq(log, "from a script without an interpreter line\n");
  free(log);
  fx_teardown(&f);
}

/* The task's own session and default signal dispositions, whatever the
 * worker blocks or ignores. */
Test(task, a_task_starts_in_its_own_session_with_default_signals) {
  fixture f;
  fx_setup(&f);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  void (*was)(int) = signal(SIGINT, SIG_IGN);
  /* grep reads its own status, which it inherits at exec: the shell's own
   * shows every signal blocked while dash waits for a child. */
  ty_task_spec s = shell(51, "set -- $(cat /proc/$$/stat); [ \"$6\" = $$ ] && echo own session; "
                             "exec grep -E '^Sig(Blk|Ign)' /proc/self/status");
  fx_launch(&f, &s);
  signal(SIGINT, was);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  run_until_ended(&f, 1);
  char *log = read_log(&f, 51, 0);
  cr_expect(strncmp(log, "own session\n", 12) == 0, "log: %s", log);
  cr_expect(strstr(log, "SigBlk:\t0000000000000000") != NULL, "log: %s", log);
  cr_expect(strstr(log, "SigIgn:\t0000000000000000") != NULL, "log: %s", log);
  free(log);
  fx_teardown(&f);
}
