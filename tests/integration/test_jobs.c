/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job arrays, dependencies and batch scripts (issue 15) through a real
 * traind, real trainworkerd processes and the trainctl binary: a batch
 * script's #SBATCH lines apply and its output lands where -o says; an
 * array is one submit
 * whose elements see their TRAINYARD_ARRAY_* / SLURM_ARRAY_* variables and
 * never run more than %N at once; ls folds pending elements; cancel, hold
 * and release take an array or one element; afterok/afternotok/afterany on
 * a failed job; a dependency that can never be met cancels the job when
 * asked; why shows what a job waits for; finished jobs answer from the
 * store after a controller restart; a controller killed mid-array (some
 * elements done, some running, some still in the array's stored record,
 * one cancelled) resumes with no element lost or run twice. Every refusal
 * is checked too. States
 * and files the tasks write are asserted, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

static int ctl(const it_cluster *c, char **out, const char *const *args) {
  return it_trainctl(c, out, args);
}

static int final_state(ty_rpc_client *cl, uint64_t id, char *reason, size_t cap) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job %llu did not end", (unsigned long long)id);
  int s = (int)r->job->state;
  if (reason) snprintf(reason, cap, "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}

Test(jobs, array_elements_see_their_index_and_respect_max_running, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char script[1024];
  /* Each element notes how many elements run beside it (a directory per
   * running element, counted by the shell's glob: `ls` would stat each name
   * after the glob and complain on stderr, which is the element's log, when
   * a neighbour removes its directory in between), then writes its
   * variables. */
  snprintf(script, sizeof script,
           "d=%s; echo element $SLURM_ARRAY_TASK_ID; mkdir $d/run.$SLURM_ARRAY_TASK_ID; set -- "
           "$d/run.*; echo $# >> $d/concurrent; "
           "sleep 0.3; rmdir $d/run.$SLURM_ARRAY_TASK_ID; "
           "echo $TRAINYARD_ARRAY_JOB_ID $TRAINYARD_ARRAY_TASK_ID $SLURM_ARRAY_JOB_ID "
           "$SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX > "
           "$d/out.$SLURM_ARRAY_TASK_ID",
           c.dir);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--array", "0-10:2%2", "--name", "arr", "--",
                                                   "/bin/sh", "-c", script, NULL});
  for (uint64_t k = 0; k < 6; k++)
    cr_assert_eq(final_state(cl, id + k, NULL, 0), ST(COMPLETED), "element %llu",
                 (unsigned long long)k);
  for (int t = 0; t <= 10; t += 2) {
    char path[400], want[128];
    snprintf(path, sizeof path, "%s/out.%d", c.dir, t);
    snprintf(want, sizeof want, "%llu %d %llu 6 0 10\n", (unsigned long long)id, t,
             (unsigned long long)id);
    char *got = it_read_text(path);
    cr_assert(got && !strcmp(got, want), "task %d wrote \"%s\", want \"%s\"", t, got ? got : "",
              want);
    free(got);
  }
  char path[400];
  snprintf(path, sizeof path, "%s/concurrent", c.dir);
  char *counts = it_read_text(path);
  cr_assert(counts);
  for (char *p = counts; *p; p++)
    cr_assert(*p == '\n' || *p == ' ' || (*p >= '1' && *p <= '2'),
              "more than 2 elements ran at once: %s", counts);
  free(counts);
  /* The element is addressable as ID_TASK, by show and by logs. */
  char ref[48], *out = NULL;
  snprintf(ref, sizeof ref, "%llu_4", (unsigned long long)id);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", ref, NULL}), 0);
  cr_assert(strstr(out, "COMPLETED") && strstr(out, "array:"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"logs", ref, NULL}), 0);
  cr_assert_str_eq(out, "element 4\n");
  free(out);
  snprintf(ref, sizeof ref, "%llu_5", (unsigned long long)id); /* 0-10:2 has no 5 */
  cr_assert_neq(ctl(&c, &out, (const char *[]){"logs", ref, NULL}), 0);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A batch script as sbatch takes it: its #SBATCH lines make it an array of
 * named elements whose output goes to the files its pattern names, its
 * arguments reach it, and a cancelled script gets SIGTERM itself, ends as
 * its trap says and leaves no copy of itself (in its TMPDIR) on the node. */
Test(jobs, a_batch_script_runs_as_its_directives_say, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
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
  for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(access(path, F_OK), 0, "the script never started");
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(CANCELLED));
  /* CANCELLED is the controller's word at once; the script's trap runs on. */
  snprintf(path, sizeof path, "%s/out-batch-%llu_7.txt", c.dir, (unsigned long long)id);
  char *got = NULL;
  for (int i = 0; i < 500 && !(got && strstr(got, "trapped")); i++) {
    free(got);
    it_sleep_ms(20);
    got = it_read_text(path);
  }
  cr_assert(got && strstr(got, "trapped"), "the script's trap did not run: \"%s\"", got);
  free(got);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q '^trainyard-script\\.'", c.dir);
  int left = 0;
  for (int i = 0; i < 100 && (left = system(cmd)) == 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(left, 1 << 8, "a copy of the script was left in %s", c.dir);
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
                                                "$(scontrol show hostnames | head -n 1)",
                                                NULL}),
               0, "%s", err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  for (int r = 0; r < 4; r++) {
    char path[440], want1[128], want2[128];
    snprintf(path, sizeof path, "%s/env-%d.out", c.dir, r);
    snprintf(want1, sizeof want1, "%d 4 %d 2 wrap w[1-2] %llu w1\n", r, r % 2,
             (unsigned long long)id);
    snprintf(want2, sizeof want2, "%d 4 %d 2 wrap w[2,1] %llu w2\n", r, r % 2,
             (unsigned long long)id);
    char *got = it_read_text(path);
    cr_assert(got && (!strcmp(got, want1) || !strcmp(got, want2)), "%s: \"%s\", want \"%s\"", path,
              got ? got : "", want1);
    free(got);
  }
  /* cancel --name: both "nap" jobs, not the other one. */
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", "--name", "nap", NULL}), 0);
  cr_assert_eq(final_state(cl, ids[0], NULL, 0), ST(CANCELLED));
  cr_assert_eq(final_state(cl, ids[2], NULL, 0), ST(CANCELLED));
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "-t", "PD", "--noheader", "-o", "name", NULL}),
               0);
  cr_assert_str_eq(out, "keep\n", "only the other job is left");
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
  cr_assert(strstr(out, "Submitted job"), "%s", out);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "--wait", "--parsable", "--array", "0-2",
                                                "--wrap", "exit $SLURM_ARRAY_TASK_ID", NULL}),
               2, "the highest element's: %s", err);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-W", "--wrap", "kill -9 $$", NULL}),
               128 + 9, "%s", err);
  /* A script killed by a signal ends killed by it, as Slurm's batch step
   * (0:9), not with its shell's 137:0. */
  unsigned long long killed = 0;
  cr_assert(sscanf(out, "Submitted job %llu", &killed) == 1, "%s", out);
  free(out), free(err);
  char kid[32], want_exit[64];
  snprintf(kid, sizeof kid, "%llu", killed);
  snprintf(want_exit, sizeof want_exit, "%llu|FAILED|0:9\n", killed);
  cr_assert_eq(ctl(&c, &out,
                   (const char *const[]){"history", "-j", kid, "-n", "-P", "-o",
                                         "JobID,State,ExitCode", NULL}),
               0);
  cr_assert_str_eq(out, want_exit);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *const[]){"history", "-j", kid, "-o", "reason", NULL}), 0);
  cr_assert(strstr(out, "rank 0 killed by signal 9 (SIGKILL)"), "%s", out);
  free(out);
  /* A script ending by a signal it does not trap (USR1 here) reads the same. */
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-W", "--wrap", "kill -USR1 $$", NULL}),
               128 + 10, "%s", err);
  free(out), free(err);
  char out_pat[400], path[440];
  snprintf(out_pat, sizeof out_pat, "%s/steps.out", c.dir);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "-W", "-n", "2", "-o", out_pat, "--wrap",
                                       "srun -n 2 --mpi=pmix echo rank $SLURM_PROCID", NULL}),
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
  cr_assert_eq(ctl(&c, &out, (const char *[]){"cancel", "--signal", "USR1", sid, NULL}), 0);
  cr_assert(strstr(out, "Signalled job"), "%s", out);
  free(out);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED), "the trap, not a cancel, ended it");
  snprintf(path, sizeof path, "%s/sig.out", c.dir);
  char *got = it_read_text(path);
  cr_assert(got && strstr(got, "got USR1"), "%s", got ? got : "(no output)");
  free(got);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(out, "signal 10 sent by"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"cancel", "-s", "TERM", sid, NULL}),
               1);
  cr_assert(strstr(err, "only a running job takes a signal"), "%s", err);
  free(err);
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
  cr_assert_eq(ctl(c, NULL, (const char *[]){"job", "release", e1, NULL}), 0);
  cr_assert_eq(final_state(*cl, id + 1, NULL, 0), ST(COMPLETED));
  cr_assert_eq(it_job_state(*cl, id + 2), ST(PENDING), "only the released element ran");
  cr_assert_eq(ctl(c, &out, (const char *[]){"show", e1, NULL}), 0);
  cr_assert(strstr(out, "submitted held"), "%s", out);
  free(out);
  cr_assert_eq(ctl(c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  for (uint64_t k = 0; k < 4; k++)
    cr_assert_eq(final_state(*cl, id + k, NULL, 0), ST(COMPLETED));
  cr_assert_eq(ctl(c, &out, (const char *[]){"show", e2, NULL}), 0);
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
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(out, "submitted held"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  held_array_waits_for_its_release(&c, &cl);
  /* --begin: BeginTime until then, then it runs by itself. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "-q", "--begin=now+2", "--wrap", "true", NULL}),
      0, "%s", err);
  id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "--noheader", "-o", "reason", NULL}), 0);
  cr_assert(strstr(out, "BeginTime: not before"), "%s", out);
  free(out);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(jobs, pending_array_folds_and_takes_cancel_hold_release, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--array", "0-9", "--", "true", NULL});
  char sid[32], e3[48], e5[48], folded[64], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  snprintf(e3, sizeof e3, "%s_3", sid);
  snprintf(e5, sizeof e5, "%s_5", sid);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  snprintf(folded, sizeof folded, "%s_[0-9]", sid);
  cr_assert(strstr(out, folded), "not folded: %s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "--array", NULL}), 0);
  cr_assert(strstr(out, e3) && !strstr(out, "["), "%s", out);
  free(out);
  /* One element. */
  cr_assert_eq(ctl(&c, &out, (const char *[]){"cancel", e3, NULL}), 0);
  cr_assert(strstr(out, "Cancelled job") && strstr(out, e3), "%s", out);
  free(out);
  cr_assert_eq(it_job_state(cl, id + 3), ST(CANCELLED));
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  snprintf(folded, sizeof folded, "%s_[0-2,4-9]", sid);
  cr_assert(strstr(out, folded), "%s", out);
  free(out);
  /* Hold the whole array, release one element, then the rest. */
  cr_assert_eq(ctl(&c, &out, (const char *[]){"job", "hold", sid, NULL}), 0);
  cr_assert(strstr(out, "9 elements"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"job", "update", sid, "--time", "5m", NULL}), 0);
  cr_assert(strstr(out, ": time limit applied to 9 elements"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", e5, NULL}), 0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  cr_assert_eq(final_state(cl, id + 5, NULL, 0), ST(COMPLETED));
  it_sleep_ms(1000); /* a few passes: the held ones stay */
  cr_assert_eq(it_job_state(cl, id + 4), ST(PENDING));
  /* Several elements at once, as scontrol release 12_[4,6] takes them: a
   * line each; one that cannot take it is named as its user named it. */
  char some[96], want[96], *err = NULL;
  snprintf(some, sizeof some, "%s_[4,6]", sid);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"job", "release", some, NULL}), 0);
  snprintf(want, sizeof want, "Job %s_4: ", sid);
  cr_assert(strstr(out, want), "%s", out);
  snprintf(want, sizeof want, "Job %s_6: ", sid);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  snprintf(some, sizeof some, "%s_4,%s_7", sid, sid);
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"job", "release", some, NULL}), 1);
  snprintf(want, sizeof want, "Job %s_7: ", sid);
  cr_assert(strstr(out, want), "%s", out);
  snprintf(want, sizeof want, "job %s_4 is not held", sid);
  cr_assert(strstr(err, want), "%s", err);
  free(out), free(err);
  cr_assert_eq(final_state(cl, id + 7, NULL, 0), ST(COMPLETED));
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id + 9, NULL, 0), ST(COMPLETED));
  /* Refusals: an unknown element, a spent array, bad references. */
  char e99[48];
  snprintf(e99, sizeof e99, "%s_99", sid);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"cancel", e99, NULL}), 4);
  cr_assert(strstr(err, "not found"), "%s", err);
  free(err);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"job", "hold", sid, NULL}), 1);
  free(err);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", "12_x", NULL}), 2);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"job", "hold", "5,,6", NULL}), 2);
  cr_assert(strstr(err, "job hold: an empty job id in \"5,,6\""), "%s", err);
  free(err);
  cr_assert_eq(
      ctl(&c, NULL, (const char *[]){"submit", "--command", "--array", "9-1", "--", "true", NULL}),
      2);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ListJobs with fold_arrays (what trainctl ls asks for by default): pending
 * elements of one array in a row are ONE JobInfo carrying their folded
 * tasks; the cached answer follows every change of the live set. */
static Trainyard__ListJobsResponse *list_folded(ty_rpc_client *cl, bool with_cancelled) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[] = {ST(PENDING), ST(RUNNING), ST(CANCELLED)};
  req.states = states, req.n_states = with_cancelled ? 3 : 2;
  req.fold_arrays = true;
  return it_list_jobs_req(cl, &req);
}

Test(jobs, controller_folds_pending_arrays_and_refolds_on_change, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--array", "0-999", "--", "true", NULL});
  uint64_t single = it_submit_cli(&c, (const char *[]){"--", "true", NULL});
  Trainyard__ListJobsResponse *r = list_folded(cl, false);
  cr_assert_eq(r->n_jobs, 2, "1,000 pending elements and a job: %zu entries", r->n_jobs);
  cr_assert_eq(r->jobs[0]->id, id);
  cr_assert_str_eq(r->jobs[0]->array_tasks_folded, "0-999");
  cr_assert_eq(r->jobs[1]->id, single);
  cr_assert_str_eq(r->jobs[1]->array_tasks_folded, "");
  trainyard__list_jobs_response__free_unpacked(r, NULL);
  /* The same request again after a change: not the cached answer. */
  char e3[48];
  snprintf(e3, sizeof e3, "%llu_3", (unsigned long long)id);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", e3, NULL}), 0);
  r = list_folded(cl, false);
  cr_assert_eq(r->n_jobs, 2);
  cr_assert_str_eq(r->jobs[0]->array_tasks_folded, "0-2,4-999");
  trainyard__list_jobs_response__free_unpacked(r, NULL);
  /* A cancelled element between them breaks the run; it never folds. */
  r = list_folded(cl, true);
  cr_assert_eq(r->n_jobs, 4, "%zu entries", r->n_jobs);
  cr_assert_str_eq(r->jobs[0]->array_tasks_folded, "0-2");
  cr_assert_eq(r->jobs[1]->id, id + 3);
  cr_assert_str_eq(r->jobs[1]->array_tasks_folded, "");
  cr_assert_eq(r->jobs[2]->id, id + 4);
  cr_assert_str_eq(r->jobs[2]->array_tasks_folded, "4-999");
  trainyard__list_jobs_response__free_unpacked(r, NULL);
  /* Without fold_arrays every element is its own entry. */
  r = it_list_jobs(cl);
  cr_assert_eq(r->n_jobs, 1001, "%zu entries", r->n_jobs);
  trainyard__list_jobs_response__free_unpacked(r, NULL);
  /* trainctl ls prints the controller's fold; with --sort it folds the
   * elements itself, to the same line. */
  char *out = NULL, want[64];
  snprintf(want, sizeof want, "%llu_[0-2,4-999]", (unsigned long long)id);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "--sort", "id", NULL}), 0);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The controller checks the array of any client's Job. */
Test(jobs, controller_refuses_bad_arrays_and_dependencies, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"true"};
  cmd.n_argv = 1, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "bad", job.user = "tester";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__ArrayRange r = TRAINYARD__ARRAY_RANGE__INIT, *rp = &r;
  Trainyard__ArraySpec a = TRAINYARD__ARRAY_SPEC__INIT;
  a.n_ranges = 1, a.ranges = &rp;
  r.first = 5, r.last = 1;
  job.array = &a;
  uint64_t id;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.array"), "%s", err);
  r.first = 0, r.last = 2000000;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.array"), "%s", err);
  job.array = NULL;
  Trainyard__JobRef target = TRAINYARD__JOB_REF__INIT;
  target.job_id = 424242;
  Trainyard__Dependency d = TRAINYARD__DEPENDENCY__INIT, *dp = &d;
  d.kind = TRAINYARD__DEPENDENCY_KIND__DEP_AFTEROK, d.job = &target;
  job.n_dependencies = 1, job.dependencies = &dp;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "job.dependencies[0]: job 424242 not found"), "%s", err);
  d.kind = 77;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.dependencies[0].kind"), "%s", err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(jobs, dependencies_on_a_failed_job, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t a = it_submit_cli(&c, (const char *[]){"--", "/bin/sh", "-c", "exit 3", NULL});
  char dep_ok[64], dep_notok[64], dep_any[64], sa[24], *out = NULL;
  snprintf(sa, sizeof sa, "%llu", (unsigned long long)a);
  snprintf(dep_ok, sizeof dep_ok, "afterok:%s", sa);
  snprintf(dep_notok, sizeof dep_notok, "afternotok:%s", sa);
  snprintf(dep_any, sizeof dep_any, "afterany:%s", sa);
  uint64_t kill =
      it_submit_cli(&c, (const char *[]){"--dependency", dep_ok, "--kill-on-invalid-dep", "yes",
                                         "--", "true", NULL});
  uint64_t keep =
      it_submit_cli(&c, (const char *[]){"--dependency", dep_ok, "--kill-on-invalid-dep", "no",
                                         "--", "true", NULL});
  uint64_t notok =
      it_submit_cli(&c, (const char *[]){"--dependency", dep_notok, "--", "true", NULL});
  uint64_t any = it_submit_cli(&c, (const char *[]){"--dependency", dep_any, "--", "true", NULL});
  /* why names the unmet condition while A has not run. */
  char sk[24];
  snprintf(sk, sizeof sk, "%llu", (unsigned long long)keep);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"why", sk, NULL}), 0);
  cr_assert(strstr(out, "Dependency") && strstr(out, dep_ok), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  char reason[512];
  cr_assert_eq(final_state(cl, a, NULL, 0), ST(FAILED));
  cr_assert_eq(final_state(cl, notok, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, any, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, kill, reason, sizeof reason), ST(CANCELLED));
  cr_assert(strstr(reason, "DependencyNeverSatisfied"), "%s", reason);
  /* Submitted once A has failed: never satisfiable at submit, cancelled by
   * the first pass all the same. */
  uint64_t late =
      it_submit_cli(&c, (const char *[]){"--dependency", dep_ok, "--kill-on-invalid-dep", "yes",
                                         "--", "true", NULL});
  cr_assert_eq(final_state(cl, late, reason, sizeof reason), ST(CANCELLED));
  cr_assert(strstr(reason, "DependencyNeverSatisfied"), "%s", reason);
  it_sleep_ms(1000); /* a few passes: the kept one never starts */
  Trainyard__GetJobResponse *r = it_get_job(cl, keep);
  cr_assert_eq((int)r->job->state, ST(PENDING));
  cr_assert(strstr(r->job->reason, "DependencyNeverSatisfied") ||
                strstr(r->job->dependency, "afterok"),
            "%s / %s", r->job->reason, r->job->dependency);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"why", sk, NULL}), 0);
  cr_assert(strstr(out, "DependencyNeverSatisfied"), "%s", out);
  free(out);
  /* Finished jobs are answered from the store after a restart. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  ty_rpc_client_close(cl);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, a), ST(FAILED));
  cr_assert_eq(it_job_state(cl, kill), ST(CANCELLED));
  cr_assert_eq(it_job_state(cl, keep), ST(PENDING));
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sa, NULL}), 0);
  cr_assert(strstr(out, "FAILED") && strstr(out, "exit code:"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* singleton: a job waits while an earlier job of its name and user has
 * not ended, and its reason names that job; it runs once that one ends. */
Test(jobs, singleton_waits_for_the_earlier_job_of_its_name, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char gate[400], script[480], want[96], reason[512];
  snprintf(gate, sizeof gate, "%s/go", c.dir);
  snprintf(script, sizeof script, "while [ ! -e %s ]; do sleep 0.1; done", gate);
  uint64_t first =
      it_submit_cli(&c, (const char *[]){"--name", "one", "--", "/bin/sh", "-c", script, NULL});
  uint64_t other = it_submit_cli(
      &c, (const char *[]){"--name", "two", "--dependency", "singleton", "--", "true", NULL});
  uint64_t single = it_submit_cli(
      &c, (const char *[]){"--name", "one", "--dependency", "singleton", "--", "true", NULL});
  cr_assert_eq(final_state(cl, other, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  cr_assert_eq(it_wait_state(cl, first, ST(RUNNING), 30000), ST(RUNNING));
  snprintf(want, sizeof want, "Dependency: singleton(job %llu RUNNING)", (unsigned long long)first);
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 500; i++) { /* the pass after its start says RUNNING */
    r = it_get_job(cl, single);
    if (r && strstr(r->job->reason, want)) break;
    if (r) trainyard__get_job_response__free_unpacked(r, NULL), r = NULL;
    it_sleep_ms(20);
  }
  cr_assert(r, "job %llu never said \"%s\"", (unsigned long long)single, want);
  cr_assert_eq((int)r->job->state, ST(PENDING));
  trainyard__get_job_response__free_unpacked(r, NULL);
  FILE *f = fopen(gate, "w");
  cr_assert(f);
  fclose(f);
  cr_assert_eq(final_state(cl, first, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, single, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Conditions on a whole array, submitted before any element ran: the
 * first element has the array's id, and its end must not drop the
 * waiters of the array (they once waited for ever). With %1 it ends
 * first; element 1 fails, so afterok can never hold, afternotok and
 * afterany run once the last ends, and afterok on an array that all
 * completed runs. */
Test(jobs, dependencies_on_a_whole_array_wait_for_its_last_element, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t a = it_submit_cli(&c, (const char *[]){"--array", "0-2%1", "--", "/bin/sh", "-c",
                                                  "[ $SLURM_ARRAY_TASK_ID != 1 ]", NULL});
  uint64_t good = it_submit_cli(&c, (const char *[]){"--array", "0-1%1", "--", "true", NULL});
  char ok[64], notok[64], any[64], good_ok[64], reason[512];
  snprintf(ok, sizeof ok, "afterok:%llu", (unsigned long long)a);
  snprintf(notok, sizeof notok, "afternotok:%llu", (unsigned long long)a);
  snprintf(any, sizeof any, "afterany:%llu", (unsigned long long)a);
  snprintf(good_ok, sizeof good_ok, "afterok:%llu", (unsigned long long)good);
  uint64_t w_ok = it_submit_cli(&c, (const char *[]){"--dependency", ok, "--", "true", NULL});
  uint64_t w_notok = it_submit_cli(&c, (const char *[]){"--dependency", notok, "--", "true", NULL});
  uint64_t w_any = it_submit_cli(&c, (const char *[]){"--dependency", any, "--", "true", NULL});
  uint64_t w_good =
      it_submit_cli(&c, (const char *[]){"--dependency", good_ok, "--", "true", NULL});
  cr_assert_eq(final_state(cl, a + 2, NULL, 0), ST(COMPLETED));
  cr_assert_eq(it_job_state(cl, a + 1), ST(FAILED));
  cr_assert_eq(final_state(cl, w_notok, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  cr_assert_eq(final_state(cl, w_any, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  cr_assert_eq(final_state(cl, w_good, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 500; i++) { /* the pass after the last end says it */
    r = it_get_job(cl, w_ok);
    if (r && strstr(r->job->reason, "DependencyNeverSatisfied")) break;
    if (r) trainyard__get_job_response__free_unpacked(r, NULL), r = NULL;
    it_sleep_ms(20);
  }
  cr_assert(r, "afterok on an array with a failed element never said DependencyNeverSatisfied");
  cr_assert_eq((int)r->job->state, ST(PENDING));
  /* The reason counts the array's elements that ended. */
  char want[96];
  snprintf(want, sizeof want, "DependencyNeverSatisfied: %s(", ok);
  cr_assert(strstr(r->job->reason, want) && strstr(r->job->reason, " of 3 ended)"), "%s",
            r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The array is stored as one record that elements leave as they start or
 * are cancelled (daemon/store.c): a controller killed with elements done,
 * running, pending and cancelled comes back with each exactly once, and
 * every element but the cancelled one runs exactly once in all. */
Test(jobs, a_controller_killed_mid_array_loses_and_repeats_no_element, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char script[1024];
  /* Tasks 0 and 1 end at once; the others wait for the file `go`, noting
   * how many elements run beside them (a directory per running element). */
  snprintf(script, sizeof script,
           "d=%s; echo $SLURM_ARRAY_TASK_ID >> $d/ran; [ $SLURM_ARRAY_TASK_ID -lt 2 ] && exit 0; "
           "mkdir $d/run.$SLURM_ARRAY_TASK_ID; set -- $d/run.*; echo $# >> $d/concurrent; "
           "while [ ! -e $d/go ]; do sleep 0.1; done; rmdir $d/run.$SLURM_ARRAY_TASK_ID",
           c.dir);
  uint64_t id =
      it_submit_cli(&c, (const char *[]){"--array", "0-9%2", "--", "/bin/sh", "-c", script, NULL});
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, id + 1, NULL, 0), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, id + 2, ST(RUNNING), 30000), ST(RUNNING));
  cr_assert_eq(it_wait_state(cl, id + 3, ST(RUNNING), 30000), ST(RUNNING));
  char e9[48];
  snprintf(e9, sizeof e9, "%llu_9", (unsigned long long)id);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", e9, NULL}), 0);
  char after[48];
  snprintf(after, sizeof after, "afterany:%llu", (unsigned long long)id);
  uint64_t waiter = it_submit_cli(&c, (const char *[]){"--dependency", after, "--", "true", NULL});
  it_kill9(&c.traind);
  it_controller_start(&c);
  ty_rpc_client_close(cl);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000));
  cr_assert_eq(it_job_state(cl, id), ST(COMPLETED));
  cr_assert_eq(it_job_state(cl, id + 1), ST(COMPLETED));
  cr_assert_eq(it_job_state(cl, id + 2), ST(RUNNING));
  cr_assert_eq(it_job_state(cl, id + 3), ST(RUNNING));
  for (uint64_t k = 4; k < 9; k++)
    cr_assert_eq(it_job_state(cl, id + k), ST(PENDING), "element %llu", (unsigned long long)k);
  cr_assert_eq(it_job_state(cl, id + 9), ST(CANCELLED));
  cr_assert_eq(it_job_state(cl, waiter), ST(PENDING), "afterany on the array ran before its end");
  char *out = NULL, folded[64];
  snprintf(folded, sizeof folded, "%llu_[4-8]", (unsigned long long)id);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  cr_assert(strstr(out, folded), "%s", out);
  free(out);
  /* Let them all run; each of 0-8 ran once, 9 never. */
  char go[400];
  snprintf(go, sizeof go, "%s/go", c.dir);
  FILE *f = fopen(go, "w");
  cr_assert(f);
  fclose(f);
  for (uint64_t k = 2; k < 9; k++)
    cr_assert_eq(final_state(cl, id + k, NULL, 0), ST(COMPLETED), "element %llu",
                 (unsigned long long)k);
  char ran_path[400];
  snprintf(ran_path, sizeof ran_path, "%s/ran", c.dir);
  char *ran = it_read_text(ran_path);
  cr_assert(ran);
  int seen[10] = {0};
  for (char *p = ran; *p;) {
    long t = strtol(p, &p, 10);
    cr_assert(t >= 0 && t < 10, "%s", ran);
    seen[t]++;
    while (*p == '\n')
      p++;
  }
  for (int t = 0; t < 9; t++)
    cr_assert_eq(seen[t], 1, "task %d ran %d times: %s", t, seen[t], ran);
  cr_assert_eq(seen[9], 0, "the cancelled task ran");
  free(ran);
  snprintf(ran_path, sizeof ran_path, "%s/concurrent", c.dir);
  char *counts = it_read_text(ran_path);
  cr_assert(counts);
  for (char *p = counts; *p; p++)
    cr_assert(*p == '\n' || *p == ' ' || (*p >= '1' && *p <= '2'),
              "more than 2 elements ran at once across the restart: %s", counts);
  free(counts);
  /* The array's last end releases its waiter (which once rechecked the
   * store's counts before that end was committed there, and waited on). */
  Trainyard__GetJobResponse *w = it_wait_job(cl, waiter, 0, 30000);
  if (!w) {
    w = it_get_job(cl, waiter);
    cr_assert(w);
    cr_assert_fail("afterany:%llu never released job %llu: %s", (unsigned long long)id,
                   (unsigned long long)waiter, w->job->reason);
  }
  cr_assert_eq(w->job->state, ST(COMPLETED), "%s", w->job->reason);
  trainyard__get_job_response__free_unpacked(w, NULL);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "later", NULL}), 0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "later", NULL}), 0);
  uint64_t id = it_submit_cli(&c, (const char *[]){"-H", "--", "true", NULL});
  cr_assert(reason_comes(cl, id, "Held"), "job %llu was never reported held",
            (unsigned long long)id);
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "move", sid, "later", NULL}), 0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert(reason_comes(cl, id, "QueuePaused: queue later is paused"),
            "the moved job was not held back by its new queue");
  cr_assert_eq(it_job_state(cl, id), ST(PENDING));
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "resume", "later", NULL}), 0);
  cr_assert_eq(final_state(cl, id, NULL, 0), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
