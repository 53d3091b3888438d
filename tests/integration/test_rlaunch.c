/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch integration tests, launching: exit codes, several ranks, the
 * tasks' environment, the worker's logs, waiting for a placement, WatchJob
 * and a controller restart (test_rlaunch_io.c has the bytes, signals, the
 * pty and attach). A real traind, real trainworkerd processes and the real
 * rlaunch and trainctl binaries on loopback. They check behaviour (bytes,
 * exit codes, signals, tokens), never wall-clock time; the polling bounds
 * only turn a hang into a failure.
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

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/rlaunch_run.h"

/* ---- exit codes and streams ------------------------------------------------ */

Test(rlaunch, echo_and_exit_codes, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  cr_assert_eq(rl_run(&c, "echo", NULL, (const char *[]){"--", "echo", "hello", NULL}), 0);
  char *out = rl_output(&c, "echo", "out");
  cr_assert_str_eq(out, "hello\n");
  free(out);
  cr_assert_eq(rl_run_sh(&c, "three", "exit 3"), 3);
  cr_assert_eq(rl_run_sh(&c, "sig", "kill -9 $$"), 128 + 9);
  rl_expect_in(&c, "sig", "err", "killed by signal 9");
  it_cluster_stop(&c);
}

/* As srun's SLURM_UMASK: the task's files get rlaunch's umask, not the
 * worker's 022. */
Test(rlaunch, the_task_runs_with_the_submitters_umask, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  mode_t old = umask(077);
  int rc = rl_run_sh(&c, "umask",
                     "umask; echo SLURM_UMASK=$SLURM_UMASK; f=$(mktemp -u /tmp/ty-um.XXXXXX); "
                     ": > $f; stat -c mode=%a $f; rm -f $f");
  umask(old);
  cr_assert_eq(rc, 0);
  char *out = rl_output(&c, "umask", "out");
  cr_expect(strstr(out, "0077\nSLURM_UMASK=0077\nmode=600\n"), "[%s]", out);
  free(out);
  it_cluster_stop(&c);
}

/* As Slurm's PropagateResourceLimits=ALL: the task gets rlaunch's soft
 * limits (capped at the worker's hard ones), not the worker's raised ones;
 * with --propagate=NONE the worker's. */
Test(rlaunch, the_task_gets_the_submitters_soft_limits, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_geq(old.rlim_max, 256);
  low = (struct rlimit){.rlim_cur = 256, .rlim_max = old.rlim_max};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int rc = rl_run_sh(&c, "limits", "echo nofile=$(ulimit -S -n)");
  int rc_none = rl_run(
      &c, "none", NULL,
      (const char *[]){"--propagate=NONE", "--", "sh", "-c", "echo nofile=$(ulimit -S -n)", NULL});
  setrlimit(RLIMIT_NOFILE, &old);
  cr_assert_eq(rc, 0);
  char *out = rl_output(&c, "limits", "out");
  cr_expect_str_eq(out, "nofile=256\n");
  free(out);
  /* --propagate=NONE: the worker's own (it never runs with 256). */
  cr_assert_eq(rc_none, 0);
  out = rl_output(&c, "none", "out");
  cr_expect(!strncmp(out, "nofile=", 7) && strcmp(out, "nofile=256\n"), "[%s]", out);
  free(out);
  it_cluster_stop(&c);
}

Test(rlaunch, stdout_and_stderr_stay_apart, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  const char *script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done";
  cr_assert_eq(rl_run_sh(&c, "sep", script), 0);
  char *out = rl_output(&c, "sep", "out"), *err = rl_output(&c, "sep", "err");
  cr_assert_str_eq(out, "out1\nout2\nout3\n");
  cr_assert_str_eq(err, "err1\nerr2\nerr3\n");
  free(out), free(err);
  it_cluster_stop(&c);
}

Test(rlaunch, failures_have_their_own_exit_codes, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  cr_assert_eq(rl_run(&c, "nocmd", NULL, (const char *[]){"--", "/no/such/cmd", NULL}), 127);
  rl_expect_in(&c, "nocmd", "err", "not found");
  cr_assert_eq(rl_run(&c, "toobig", NULL, (const char *[]){"--cpu", "999", "--", "true", NULL}),
               121);
  cr_assert_eq(rl_run(&c, "usage1", NULL, (const char *[]){NULL}), 125);
  cr_assert_eq(rl_run(&c, "usage2", NULL, (const char *[]){"--stdin=2", "--", "true", NULL}), 125);
  rl_expect_in(&c, "usage2", "err", "--stdin");
  cr_assert_eq(rl_run(&c, "usage3", NULL, (const char *[]){"--bogus", "--", "true", NULL}), 125);
  cr_assert_eq(rl_run(&c, "prio", NULL, (const char *[]){"--priority", "5000", "--", "true", NULL}),
               125);
  rl_expect_in(&c, "prio", "err", "--priority: 5000 is outside -1000..1000");
  /* Run from a directory that was deleted: the reason, not "Success". */
  char gone[400], errpath[400];
  snprintf(gone, sizeof gone, "%s/gone", c.dir);
  snprintf(errpath, sizeof errpath, "%s/gone.err", c.dir);
  pid_t pid = fork();
  if (pid == 0) {
    int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(e, 2);
    if (mkdir(gone, 0755) != 0 || chdir(gone) != 0 || rmdir(gone) != 0) _exit(97);
    execl(rl_bin(), "rlaunch", "--", "true", (char *)NULL);
    _exit(98);
  }
  cr_assert_eq(rl_wait(pid), 125);
  char *err = rl_slurp(errpath);
  cr_assert(strstr(err, "cannot tell the current directory (it was deleted): No such file"), "[%s]",
            err);
  free(err);
  it_cluster_stop(&c);
}

/* ---- several ranks, environment ------------------------------------------------ */

Test(rlaunch, two_nodes_two_tasks_labelled_with_rank_variables, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 4);
  const char *script =
      "echo rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE lws=$LOCAL_WORLD_SIZE "
      "master=$MASTER_ADDR:$MASTER_PORT job=$TRAINYARD_JOB_ID foo=$FOO display=${DISPLAY-unset} "
      "cwd=$(pwd)";
  const char *env[] = {"FOO=bar", "DISPLAY=:7", NULL};
  pid_t pid = rl_start(&c, "ranks", NULL,
                       (const char *[]){"--nodes", "2", "--ntasks-per-node", "2", "--label", "--",
                                        "sh", "-c", script, NULL},
                       env);
  cr_assert_eq(rl_wait(pid), 0);
  char *out = rl_output(&c, "ranks", "out");
  for (int r = 0; r < 4; r++) {
    char want[128];
    snprintf(want, sizeof want, "%d: rank=%d local=%d world=4 lws=2 master=127.0.0.1:", r, r,
             r % 2);
    cr_assert(strstr(out, want), "no [%s] in [%s]", want, out);
  }
  char cwd[400];
  snprintf(cwd, sizeof cwd, "foo=bar display=unset cwd=%s\n", c.dir);
  cr_assert(strstr(out, cwd), "environment or cwd not as expected: [%s]", out);
  /* Every line carries its label: nothing interleaved inside a line. */
  int lines = 0;
  for (char *line = out; *line; lines++) {
    cr_assert(line[0] >= '0' && line[0] <= '3' && line[1] == ':', "unlabelled line [%s]", line);
    char *nl = strchr(line, '\n');
    cr_assert(nl);
    line = nl + 1;
  }
  cr_assert_eq(lines, 4);
  free(out);
  it_cluster_stop(&c);
}

/* Issue 14: rank 1 exits 7, the controller kills rank 0; rlaunch exits 7
 * (not rank 0's 143) and prints rank 1's line, as srun reports the failed
 * task, and the job's record agrees. */
Test(rlaunch, first_failing_rank_gives_the_exit_code, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 4);
  const char *script = "if [ \"$RANK\" = 1 ]; then exit 7; fi; sleep 60";
  int code = rl_run(&c, "firstfail", NULL,
                    (const char *[]){"--nodes", "2", "--", "sh", "-c", script, NULL});
  char *err = rl_output(&c, "firstfail", "err");
  cr_assert_eq(code, 7, "exit %d, stderr [%s]", code, err);
  cr_assert(strstr(err, "rank 1 on w"), "[%s]", err);
  cr_assert(strstr(err, ": exited with code 7"), "[%s]", err);
  cr_assert(strstr(err, "rank 0 on w") && strstr(err, "after rank 1 failed"), "[%s]", err);
  free(err);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, 1, 0, 10000);
  cr_assert(r);
  cr_assert_eq((int)r->job->state, TRAINYARD__JOB_STATE__JOB_FAILED);
  cr_assert_eq(r->job->exit_code, 7);
  cr_assert_eq(r->job->term_signal, 0, "rank 0's SIGTERM is not the job's");
  cr_assert(strstr(r->job->reason, "rank 1 exited with code 7"), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Issue 14: `env -i PATH=... TERM=vt220 rlaunch -- env` shows exactly the
 * caller's variables (TERM only with --pty, and then the caller's) and the
 * per-rank ones, and the login variables of the user the task runs as:
 * nothing of the worker's environment. */
static void expect_env_names(const char *out, const char *const *want) {
  size_t lines = 0;
  for (const char *l = out; *l; lines++) {
    const char *eq = strchr(l, '=');
    cr_assert(eq, "not NAME=value: [%s]", l);
    bool known = false;
    for (size_t i = 0; want[i] && !known; i++)
      known = strlen(want[i]) == (size_t)(eq - l) && strncmp(l, want[i], (size_t)(eq - l)) == 0;
    cr_assert(known, "unexpected variable in [%s]", out);
    const char *nl = strchr(l, '\n');
    l = nl ? nl + 1 : l + strlen(l);
  }
  size_t n = 0;
  while (want[n])
    n++;
  cr_assert_eq(lines, n, "[%s]", out);
}

Test(rlaunch, tasks_get_exactly_the_documented_environment, .timeout = 120) {
  setenv("TY_WORKER_ONLY", "must-not-leak", 1); /* the workers inherit it */
  setenv("TERM", "xterm", 1);
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  const char *env[] = {"-i", "PATH=/usr/bin:/bin", "TERM=vt220", "SHLVL=3", "OLDPWD=/x", NULL};
  cr_assert_eq(rl_wait(rl_start(&c, "env", NULL, (const char *[]){"--", "env", NULL}, env)), 0);
  char *out = rl_output(&c, "env", "out");
  /* The caller's (rlaunch's own two variables included), TMPDIR (the
   * task's private directory, when the job has none), the login variables of the user the
   * task runs as, the per-rank ones. */
  const char *names[64] = {
      "PATH", "TMPDIR", "TRAINYARD_CONTROLLER", "TRAINYARD_MUNGE_SOCKET", "HOME", "USER", "LOGNAME",
      "SHELL", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
      "TRAINYARD_JOB_ID", "TRAINYARD_NODE", "CUDA_VISIBLE_DEVICES",
      /* the job, in Trainyard's and Slurm's names */
      "TRAINYARD_JOB_NAME", "TRAINYARD_QUEUE", "TRAINYARD_NODELIST", "TRAINYARD_NUM_NODES",
      "TRAINYARD_NODE_INDEX", "TRAINYARD_NODENAMES", "SLURM_JOB_ID", "SLURM_JOBID",
      "SLURM_JOB_NAME", "SLURM_JOB_PARTITION", "SLURM_JOB_USER", "SLURM_JOB_UID", "SLURM_JOB_GID",
      "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
      "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURMD_NODENAME", "SLURM_JOB_NODELIST",
      "SLURM_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_CPUS_PER_TASK",
      "SLURM_CPUS_ON_NODE", "TRAINYARD_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE", "SLURM_SUBMIT_DIR",
      "SLURM_GTIDS", "SLURM_SUBMIT_HOST", "SLURM_UMASK",
      /* the harness's workers run with --mpi-if-include lo */
      "OMPI_MCA_btl_tcp_if_include", "OMPI_MCA_oob_tcp_if_include"};
  /* Plus what the harness hands on with --task-env, the one documented way
   * (a sanitized build's options). */
  const char *handed[] = {"TRAINYARD_STEP_DELAY_MS", "TRAINYARD_COLLECTIVE_TIMEOUT_S",
                          "TRAINYARD_KERNEL_CACHE", "ASAN_OPTIONS", "UBSAN_OPTIONS"};
  size_t k = 0;
  while (names[k])
    k++;
  for (size_t i = 0; i < TY_ARRAY_LEN(handed); i++)
    if (getenv(handed[i])) names[k++] = handed[i];
  expect_env_names(out, names);
  cr_assert(strstr(out, "PATH=/usr/bin:/bin\n"), "[%s]", out);
  char tmpdir[600];
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s/tmp/trainyard-job-", c.dir);
  cr_assert(strstr(out, tmpdir), "[%s]", out);
  cr_assert(strstr(out, "OMPI_MCA_btl_tcp_if_include=lo\n"), "[%s]", out);
  free(out);
  cr_assert_eq(
      rl_wait(rl_start(&c, "envpty", NULL, (const char *[]){"--pty", "--", "env", NULL}, env)), 0);
  out = rl_output(&c, "envpty", "out");
  cr_assert(strstr(out, "TERM=vt220\r\n"), "[%s]", out);
  cr_assert_null(strstr(out, "TY_WORKER_ONLY"), "[%s]", out);
  free(out);
  it_cluster_stop(&c);
}

/* A job launched from inside another (an rlaunch, a self-resubmitting
 * script's trainctl submit) inherits that job's environment: its TMPDIR
 * (the outer task's private directory, gone once that task ended) and its
 * job variables. The inner job has its own TMPDIR, and none of the
 * outer's variables that do not apply to it (no --mem: no
 * SLURM_MEM_PER_NODE). */
Test(rlaunch, a_job_launched_from_inside_a_job_has_its_own_tmpdir_and_variables, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char inner[400], script[2048], sub_out[400];
  snprintf(inner, sizeof inner, "%s/inner.sh", c.dir);
  FILE *f = fopen(inner, "w");
  cr_assert(f);
  fputs("own=\"${TMPDIR%/*}/trainyard-job-$SLURM_JOB_ID.0\"\n"
        "[ \"$TMPDIR\" = \"$own\" ] && echo $1 own-tmp || echo $1 tmp=$TMPDIR\n"
        "mktemp >/dev/null && echo $1 mktemp-ok\n"
        "echo $1 mem=${SLURM_MEM_PER_NODE-unset}\n",
        f);
  fclose(f);
  snprintf(sub_out, sizeof sub_out, "%s/submitted.out", c.dir);
  snprintf(script, sizeof script,
           "echo outer mem=$SLURM_MEM_PER_NODE; '%s' -- sh '%s' rlaunched; "
           "'%s' submit -q --wait -o '%s' --wrap \"sh '%s' submitted\"",
           rl_bin(), inner, it_bin("TY_TRAINCTL"), sub_out, inner);
  cr_assert_eq(
      rl_run(&c, "nested", NULL, (const char *[]){"--mem", "64", "--", "sh", "-c", script, NULL}),
      0);
  char *out = rl_output(&c, "nested", "out"), *sub = it_read_text(sub_out);
  it_expect_in_order(out,
                     (const char *[]){"outer mem=64\n", "rlaunched own-tmp\n",
                                      "rlaunched mktemp-ok\n", "rlaunched mem=unset\n", NULL},
                     "the outer job and the job it rlaunched");
  cr_assert(sub, "the submitted job wrote no %s: [%s]", sub_out, out);
  it_expect_in_order(sub,
                     (const char *[]){"submitted own-tmp\n", "submitted mktemp-ok\n",
                                      "submitted mem=unset\n", NULL},
                     "the job submitted from inside a job");
  free(out), free(sub);
  it_cluster_stop(&c);
}

/* Issue 14: a worker keeps a task's log to --log-max-size (its head, a
 * marker, its tail), reports its disk use, and removes a job's logs
 * --log-retention after the job ended. */
static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(rlaunch, worker_logs_are_capped_and_removed_after_the_job, .timeout = 120) {
  const char *extra[] = {"--log-max-size", "64K", "--log-retention", "3s", NULL};
  it_cluster c;
  it_cluster_start_with(&c, 1, 4, &(it_options){.worker_args = extra});
  const char *script = "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done";
  cr_assert_eq(rl_run_sh(&c, "big", script), 0);
  char *out = rl_output(&c, "big", "out");
  cr_assert(strncmp(out, "line 0\n", 7) == 0 && strstr(out, "\nline 19999\n"),
            "rlaunch got all the output, whatever the log keeps");
  cr_assert_null(strstr(out, "trainworkerd"), "the cut marker is in the log only");
  free(out);
  char log[400];
  snprintf(log, sizeof log, "%s/w1/jobs/1/rank0.log", c.dir);
  long size = file_size(log);
  for (int i = 0; i < 500 && size > 64 * 1024; i++)
    it_sleep_ms(10), size = file_size(log);
  cr_assert(size > 0 && size <= 64 * 1024, "log of %ld bytes (cap 64K)", size);
  char *text = NULL;
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"logs", "1", NULL}), 0);
  cr_assert(strncmp(text, "line 0\n", 7) == 0 && strstr(text, " bytes of output cut here; ") &&
                strstr(text, "\nline 19999\n"),
            "%.300s", text);
  free(text);
  cr_assert_gt(it_metric(c.worker_metrics_port[0], "trainyard_worker_log_cut_bytes_total "), 0);
  cr_assert_gt(it_metric(c.worker_metrics_port[0], "trainyard_worker_log_bytes "), 0);
  /* Three seconds after the job ended, its directory goes. */
  char dir[400];
  snprintf(dir, sizeof dir, "%s/w1/jobs/1", c.dir);
  for (int i = 0; i < 1500 && access(dir, F_OK) == 0; i++)
    it_sleep_ms(10);
  cr_assert_neq(access(dir, F_OK), 0, "the job's logs were not removed");
  cr_assert_eq(it_metric(c.worker_metrics_port[0], "trainyard_worker_log_dirs_removed_total "), 1);
  it_cluster_stop(&c);
}

/* A job holding both CPUs until go exists; its time limit (10 min) gives
 * the jobs behind it a reservation with a start time. */
static pid_t start_hog(const it_cluster *c, char *go, size_t go_len) {
  char script[600];
  snprintf(go, go_len, "%s/go", c->dir);
  snprintf(script, sizeof script, "echo ready; while [ ! -e %s ]; do sleep 0.05; done", go);
  pid_t hog =
      rl_start(c, "hog", NULL,
               (const char *[]){"--cpu", "2", "-t", "10", "--", "sh", "-c", script, NULL}, NULL);
  cr_assert(rl_wait_text(c, "hog", "ready"));
  return hog;
}

Test(rlaunch, pending_job_shows_why_it_waits, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char go[400];
  /* The first job holds both CPUs; the second waits for them. */
  pid_t hog = start_hog(&c, go, sizeof go);
  pid_t waiter = rl_start(&c, "waiter", NULL,
                          (const char *[]){"--timing", "--", "echo", "placed", NULL}, NULL);
  cr_assert(rl_wait_in(&c, "waiter", "err", "pending:"), "no status line while pending");
  /* Off a terminal, the scheduler's countdown moving at each pass is no
   * new line: wait for a reservation, then for three more passes. */
  cr_assert(rl_wait_in(&c, "waiter", "err", "reserved to start in"), "no reservation");
  const char *passes = "trainyard_scheduler_pass_duration_seconds_count";
  double p0 = it_metric(c.metrics_port, passes);
  for (int i = 0; i < 600 && it_metric(c.metrics_port, passes) < p0 + 3; i++)
    it_sleep_ms(50);
  /* Ctrl-C while pending cancels it: exit 122, "ended without running". */
  pid_t quitter = rl_start(&c, "quitter", NULL, (const char *[]){"--", "true", NULL}, NULL);
  cr_assert(rl_wait_in(&c, "quitter", "err", "pending:"), "no status line while pending");
  kill(quitter, SIGINT);
  cr_assert_eq(rl_wait(quitter), 122);
  rl_expect_in(&c, "quitter", "err", "cancelled while pending (SIGINT)");
  close(open(go, O_WRONLY | O_CREAT, 0644));
  cr_assert_eq(rl_wait(hog), 0);
  cr_assert_eq(rl_wait(waiter), 0);
  char *out = rl_output(&c, "waiter", "out"), *err = rl_output(&c, "waiter", "err");
  cr_assert_str_eq(out, "placed\n");
  /* Not a terminal: plain lines, no carriage returns or escapes. */
  cr_assert(!strchr(err, '\r') && !strchr(err, '\033'), "[%s]", err);
  const char *first = strstr(err, "reserved to start in");
  cr_assert(first && !strstr(first + 1, "reserved to start in"),
            "a line per pass of the same reason: [%s]", err);
  /* The placement was pushed: nothing was asked while it waited (the
   * count is rlaunch's client's, of every request after the submit). */
  cr_assert(strstr(err, "requests to the controller while waiting for the placement: 0\n"), "[%s]",
            err);
  /* --timing: every side's stages, each measured (a number, not "-"). */
  static const char *const stages[] = {
      "client     connect",    "  traind   commit",     "  traind   pass",
      "  traind   LaunchTask", "  worker   prepare",    "  worker   spawn",
      "  worker   exit",       "client     first byte", "  traind   end"};
  for (size_t i = 0; i < sizeof stages / sizeof *stages; i++) {
    const char *at = strstr(err, stages[i]);
    cr_assert(at, "no stage \"%s\" in [%s]", stages[i], err);
    const char *nl = strchr(at, '\n');
    cr_assert(nl && strstr(at, " ms ") && strstr(at, " ms ") < nl, "unmeasured: %.*s",
              (int)(nl ? nl - at : 40), at);
  }
  free(out), free(err);
  it_cluster_stop(&c);
}

/* ---- WatchJob ---------------------------------------------------------------------------- */

typedef struct watched {
  int states[16];
  size_t n;
  bool placed;
  const char *go; /* created at the first event: the job ends only after the watch began */
} watched;

static int on_watch_event(const uint8_t *p, size_t n, void *ud) {
  watched *w = ud;
  Trainyard__JobWatchEvent *ev = trainyard__job_watch_event__unpack(NULL, n, p);
  cr_assert(ev && ev->job);
  if (w->n < 16) w->states[w->n++] = (int)ev->job->state;
  w->placed |= ev->job->n_tasks > 0 && ev->job->tasks[0]->token.len > 0;
  trainyard__job_watch_event__free_unpacked(ev, NULL);
  if (w->go) close(open(w->go, O_WRONLY | O_CREAT, 0644));
  return 0;
}

static int watch_job(ty_rpc_client *cl, uint64_t job, bool tokens, watched *w, ty_rpc_result *res) {
  Trainyard__WatchJobRequest req = TRAINYARD__WATCH_JOB_REQUEST__INIT;
  req.job_id = job, req.want_tokens = tokens;
  uint8_t buf[128];
  size_t n = trainyard__watch_job_request__pack(&req, buf);
  return ty_rpc_client_stream(cl, TY_M_WATCH_JOB, buf, n, 30000, on_watch_event, w, res);
}

Test(rlaunch, watch_job_pushes_each_change_until_the_end, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char go[400], script[600];
  snprintf(go, sizeof go, "%s/go", c.dir);
  /* It waits for a file made at the watch's first event. */
  snprintf(script, sizeof script, "while [ ! -e %s ]; do sleep 0.05; done", go);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, script, "watched", &id, NULL, 0), 0);
  ty_rpc_client *wc = it_client(&c);
  Trainyard__WatchJobRequest req = TRAINYARD__WATCH_JOB_REQUEST__INIT;
  req.job_id = id;
  uint8_t buf[64];
  size_t n = trainyard__watch_job_request__pack(&req, buf);
  watched w = {.go = go};
  ty_rpc_result res = {0};
  cr_assert_eq(ty_rpc_client_stream(wc, TY_M_WATCH_JOB, buf, n, 30000, on_watch_event, &w, &res),
               0);
  cr_expect_eq(res.status, 0, "%s", res.message);
  cr_assert_geq(w.n, 2, "the job as it was, then its changes");
  cr_expect_eq(w.states[w.n - 1], TRAINYARD__JOB_STATE__JOB_COMPLETED,
               "the stream ends at the end");
  cr_expect(!w.placed, "no tokens unless asked for");
  for (size_t i = 0; i + 1 < w.n; i++)
    cr_expect(!it_is_final(w.states[i]));
  ty_rpc_result_close(&res);
  /* A job that has ended: one event, then the end. */
  watched again = {0};
  cr_assert_eq(watch_job(wc, id, false, &again, &res), 0);
  cr_expect_eq(res.status, 0, "%s", res.message);
  cr_expect_eq(again.n, 1);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(wc);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A SubmitJob with `watch` and an array is refused whole: an array's
 * elements are jobs of their own, so none is created and nothing streams. */
static void submit_watch_refuses_an_array(ty_rpc_client *cl) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"true"};
  cmd.n_argv = 1, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "arr", job.user = "tester";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__ArrayRange r = TRAINYARD__ARRAY_RANGE__INIT, *rp = &r;
  Trainyard__ArraySpec a = TRAINYARD__ARRAY_SPEC__INIT;
  a.n_ranges = 1, a.ranges = &rp;
  r.first = 0, r.last = 3;
  job.array = &a;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job, req.watch = true, req.want_tokens = true;
  uint8_t buf[512];
  cr_assert_leq(trainyard__submit_job_request__get_packed_size(&req), sizeof buf);
  size_t n = trainyard__submit_job_request__pack(&req, buf);
  watched w = {0};
  ty_rpc_result res = {0};
  cr_assert_eq(ty_rpc_client_stream(cl, TY_M_SUBMIT_JOB, buf, n, 10000, on_watch_event, &w, &res),
               0);
  cr_expect_eq(res.status, TY_EINVAL);
  cr_expect(res.message && strstr(res.message, "watch: a job array cannot be watched"), "%s",
            res.message);
  cr_expect_eq(w.n, 0, "no event for a refused submit");
  ty_rpc_result_close(&res);
  Trainyard__ListJobsResponse *l = it_list_jobs(cl);
  cr_expect_eq(l->n_jobs, 1, "the refused array created a job (only the earlier one exists)");
  trainyard__list_jobs_response__free_unpacked(l, NULL);
  /* Without watch the same array is accepted (the refusal is watch's). */
  uint64_t id = 0;
  char err[TY_ERR_LEN] = "";
  cr_expect_eq(it_submit_job(cl, &job, &id, err, sizeof err), 0, "%s", err);
}

Test(rlaunch, watch_job_refuses_what_it_cannot_watch, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  watched w = {0};
  ty_rpc_result res = {0};
  cr_assert_eq(watch_job(cl, 999, false, &w, &res), 0);
  cr_expect_eq(res.status, TY_ENOTFOUND);
  cr_expect_str_eq(res.message, "job_id: job 999 not found");
  ty_rpc_result_close(&res);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, "true", "theirs", &id, NULL, 0), 0);
  /* Tokens: the owner's (root here) and operators', not another user's. */
  char name[64], msg[TY_ERR_LEN];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  Trainyard__WatchJobRequest req = TRAINYARD__WATCH_JOB_REQUEST__INIT;
  req.job_id = id, req.want_tokens = true;
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_reserve(&b, trainyard__watch_job_request__get_packed_size(&req));
  b.len = trainyard__watch_job_request__pack(&req, b.data);
  cr_expect_eq(it_call_as(&c, uid, gid, TY_M_WATCH_JOB, &b, msg, sizeof msg), TY_EPERM, "%s", msg);
  ty_buf_close(&b);
  static const uint8_t garbage[] = {0xff, 0xff, 0xff};
  cr_assert_eq(
      ty_rpc_client_stream(cl, TY_M_WATCH_JOB, garbage, sizeof garbage, 5000, NULL, NULL, &res), 0);
  cr_expect_eq(res.status, TY_EPROTO);
  cr_expect_str_eq(res.message, "payload is not a WatchJobRequest");
  cr_expect_eq(w.n, 0, "no event for a refused watch");
  ty_rpc_result_close(&res);
  submit_watch_refuses_an_array(cl);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The watch broke with the controller (kill -9, restart): rlaunch sends its
 * submit again, the request id makes it the same job, and the placement
 * still reaches it. */
Test(rlaunch, a_pending_launch_survives_a_controller_restart, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char go[400];
  pid_t hog = start_hog(&c, go, sizeof go);
  pid_t waiter = rl_start(&c, "waiter", NULL, (const char *[]){"--", "echo", "placed", NULL}, NULL);
  cr_assert(rl_wait_in(&c, "waiter", "err", "pending:"), "the waiter never waited");
  it_kill9(&c.traind);
  it_controller_start(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 20000),
            "the worker did not return");
  close(open(go, O_WRONLY | O_CREAT, 0644));
  cr_assert_eq(rl_wait(waiter), 0);
  char *out = rl_output(&c, "waiter", "out");
  cr_assert_str_eq(out, "placed\n");
  free(out);
  /* One job per launch: the resent submit was not a second job. */
  Trainyard__GetJobResponse *third = it_get_job(cl, 3);
  cr_expect_null(third, "a third job exists");
  if (third) trainyard__get_job_response__free_unpacked(third, NULL);
  rl_wait(hog);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* An rlaunch killed (-9) while its job is pending: the job is not started
 * when its CPUs free up (nobody would attach), and once rlaunch's
 * reconnect backoff is long past it is CANCELLED with the reason, its
 * command never run. */
Test(rlaunch, a_pending_job_whose_rlaunch_died_is_cancelled_unrun, .timeout = 180) {
  /* Cancelled 10 s after its rlaunch died, not 30: the listing is read
   * about 3 s after the death, the cancel waited for after that. */
  static const char *const gone[] = {"--rlaunch-gone-s", "10", NULL};
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = gone});
  char go[400], ran[400], script[600];
  pid_t hog = start_hog(&c, go, sizeof go);
  snprintf(ran, sizeof ran, "%s/ran", c.dir);
  snprintf(script, sizeof script, "touch %s", ran);
  pid_t orphan =
      rl_start(&c, "orphan", NULL, (const char *[]){"--", "sh", "-c", script, NULL}, NULL);
  cr_assert(rl_wait_in(&c, "orphan", "err", "pending:"), "the orphan never waited");
  kill(orphan, SIGKILL);
  rl_wait(orphan);
  it_sleep_ms(1000);
  close(open(go, O_WRONLY | O_CREAT, 0644)); /* the CPUs free up */
  cr_assert_eq(rl_wait(hog), 0);
  it_sleep_ms(1500); /* passes ran without it */
  /* Until it is cancelled its listing and `why` say so, not the reason of
   * the last pass that took it ("waiting for job 1") or "would start now". */
  char *out = NULL;
  it_trainctl_ok(&c, &out, (const char *const[]){"show", "2", NULL});
  cr_expect(strstr(out, "rlaunch went away: cancelled at "), "%s", out);
  cr_expect(strstr(out, "unless it reconnects"), "%s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"why", "2", NULL});
  cr_expect(strstr(out, "rlaunch went away: cancelled at "), "%s", out);
  cr_expect(!strstr(out, "would start now"), "%s", out);
  free(out);
  ty_rpc_client *cl = it_client(&c);
  int end = it_wait_state(cl, 2, 0, 60000);
  ty_rpc_client_close(cl);
  cr_assert_eq(end, TRAINYARD__JOB_STATE__JOB_CANCELLED, "job 2 ended %d, not CANCELLED", end);
  cr_assert_neq(access(ran, F_OK), 0, "the orphaned job ran its command");
  it_trainctl_ok(&c, &out, (const char *const[]){"show", "2", NULL});
  cr_assert(strstr(out, "rlaunch went away while the job was pending"), "%s", out);
  free(out);
  it_cluster_stop(&c);
}

/* traind's --rlaunch-gone-s is checked where it is parsed. */
Test(rlaunch, a_bad_rlaunch_gone_s_is_refused_naming_it) {
  const char *bin = it_bin("TY_TRAIND");
  const char *bad[] = {"0", "x", "-1", "4294967296"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char cmd[600], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s --rlaunch-gone-s %s 2>&1", bin, bad[i]);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert_eq(WEXITSTATUS(st), 2, "--rlaunch-gone-s %s: exit %d", bad[i], WEXITSTATUS(st));
    cr_assert(strstr(out, "--rlaunch-gone-s: \"") &&
                  strstr(out, "is not a positive number of seconds"),
              "--rlaunch-gone-s %s: %s", bad[i], out);
  }
}

/* A node lost under an rlaunch job ends it NODE_FAIL for good: its rlaunch
 * saw the run end and exited, so a rerun would repeat the command with
 * nobody attached; `job requeue` of it is refused too. */
Test(rlaunch, a_lost_node_ends_an_rlaunch_job_for_good, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  pid_t p = rl_start_sh(&c, "lost", "echo ready; sleep 60", "ready");
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, 1, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000);
  cr_assert(r && r->job->n_nodes == 1, "the rlaunch job does not run");
  size_t victim = strcmp(r->job->nodes[0], c.name[0]) == 0 ? 0 : 1;
  trainyard__get_job_response__free_unpacked(r, NULL);
  it_kill9(&c.worker[victim]);
  cr_assert_neq(rl_wait(p), 0, "rlaunch ended well without its node");
  r = it_wait_job(cl, 1, TRAINYARD__JOB_STATE__JOB_NODE_FAIL, 60000); /* after the node timeout */
  cr_assert(r, "the job did not end NODE_FAIL; logs in %s", c.dir);
  cr_assert_eq(r->job->requeue_count, 0);
  cr_assert(strstr(r->job->reason, "not requeued (an rlaunch job: its rlaunch saw this run end)"),
            "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  it_sleep_ms(2000); /* a requeue would have placed it on the other node by now */
  r = it_get_job(cl, 1);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_NODE_FAIL);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"job", "requeue", "1", NULL}), 1);
  cr_assert(strstr(err, "job 1 is an rlaunch job and is never requeued"), "%s", err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A cancel the command survives (it traps SIGTERM and exits 0) is still a
 * cancel: rlaunch says so and exits 128+SIGTERM, as trainctl submit -W
 * exits non-zero, so `rlaunch cmd && next` does not go on. */
Test(rlaunch, a_cancelled_job_says_so_and_exits_non_zero, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  pid_t p = rl_start_sh(&c, "trapper", "trap 'exit 0' TERM; echo ready; sleep 60 & wait", "ready");
  it_trainctl_ok(&c, NULL, (const char *[]){"cancel", "1", NULL});
  cr_assert_eq(rl_wait(p), 128 + SIGTERM);
  rl_expect_in(&c, "trapper", "err", "job 1 CANCELLED: cancelled by");
  it_cluster_stop(&c);
}

/* srun -d: the interactive job waits for its dependency, saying so, and
 * runs once it is met. */
Test(rlaunch, a_dependency_holds_the_job_until_it_is_met, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  uint64_t first = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  char dep[64];
  snprintf(dep, sizeof dep, "afterok:%llu", (unsigned long long)first);
  pid_t p =
      rl_start(&c, "after", NULL, (const char *[]){"-d", dep, "--", "echo", "ran", NULL}, NULL);
  cr_assert(rl_wait_in(&c, "after", "err", "Dependency"), "no status line naming the dependency");
  char id[32];
  snprintf(id, sizeof id, "%llu", (unsigned long long)first);
  it_trainctl_ok(&c, NULL, (const char *[]){"job", "release", id, NULL});
  cr_assert_eq(rl_wait(p), 0);
  rl_expect_in(&c, "after", "out", "ran");
  it_cluster_stop(&c);
}
