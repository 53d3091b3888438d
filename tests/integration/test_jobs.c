/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch scripts and job commands (issue 15) through a real traind, real
 * trainworkerd processes and the trainctl binary: a batch script's #SBATCH
 * lines apply and its output lands where -o says; a wrapped command sees
 * the Slurm variables; submit --wait exits with the job's exit code;
 * cancel's signal reaches the running tasks; a job (or an array)
 * submitted held waits for its release, across a controller restart; a
 * moved job follows its new queue; submit --test-only estimates a start
 * and creates nothing. Arrays and dependencies are in
 * test_jobs_arrays.c, the shared helpers in jobs_helpers.c; one test
 * binary. Every refusal is checked too. States and files the tasks write
 * are asserted, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

/* A batch script as sbatch takes it: its #SBATCH lines make it an array of
 * named elements whose output goes to the files its pattern names, its
 * arguments reach it, and a cancelled script gets SIGTERM itself, ends as
 * its trap says and leaves no copy of itself (in its TMPDIR) on the node. */
Test(jobs, a_batch_script_runs_as_its_directives_say, .timeout = 180) {
  it_cluster c;
  /* A kill grace of 30 s, not the harness's 2: the cancelled runner
   * removes its copy after the script's trap, the wait-status writer and
   * its own read, and a loaded machine may not get there in 2 s (a SIGKILL
   * then would leave the copy behind). */
  it_cluster_start_with(
      &c, 1, 4, &(it_options){.traind_args = (const char *[]){"--kill-grace-s", "30", NULL}});
  ty_rpc_client *cl = it_client(&c);
  char path[400], text[1024];
  snprintf(text, sizeof text,
           "#!/bin/sh\n"
           "#SBATCH --job-name=batch -a 1-2\n"
           "#SBATCH -o %s/out-%%x-%%A_%%a.txt\n"
           "echo \"task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID: $1\"\n"
           "[ \"$1\" = stop ] || exit 0\n"
           "trap 'echo trapped; exit 0' TERM\n"
           "touch %s/started.$SLURM_ARRAY_TASK_ID; sleep 60 & wait\n",
           c.dir, c.dir);
  snprintf(path, sizeof path, "%s/job.sh", c.dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"submit", "-q", path, "go", NULL}),
               0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  for (int t = 1; t <= 2; t++) {
    cr_assert_eq(final_state(cl, id + (uint64_t)t - 1, NULL, 0), ST(COMPLETED));
    char want[128];
    snprintf(path, sizeof path, "%s/out-batch-%llu_%d.txt", c.dir, (unsigned long long)id, t);
    snprintf(want, sizeof want, "task %d of %llu: go\n", t, (unsigned long long)id);
    char *got = it_read_text(path);
    cr_assert(got && !strcmp(got, want), "%s: \"%s\", want \"%s\"", path, got ? got : "", want);
    free(got);
  }
  /* The command line wins over the script's -a: one job, then cancelled. */
  snprintf(path, sizeof path, "%s/job.sh", c.dir);
  char tmpdir[400];
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", c.dir); /* where its copy goes */
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-q", "-a", "7", "--export", tmpdir, path,
                                                "stop", NULL}),
               0, "%s", err);
  id = strtoull(out, NULL, 10);
  free(out), free(err);
  snprintf(path, sizeof path, "%s/started.7", c.dir);
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && access(path, F_OK) != 0;)
    it_sleep_ms(20);
  cr_assert_eq(access(path, F_OK), 0, "the script never started");
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(CANCELLED));
  /* CANCELLED is the controller's word at once; the script's trap runs on. */
  snprintf(path, sizeof path, "%s/out-batch-%llu_7.txt", c.dir, (unsigned long long)id);
  char *got = NULL;
  for (int64_t end = ty_mono_ms() + 30000;
       ty_mono_ms() < end && !(got && strstr(got, "trapped"));) {
    free(got);
    it_sleep_ms(20);
    got = it_read_text(path);
  }
  cr_assert(got && strstr(got, "trapped"), "the script's trap did not run: \"%s\"", got);
  free(got);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q '^trainyard-script\\.'", c.dir);
  int left = 0; /* the runner removes it after the trap: up to 30 s under load */
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && (left = system(cmd)) == 0;)
    it_sleep_ms(20);
  cr_assert_eq(left, 1 << 8, "a copy of the script was left in %s", c.dir);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A task's TMPDIR is its own directory (0700, its user's) on the node, and
 * it goes once the task ended, even SIGKILLed at the kill grace's end
 * (SIGTERM ignored), when nothing of the task could clean up. */
Test(jobs, a_killed_tasks_tmpdir_is_removed, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char cmd[1024], seen[400], started[400];
  snprintf(seen, sizeof seen, "%s/tmpdir.txt", c.dir);
  snprintf(started, sizeof started, "%s/started", c.dir);
  snprintf(cmd, sizeof cmd,
           "trap '' TERM; mkdir -p \"$TMPDIR/d/e\" && echo x > \"$TMPDIR/d/e/f\" && "
           "echo \"$TMPDIR $(stat -c '%%a %%u' \"$TMPDIR\") $(id -u)\" > %s && touch %s && "
           "sleep 60",
           seen, started);
  char *out = NULL, *err = NULL;
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err, (const char *[]){"submit", "-q", "--wrap", cmd, NULL}), 0,
      "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && access(started, F_OK) != 0;)
    it_sleep_ms(20);
  cr_assert_eq(access(started, F_OK), 0, "the task never started");
  char *got = it_read_text(seen), want[600], dir[500];
  snprintf(dir, sizeof dir, "%s/tmp/trainyard-job-%llu.0", c.dir, (unsigned long long)id);
  cr_assert(got && !strncmp(got, dir, strlen(dir)), "TMPDIR: \"%s\", want %s", got, dir);
  unsigned uid = 0;
  cr_assert(sscanf(got + strlen(dir), " 700 %u", &uid) == 1, "\"%s\"", got);
  snprintf(want, sizeof want, "%s 700 %u %u\n", dir, uid, uid);
  cr_assert_str_eq(got, want, "not 0700 and the task's own");
  free(got);
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(CANCELLED));
  /* SIGKILLed after the grace; the worker removes the directory then. */
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && access(dir, F_OK) == 0;)
    it_sleep_ms(20);
  cr_assert_neq(access(dir, F_OK), 0, "%s was left after the task was killed", dir);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* sbatch --wrap, Slurm's job variables on every task, and scancel-like
 * cancel by name. */
Test(jobs, a_wrapped_command_sees_slurm_variables, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 2, 2);
  ty_rpc_client *cl = it_client(&c);
  char out_pat[400];
  snprintf(out_pat, sizeof out_pat, "%s/env-%%t.out", c.dir);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-q", "-N", "2", "-n", "4", "-o", out_pat,
                                                "--wrap",
                                                "echo $SLURM_PROCID $SLURM_NTASKS $SLURM_LOCALID "
                                                "$SLURM_JOB_NUM_NODES $SLURM_JOB_NAME "
                                                "$SLURM_JOB_NODELIST $SLURM_JOB_ID "
                                                "$(scontrol show hostnames | head -n 1) "
                                                "$SLURM_SUBMIT_HOST",
                                                NULL}),
               0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  char host[256] = "";
  gethostname(host, sizeof host - 1); /* sbatch's SLURM_SUBMIT_HOST: where it ran */
  for (int r = 0; r < 4; r++) {
    char path[440], want1[400], want2[400];
    snprintf(path, sizeof path, "%s/env-%d.out", c.dir, r);
    snprintf(want1, sizeof want1, "%d 4 %d 2 wrap w[1-2] %llu w1 %s\n", r, r % 2,
             (unsigned long long)id, host);
    snprintf(want2, sizeof want2, "%d 4 %d 2 wrap w[2,1] %llu w2 %s\n", r, r % 2,
             (unsigned long long)id, host);
    char *got = it_read_text(path);
    cr_assert(got && (!strcmp(got, want1) || !strcmp(got, want2)), "%s: \"%s\", want \"%s\"", path,
              got ? got : "", want1);
    free(got);
  }
  /* cancel --name: both "nap" jobs, not the other one. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t ids[3];
  const char *names[3] = {"nap", "keep", "nap"};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(it_trainctl_err(
                     &c, &out, &err,
                     (const char *[]){"submit", "-q", "-J", names[i], "--wrap", "sleep 60", NULL}),
                 0, "%s", err);
    ids[i] = strtoull(out, NULL, 10);
    free(out), free(err);
  }
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", "--name", "nap", NULL}), 0);
  cr_assert_eq(final_state(cl, ids[0], NULL, 0), ST(CANCELLED));
  cr_assert_eq(final_state(cl, ids[2], NULL, 0), ST(CANCELLED));
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"ls", "-t", "PD", "--noheader", "-o", "name", NULL}),
      0);
  cr_assert_str_eq(out, "keep\n", "only the other job is left");
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A task reaches its controller through TRAINYARD_CONTROLLER, which every
 * task gets from its worker: `trainctl job checkpoint $TRAINYARD_JOB_ID`
 * from a --command job (which carries none of the submitter's environment)
 * records a checkpoint, as the README says, on a controller that is not at
 * the default address. */
Test(jobs, a_task_reaches_its_controller, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char script[600];
  snprintf(script, sizeof script, "%s job checkpoint $TRAINYARD_JOB_ID", getenv("TY_TRAINCTL"));
  const char *args[12] = {"submit", "-q", "--command"};
  size_t n = 3;
  if (getenv("TRAINYARD_MUNGE_SOCKET"))
    args[n++] = "--export", args[n++] = "TRAINYARD_MUNGE_SOCKET";
  args[n++] = "--", args[n++] = "/bin/sh", args[n++] = "-c", args[n++] = script;
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err, args), 0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED), "logs in %s", c.dir);
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out, (const char *[]){"show", sid, NULL});
  cr_assert(strstr(out, "last checkpoint:"), "no checkpoint recorded: %s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* sbatch --wait: trainctl follows the job (an array's every element) and
 * exits with its exit code; a script's srun lines run in each task of the
 * step (all, or the first K of `-n K`), whose shared output file keeps
 * every task's lines. */
Test(jobs, submit_wait_exits_with_the_jobs_exit_code, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char *out = NULL, *err = NULL;
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err, (const char *[]){"submit", "-W", "--wrap", "exit 3", NULL}),
      3, "%s", err);
  cr_assert(strstr(out, "Submitted batch job"), "%s", out);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "--wait", "--parsable", "--array", "0-2",
                                                "--wrap", "exit $SLURM_ARRAY_TASK_ID", NULL}),
               2, "the highest element's: %s", err);
  free(out), free(err);
  /* sbatch --wait exits 1 for a job a signal ended (WEXITSTATUS only of
   * an exited one). */
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-W", "--wrap", "kill -9 $$", NULL}),
               1, "%s", err);
  /* A script killed by a signal ends killed by it, as Slurm's batch step
   * (0:9), not with its shell's 137:0. */
  unsigned long long killed = 0;
  cr_assert(sscanf(out, "Submitted batch job %llu", &killed) == 1, "%s", out);
  free(out), free(err);
  char kid[32], want_exit[64];
  snprintf(kid, sizeof kid, "%llu", killed);
  /* sacct's header, as a script that reads sacct -P's by name finds it */
  snprintf(want_exit, sizeof want_exit, "JobID|State|ExitCode\n%llu|FAILED|0:9\n", killed);
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *const[]){"history", "-j", kid, "-P", "-o",
                                                 "JobID,State,ExitCode", NULL}),
               0);
  cr_assert_str_eq(out, want_exit);
  free(out);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *const[]){"history", "-j", kid, "-o", "reason", NULL}), 0);
  cr_assert(strstr(out, "rank 0 killed by signal 9 (SIGKILL)"), "%s", out);
  free(out);
  /* A script ending by a signal it does not trap (USR1 here) reads the same. */
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-W", "--wrap", "kill -USR1 $$", NULL}),
               1, "%s", err);
  free(out), free(err);
  char out_pat[400], path[440];
  snprintf(out_pat, sizeof out_pat, "%s/steps.out", c.dir);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "-W", "-n", "2", "-o", out_pat, "--wrap",
                                       "srun -n 2 --mpi=pmix echo rank $SLURM_PROCID 2>/dev/null",
                                       NULL}),
      0, "%s", err);
  free(out), free(err);
  snprintf(path, sizeof path, "%s/steps.out", c.dir);
  char *got = it_read_text(path);
  cr_assert(got && (!strcmp(got, "rank 0\nrank 1\n") || !strcmp(got, "rank 1\nrank 0\n")),
            "%s: \"%s\"", path, got ? got : "");
  free(got);
  /* A step of fewer tasks runs in that many: srun -n1 once, not per task. */
  snprintf(out_pat, sizeof out_pat, "%s/once.out", c.dir);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-W", "-n", "2", "-o", out_pat, "--wrap",
                                                "srun -n1 echo once $SLURM_PROCID; "
                                                "srun --ntasks-per-node=1 echo node $SLURM_PROCID",
                                                NULL}),
               0, "%s", err);
  free(out), free(err);
  got = it_read_text(out_pat);
  cr_assert(got && !strcmp(got, "once 0\nnode 0\n"), "%s: \"%s\"", out_pat, got ? got : "");
  free(got);
  it_cluster_stop(&c);
}

/* Runs script text with submit --wait: its exit status, and the job's
 * "ID|STATE|EXIT" line of history into line. */
static int waited_end(const it_cluster *c, const char *text, char *line, size_t cap) {
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, (const char *[]){"submit", "-W", "--wrap", text, NULL});
  unsigned long long id = 0;
  cr_assert(sscanf(out, "Submitted batch job %llu", &id) == 1, "%s: %s %s", text, out, err);
  free(out), free(err);
  char ids[32];
  snprintf(ids, sizeof ids, "%llu", id);
  cr_assert_eq(it_trainctl(c, &out,
                           (const char *const[]){"history", "-j", ids, "-n", "-P", "-o",
                                                 "JobID,State,ExitCode", NULL}),
               0);
  char *p = strchr(out, '|');
  cr_assert(p, "%s", out);
  snprintf(line, cap, "%s", p + 1); /* "STATE|EXIT\n" */
  free(out);
  return rc;
}

/* A batch script's own exit code is passed on exactly, as Slurm's batch
 * step: `exit 137` is 137:0, not a signal (its runner learns the real
 * wait status through trainyard-exec --wait-status), and submit --wait
 * exits 137 as sbatch --wait would; a script that a signal kills still
 * ends 0:N (sbatch --wait: 1). */
Test(jobs, a_scripts_exit_code_is_passed_on_exactly, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  static const struct {
    const char *text, *want;
    int rc;
  } cases[] = {
      {"exit 137", "FAILED|137:0\n", 137},  {"exit 130", "FAILED|130:0\n", 130},
      {"exit 143", "FAILED|143:0\n", 143},  {"kill -TERM $$", "FAILED|0:15\n", 1},
      {"kill -KILL $$", "FAILED|0:9\n", 1}, {"sh -c 'exit 129'", "FAILED|129:0\n", 129},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char line[128];
    int rc = waited_end(&c, cases[i].text, line, sizeof line);
    cr_assert_str_eq(line, cases[i].want, "%s", cases[i].text);
    cr_assert_eq(rc, cases[i].rc, "submit --wait of \"%s\" exited %d", cases[i].text, rc);
  }
  it_cluster_stop(&c);
}

/* scancel --signal: the running tasks get the signal, nothing is
 * cancelled (the script's trap ends it cleanly), and the job's history
 * says who sent which; a job not running is refused. */
Test(jobs, cancel_signal_reaches_the_running_tasks, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char out_pat[400], path[440], *out = NULL, *err = NULL;
  snprintf(out_pat, sizeof out_pat, "%s/sig.out", c.dir);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-q", "-o", out_pat, "--wrap",
                                                "trap 'echo got USR1; exit 0' USR1; "
                                                "while :; do sleep 0.1; done",
                                                NULL}),
               0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  free(out), free(err);
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 30000), ST(RUNNING));
  it_sleep_ms(300); /* the trap is set */
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", "--signal", "USR1", sid, NULL}), 0);
  cr_assert(strstr(out, "Signalled job"), "%s", out);
  free(out);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED), "the trap, not a cancel, ended it");
  snprintf(path, sizeof path, "%s/sig.out", c.dir);
  char *got = it_read_text(path);
  cr_assert(got && strstr(got, "got USR1"), "%s", got ? got : "(no output)");
  free(got);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(out, "signal 10 sent by"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"cancel", "-s", "TERM", sid, NULL}),
               1);
  cr_assert(strstr(err, "only a running job takes a signal"), "%s", err);
  free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A signal is all or none: with one of the job's two workers gone (its
 * node not timed out yet) the signal is refused, naming the node, rather
 * than reaching half the job. */
Test(jobs, a_signal_is_refused_while_a_node_of_the_job_is_away, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 1, &(it_options){.node_timeout_ms = 60000});
  ty_rpc_client *cl = it_client(&c);
  char sid[32], *out = NULL, *err = NULL;
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-N", "2", "--wrap",
                                                     "trap 'echo got USR1' USR1; "
                                                     "for i in $(seq 300); do sleep 0.1; done",
                                                     NULL});
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 30000), ST(RUNNING));
  it_sleep_ms(300); /* the traps are set */
  int st;
  kill(c.worker[1], SIGKILL);
  waitpid(c.worker[1], &st, 0);
  c.worker[1] = 0;
  int rc = 0;
  for (int i = 0; i < 100; i++) { /* until the controller saw the connection close */
    free(err), err = NULL;
    rc = it_trainctl_err(&c, NULL, &err, (const char *[]){"cancel", "-s", "USR1", sid, NULL});
    if (rc != 0) break;
    it_sleep_ms(100);
  }
  cr_assert_neq(rc, 0, "the signal was sent with a node away");
  cr_assert(strstr(err, c.name[1]) && strstr(err, "is not connected now"), "%s", err);
  cr_assert(strstr(err, "was not sent to any task"), "%s", err);
  free(err);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(out, "RUNNING"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A cancelled job whose task ignores SIGTERM has ended (CANCELLED) but
 * holds its CPUs until the kill grace's SIGKILL: ls lists it as squeue
 * lists a CG job (default listing, COMPLETING, %t CG) and show counts its
 * ranks still ending, instead of a job gone while its CPUs stay taken. */
Test(jobs, a_cancelled_job_whose_tasks_outlive_sigterm_is_completing, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(
      &c, 1, 2, &(it_options){.traind_args = (const char *[]){"--kill-grace-s", "60", NULL}});
  ty_rpc_client *cl = it_client(&c);
  char up[400], script[600], sid[32], *out = NULL;
  snprintf(up, sizeof up, "%s/up", c.dir);
  snprintf(script, sizeof script, "trap '' TERM; touch %s; while :; do sleep 0.2; done", up);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--", "sh", "-c", script, NULL});
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  for (int i = 0; i < 300 && access(up, F_OK) != 0; i++)
    it_sleep_ms(100);
  cr_assert_eq(access(up, F_OK), 0, "the task did not start");
  it_trainctl_ok(&c, &out, (const char *[]){"cancel", sid, NULL});
  free(out);
  cr_assert_eq(it_wait_state(cl, id, ST(CANCELLED), 30000), ST(CANCELLED));
  it_trainctl_ok(&c, &out, (const char *[]){"ls", "--noheader", "-o", "%i %t %T", NULL});
  char want[64];
  snprintf(want, sizeof want, "%s CG COMPLETING\n", sid);
  cr_assert_str_eq(out, want);
  free(out);
  it_trainctl_ok(&c, &out, (const char *[]){"show", sid, NULL});
  cr_assert(strstr(out, "CANCELLED (completing: 1 rank still ending"), "%s", out);
  free(out);
  /* Asked for its state, it is CANCELLED, as squeue -t CA lists it. */
  it_trainctl_ok(&c, &out, (const char *[]){"ls", "--noheader", "-t", "RUNNING", NULL});
  cr_assert_str_eq(out, "", "a completing job is not RUNNING");
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* sbatch -H --array: every element waits, across a controller restart,
 * until released (one element, then the array); the history says each
 * was submitted held. */
static void held_array_waits_for_its_release(it_cluster *c, ty_rpc_client **cl) {
  uint64_t id = it_submit_cli(c, (const char *[]){"-H", "--array", "0-3", "--", "true", NULL});
  char sid[32], e1[48], e2[48], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  snprintf(e1, sizeof e1, "%s_1", sid);
  snprintf(e2, sizeof e2, "%s_2", sid);
  it_sleep_ms(1500); /* passes run: they stay */
  for (uint64_t k = 0; k < 4; k++)
    cr_assert_eq(it_job_state(*cl, id + k), ST(PENDING), "element %llu", (unsigned long long)k);
  ty_rpc_client_close(*cl);
  it_kill9(&c->traind);
  it_controller_start(c);
  *cl = it_client(c);
  it_sleep_ms(1500);
  for (uint64_t k = 0; k < 4; k++)
    cr_assert_eq(it_job_state(*cl, id + k), ST(PENDING), "element %llu held across a restart",
                 (unsigned long long)k);
  cr_assert_eq(it_trainctl(c, NULL, (const char *[]){"job", "release", e1, NULL}), 0);
  cr_assert_eq(final_state(*cl, id + 1, NULL, 0), ST(COMPLETED));
  cr_assert_eq(it_job_state(*cl, id + 2), ST(PENDING), "only the released element ran");
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"show", e1, NULL}), 0);
  cr_assert(strstr(out, "submitted held"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  for (uint64_t k = 0; k < 4; k++)
    cr_assert_eq(final_state(*cl, id + k, NULL, 0), ST(COMPLETED));
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"show", e2, NULL}), 0);
  cr_assert(strstr(out, "submitted held"), "%s", out);
  free(out);
}

/* sbatch -H: the job is stored held (so a controller restart keeps it so)
 * and starts only once released; an array submitted held, each element. */
Test(jobs, a_job_submitted_held_waits_for_its_release, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-q", "-H", "--wrap", "true", NULL}),
               0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  char sid[32];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  free(out), free(err);
  it_sleep_ms(1500); /* passes run: it stays */
  cr_assert_eq(it_job_state(cl, id), ST(PENDING));
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  it_sleep_ms(1500);
  cr_assert_eq(it_job_state(cl, id), ST(PENDING), "held across a restart");
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(out, "submitted held"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  held_array_waits_for_its_release(&c, &cl);
  /* --begin: BeginTime until then, then it runs by itself. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "-q", "--begin=now+2", "--wrap", "true", NULL}),
      0, "%s", err);
  id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "--noheader", "-o", "reason", NULL}),
               0);
  cr_assert(strstr(out, "BeginTime: not before"), "%s", out);
  free(out);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Whether job id's reason comes to contain `want` within 30 s. */
static bool reason_comes(ty_rpc_client *cl, uint64_t id, const char *want) {
  for (int i = 0; i < 600; i++) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    bool has = r->job->reason && strstr(r->job->reason, want);
    trainyard__get_job_response__free_unpacked(r, NULL);
    if (has) return true;
    it_sleep_ms(50);
  }
  return false;
}

/* A pending job moved to another queue is scheduled by that queue's rules
 * from the next pass on: the pass borrows the controller's one copy of each
 * job's queue name (daemon/sched_pass.c), which a move must refresh. */
Test(jobs, a_moved_job_follows_its_new_queue, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "create", "later", NULL}), 0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "later", NULL}), 0);
  uint64_t id = it_submit_cli(&c, (const char *[]){"-H", "--", "true", NULL});
  cr_assert(reason_comes(cl, id, "Held"), "job %llu was never reported held",
            (unsigned long long)id);
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "move", sid, "later", NULL}), 0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert(reason_comes(cl, id, "QueuePaused: queue later is paused"),
            "the moved job was not held back by its new queue");
  cr_assert_eq(it_job_state(cl, id), ST(PENDING));
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "resume", "later", NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* trainctl submit --test-only ARGS: its exit code, with stdout and stderr
 * in *out and *err (the caller frees). */
static int test_only(const it_cluster *c, char **out, char **err, const char *const *args) {
  const char *argv[16] = {"submit", "--test-only"};
  size_t n = 2;
  for (; *args && n < 15; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  return it_trainctl_err(c, out, err, argv);
}

/* A test-only SubmitJob of job (watch too, if asked): its status, the
 * message in msg. */
static int test_only_rpc(ty_rpc_client *cl, Trainyard__Job *job, bool watch, char *msg,
                         size_t len) {
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = job, req.test_only = true, req.watch = watch;
  uint8_t buf[256];
  cr_assert_leq(trainyard__submit_job_request__get_packed_size(&req), sizeof buf);
  size_t n = trainyard__submit_job_request__pack(&req, buf);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_SUBMIT_JOB, buf, n, 10000, &res), 0);
  int status = res.status;
  snprintf(msg, len, "%s", res.message ? res.message : "");
  ty_rpc_result_close(&res);
  return status;
}

/* What a test-only submit refuses besides a real submit's refusals: a
 * graph job (its check and plan run only once submitted), a watch (there
 * is no job to watch), and --wait with it. */
static void test_only_refusals(const it_cluster *c, ty_rpc_client *cl) {
  char msg[TY_ERR_LEN], *argv[] = {"/bin/true"};
  uint8_t config[] = {0x08, 0x01};
  Trainyard__GraphSpec g = TRAINYARD__GRAPH_SPEC__INIT;
  g.model_path = "/tmp/model.onnx", g.train_config = (ProtobufCBinaryData){2, config};
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_GRAPH, job.graph = &g;
  cr_assert_eq(test_only_rpc(cl, &job, false, msg, sizeof msg), TY_EINVAL);
  cr_assert(strstr(msg, "test_only: a graph job is not estimated unsubmitted"), "%s", msg);
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = 1, cmd.argv = argv, cmd.cwd = "/tmp";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  cr_assert_eq(test_only_rpc(cl, &job, true, msg, sizeof msg), TY_EINVAL);
  cr_assert(strstr(msg, "test_only: a test-only submit creates no job to watch"), "%s", msg);
  char *out = NULL, *err = NULL;
  cr_assert_eq(test_only(c, &out, &err, (const char *[]){"-W", "--wrap", "true", NULL}), 2);
  cr_assert(strstr(err, "--wait: --test-only submits nothing to wait for"), "%s", err);
  free(out), free(err);
}

/* A test-only job's dependency, evaluated as a submit's: met (afterok on a
 * job that completed), it is estimated; not yet met (on held job `held`),
 * the estimate names the condition. Cancels `running` to free the node. */
static void test_only_dependencies(const it_cluster *c, ty_rpc_client *cl, uint64_t running,
                                   uint64_t held) {
  char *out = NULL, *err = NULL, dep[48], want[128], id[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)running);
  cr_assert_eq(it_trainctl(c, NULL, (const char *[]){"cancel", id, NULL}), 0);
  uint64_t done = it_submit_cli(c, (const char *[]){"--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, done, ST(COMPLETED), 30000), ST(COMPLETED));
  snprintf(dep, sizeof dep, "afterok:%llu", (unsigned long long)done);
  cr_assert_eq(test_only(c, &out, &err, (const char *[]){"-d", dep, "--wrap", "true", NULL}), 0,
               "%s", err);
  cr_assert(strstr(err, "trainctl: Job would start at "), "afterok on a completed job: %s", err);
  free(out), free(err);
  snprintf(dep, sizeof dep, "afterok:%llu", (unsigned long long)held);
  cr_assert_eq(test_only(c, &out, &err, (const char *[]){"-d", dep, "--wrap", "true", NULL}), 0,
               "%s", err);
  snprintf(want, sizeof want, "none while it waits for: Dependency: afterok:%llu(PENDING)",
           (unsigned long long)held);
  cr_assert(strstr(err, want), "want %s: %s", want, err);
  free(out), free(err);
  /* Any one of ('?'): the reason joins its conditions as the spec does. */
  snprintf(dep, sizeof dep, "afterok:%llu?afternotok:%llu", (unsigned long long)held,
           (unsigned long long)held);
  cr_assert_eq(test_only(c, &out, &err, (const char *[]){"-d", dep, "--wrap", "true", NULL}), 0,
               "%s", err);
  snprintf(want, sizeof want, "Dependency: afterok:%llu(PENDING)?afternotok:%llu(PENDING)",
           (unsigned long long)held, (unsigned long long)held);
  cr_assert(strstr(err, want), "want %s: %s", want, err);
  free(out), free(err);
}

/* sbatch --test-only: the controller checks the job as a submit would and
 * answers when and where it would start, creating nothing: the job list,
 * the next id and the submit counter stay as they were. */
Test(jobs, test_only_estimates_a_start_and_creates_nothing, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL, *err = NULL;
  /* Idle: it would start now, on the one node. */
  cr_assert_eq(test_only(&c, &out, &err, (const char *[]){"-c", "2", "--wrap", "true", NULL}), 0,
               "%s", err);
  cr_assert(strstr(err, "trainctl: Job would start at ") &&
                strstr(err, " using 2 CPUs on nodes w1 in queue default\n"),
            "%s", err);
  cr_assert_str_eq(out, "", "nothing submitted: no id on standard output");
  free(out), free(err);
  /* Busy: the running job's time limit says when. */
  uint64_t a = it_submit_cli(&c, (const char *[]){"-t", "1", "-c", "2", "--", "sleep", "60", NULL});
  cr_assert_eq(it_wait_state(cl, a, ST(RUNNING), 30000), ST(RUNNING));
  char *before = NULL;
  cr_assert_eq(
      it_trainctl(&c, &before, (const char *[]){"ls", "--all", "--noheader", "-o", "%i %t", NULL}),
      0);
  cr_assert_eq(
      test_only(&c, &out, &err,
                (const char *[]){"--json", "-c", "2", "-a", "0-3", "--wrap", "true", NULL}),
      0, "%s", err);
  cr_assert(strstr(out, "\"est_kind\":\"limits\"") && strstr(out, "\"nodes\":[]"), "%s", out);
  free(out), free(err);
  cr_assert_eq(test_only(&c, &out, &err, (const char *[]){"-H", "--wrap", "true", NULL}), 0);
  cr_assert(strstr(err, "trainctl: Job's start cannot be estimated in queue default: none while "
                        "it waits for: Held"),
            "%s", err);
  free(out), free(err);
  /* A bad spec: the real submit's refusal, word for word. */
  char *real = NULL;
  cr_assert_neq(it_trainctl_err(&c, &out, &real,
                                (const char *[]){"submit", "-c", "64", "--wrap", "true", NULL}),
                0);
  free(out);
  cr_assert_neq(test_only(&c, &out, &err, (const char *[]){"-c", "64", "--wrap", "true", NULL}), 0);
  cr_assert(strstr(real, "the largest node has 2"), "%s", real);
  cr_assert_str_eq(err, real);
  free(out), free(err), free(real);
  test_only_refusals(&c, cl);
  /* Nothing was created: the same jobs, the next id a's successor. */
  char *after = NULL;
  cr_assert_eq(
      it_trainctl(&c, &after, (const char *[]){"ls", "--all", "--noheader", "-o", "%i %t", NULL}),
      0);
  cr_assert_str_eq(after, before);
  free(before), free(after);
  cr_assert_eq(it_metric(c.metrics_port, "trainyard_jobs_submitted_total"), 1.0);
  cr_assert_eq(it_metric(c.metrics_port, "trainyard_jobs_test_only_total"), 3.0);
  uint64_t b = it_submit_cli(&c, (const char *[]){"-H", "--", "true", NULL});
  cr_assert_eq(b, a + 1, "test-only submits took ids: %llu after %llu", (unsigned long long)b,
               (unsigned long long)a);
  test_only_dependencies(&c, cl, a, b);
  /* Counted as requests of their own kind, not as submit load: a, the
   * refused -c 64, b and test_only_dependencies' job were submits. */
  cr_assert_eq(it_metric(c.metrics_port, "trainyard_rpc_requests_total{method=\"SubmitJob\","),
               4.0);
  cr_assert_eq(
      it_metric(c.metrics_port, "trainyard_rpc_requests_total{method=\"SubmitJobTestOnly\","), 9.0);
  cr_assert_eq(it_metric(c.metrics_port, "trainyard_jobs_test_only_total"), 6.0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
