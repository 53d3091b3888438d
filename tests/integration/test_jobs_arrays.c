/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job arrays and dependencies (issue 15) through a real traind, real
 * trainworkerd processes and the trainctl binary: an array's elements see
 * their TRAINYARD_ARRAY_* / SLURM_ARRAY_* variables and never run more
 * than %N at once; ls and the controller fold pending elements; cancel,
 * hold and release take an array or one element; bad arrays and
 * dependencies are refused; afterok/afternotok/afterany on a failed job,
 * singleton, dependencies on a whole array, a waiter's reason after its
 * target is requeued; a controller killed mid-array
 * resumes with no element lost or run twice; a change to a large array
 * goes in chunks, other requests answered between them. Batch scripts and the other
 * job tests are in test_jobs.c (the same test binary). States and files
 * the tasks write are asserted, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

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
           "$SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX $TY_ELEMENT > "
           "$d/out.$SLURM_ARRAY_TASK_ID",
           c.dir);
  /* A pending element holds no command or environment of its own: its
   * launch decodes them from its stored spec (the first's). */
  uint64_t id = it_submit_cli(&c, (const char *[]){"--array", "0-10:2%2", "--name", "arr",
                                                   "--export", "TY_ELEMENT=env-kept", "--",
                                                   "/bin/sh", "-c", script, NULL});
  for (uint64_t k = 0; k < 6; k++)
    cr_assert_eq(final_state(cl, id + k, NULL, 0), ST(COMPLETED), "element %llu",
                 (unsigned long long)k);
  for (int t = 0; t <= 10; t += 2) {
    char path[400], want[128];
    snprintf(path, sizeof path, "%s/out.%d", c.dir, t);
    snprintf(want, sizeof want, "%llu %d %llu 6 0 10 env-kept\n", (unsigned long long)id, t,
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", ref, NULL}), 0);
  cr_assert(strstr(out, "COMPLETED") && strstr(out, "array:"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"logs", ref, NULL}), 0);
  cr_assert_str_eq(out, "element 4\n");
  free(out);
  snprintf(ref, sizeof ref, "%llu_5", (unsigned long long)id); /* 0-10:2 has no 5 */
  cr_assert_neq(it_trainctl(&c, &out, (const char *[]){"logs", ref, NULL}), 0);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(jobs, pending_array_folds_and_takes_cancel_hold_release, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--array", "0-9", "--", "true", NULL});
  char sid[32], e3[48], e5[48], folded[64], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  snprintf(e3, sizeof e3, "%s_3", sid);
  snprintf(e5, sizeof e5, "%s_5", sid);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  snprintf(folded, sizeof folded, "%s_[0-9]", sid);
  cr_assert(strstr(out, folded), "not folded: %s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "--array", NULL}), 0);
  cr_assert(strstr(out, e3) && !strstr(out, "["), "%s", out);
  free(out);
  /* One element. */
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", e3, NULL}), 0);
  cr_assert(strstr(out, "Cancelled job") && strstr(out, e3), "%s", out);
  free(out);
  cr_assert_eq(it_job_state(cl, id + 3), ST(CANCELLED));
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  snprintf(folded, sizeof folded, "%s_[0-2,4-9]", sid);
  cr_assert(strstr(out, folded), "%s", out);
  free(out);
  /* Hold the whole array, release one element, then the rest. */
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "hold", sid, NULL}), 0);
  cr_assert(strstr(out, "9 elements"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "update", sid, "--time", "5m", NULL}),
               0);
  cr_assert(strstr(out, ": time limit applied to 9 elements"), "%s", out);
  free(out);
  /* scontrol's ArrayTaskThrottle: the array's %N, on the whole array only. */
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"job", "update", sid, "--array-throttle", "2", NULL}),
      0);
  cr_assert(strstr(out, ": array throttle applied to 9 elements"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", e5, NULL}), 0);
  cr_assert(strstr(out, "array:       0-9%2") && strstr(out, "array throttle none -> 2 by"), "%s",
            out);
  free(out);
  char *terr = NULL;
  cr_assert_eq(
      it_trainctl_err(&c, &out, &terr,
                      (const char *[]){"job", "update", e5, "--array-throttle", "1", NULL}),
      1);
  cr_assert(strstr(terr, "--array-throttle is the whole array's; give the array's id"), "%s", terr);
  free(out), free(terr);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", e5, NULL}), 0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  cr_assert_eq(final_state(cl, id + 5, NULL, 0), ST(COMPLETED));
  it_sleep_ms(1000); /* a few passes: the held ones stay */
  cr_assert_eq(it_job_state(cl, id + 4), ST(PENDING));
  /* Several elements at once, as scontrol release 12_[4,6] takes them: a
   * line each; one that cannot take it is named as its user named it. */
  char some[96], want[96], *err = NULL;
  snprintf(some, sizeof some, "%s_[4,6]", sid);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "release", some, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(final_state(cl, id + 9, NULL, 0), ST(COMPLETED));
  /* Refusals: an unknown element, a spent array, bad references. */
  char e99[48];
  snprintf(e99, sizeof e99, "%s_99", sid);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"cancel", e99, NULL}), 4);
  cr_assert(strstr(err, "not found"), "%s", err);
  free(err);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"job", "hold", sid, NULL}), 1);
  free(err);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", "12_x", NULL}), 2);
  cr_assert_eq(it_trainctl_err(&c, NULL, &err, (const char *[]){"job", "hold", "5,,6", NULL}), 2);
  cr_assert(strstr(err, "job hold: an empty job id in \"5,,6\""), "%s", err);
  free(err);
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *[]){"submit", "--command", "--array", "9-1", "--", "true", NULL}),
      2);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A cancel of more than 1024 array elements (one CancelJob's most), as
 * scancel takes it: by filters, an array whose live elements all match
 * goes as its one id; named element by element (ID_[0-1099]), the refs go
 * in several requests. Nothing is refused, every element is cancelled. */
Test(jobs, cancel_of_more_than_1024_elements, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t big = it_submit_cli(
      &c, (const char *[]){"-H", "--name", "big", "--array", "0-1099", "--", "true", NULL});
  uint64_t wide = it_submit_cli(
      &c, (const char *[]){"--name", "wide", "--array", "0-1099", "--", "true", NULL});
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(
                   &c, &out, &err,
                   (const char *[]){"cancel", "--me", "--state", "pending", "--name", "big", NULL}),
               0, "%s", err);
  free(out), free(err);
  cr_assert_eq(it_job_state(cl, big), ST(CANCELLED));
  cr_assert_eq(it_job_state(cl, big + 1099), ST(CANCELLED));
  cr_assert_eq(it_job_state(cl, wide), ST(PENDING), "--name big only");
  char refs[64];
  snprintf(refs, sizeof refs, "%llu_[0-1099]", (unsigned long long)wide);
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"cancel", refs, NULL}), 0, "%s",
               err);
  free(out), free(err);
  cr_assert_eq(it_job_state(cl, wide), ST(CANCELLED));
  cr_assert_eq(it_job_state(cl, wide + 1099), ST(CANCELLED));
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"ls", "--noheader", "-t", "PD", "-o", "name", NULL}),
      0);
  cr_assert_str_eq(out, "", "nothing is left pending");
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* job requeue/hold/priority of an array's id reports on the array, "Array
 * A: requeue applied to 1 element", also when only one element took it:
 * not the line of another element (A_0's state) under the array's id. */
Test(jobs, a_change_to_one_element_of_an_array_reports_the_array, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = it_submit_cli(&c, (const char *[]){"-H", "--array", "0-5", "--", "true", NULL});
  char sid[32], e2[48], want[96], *out = NULL, *err = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  snprintf(e2, sizeof e2, "%s_2", sid);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", e2, NULL}), 0);
  cr_assert_eq(it_job_state(cl, id + 2), ST(CANCELLED));
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"job", "requeue", sid, NULL}), 0,
               "%s", err);
  snprintf(want, sizeof want, "Array %s: requeue applied to 1 element\n", sid);
  cr_assert_str_eq(out, want);
  free(out), free(err);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "priority", e2, "5", NULL}), 0);
  snprintf(want, sizeof want, "Job %s: PENDING", e2);
  cr_assert(strstr(out, want), "one element named: its own line: %s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", e3, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", NULL}), 0);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "--sort", "id", NULL}), 0);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The lines of text s. */
static int count_text_lines(const char *s) {
  int n = 0;
  for (; s && *s; s++)
    n += *s == '\n';
  return n;
}

/* A listing leaves out each job's environment and command (show has
 * them), so 100 elements carrying 2 KB of environment each list under a
 * 64 KiB frame; one larger than the frame still is the newest jobs that
 * fit, with a note, never a refusal. -j and --name are answered by the
 * controller: one element of the array lists whatever the array's size. */
Test(jobs, listings_over_the_frame_limit_keep_the_newest_and_filters_stay_small, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(
      &c, 1, 1, &(it_options){.traind_args = (const char *const[]){"--max-frame", "64K", NULL}});
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  char big[2048];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  setenv("TY_IT_BIG", big, 1); /* every element's environment carries it */
  uint64_t id = it_submit_quiet(
      &c, (const char *[]){"--array", "0-99", "-J", "wide", "--wrap", "true", NULL});
  uint64_t other = it_submit_cli(&c, (const char *[]){"-J", "narrow", "--", "true", NULL});
  unsetenv("TY_IT_BIG");
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"ls", "--array", "-h", NULL}), 0,
               "%s", err);
  cr_expect_eq(count_text_lines(out), 101, "%s", out);
  cr_expect(!strstr(err, "more jobs matched"), "%s", err);
  free(out), free(err);
  it_submit_quiet(&c, (const char *[]){"--array", "0-999", "-J", "many", "--wrap", "true", NULL});
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err, (const char *[]){"ls", "--array", "-h", "-o", "%i", NULL}), 0,
      "%s", err);
  cr_expect(strstr(err, "more jobs matched; the newest are shown"), "%s", err);
  int listed = count_text_lines(out);
  cr_expect(listed > 100 && listed < 1101, "%d listed", listed);
  char newest[48];
  snprintf(newest, sizeof newest, "%llu_999\n", (unsigned long long)other + 1);
  cr_expect(strstr(out, newest), "the newest is not listed: %s", out);
  free(out), free(err);
  char e7[48], line[64];
  snprintf(e7, sizeof e7, "%llu_7", (unsigned long long)id);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"ls", "--array", "-j", e7, "-h", "-o", "%i", NULL}),
      0);
  snprintf(line, sizeof line, "%s\n", e7);
  cr_assert_str_eq(out, line);
  free(out);
  cr_assert_eq(
      it_trainctl(&c, &out,
                  (const char *[]){"ls", "--array", "--name", "narrow", "-h", "-o", "%i", NULL}),
      0);
  snprintf(line, sizeof line, "%llu\n", (unsigned long long)other);
  cr_assert_str_eq(out, line);
  free(out);
  it_cluster_stop(&c);
}

/* cancel's filters on a listing the controller cut (--max-frame 64K: a
 * few hundred jobs fill it, dropping the oldest first): the cut once hid
 * the running X_0 from the live listing, so the held elements matched by
 * --state pending counted as "every live element" and the array's id
 * cancelled X_0 too. A cut listing is refused; nothing is cancelled. */
Test(jobs, cancel_by_filters_on_a_cut_listing_cancels_nothing, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(
      &c, 1, 1, &(it_options){.traind_args = (const char *const[]){"--max-frame", "64K", NULL}});
  ty_rpc_client *cl = it_client(&c);
  uint64_t x = it_submit_quiet(
      &c, (const char *[]){"--array", "0-999", "-H", "-J", "X", "--wrap", "sleep 300", NULL});
  char e0[48];
  snprintf(e0, sizeof e0, "%llu_0", (unsigned long long)x);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", e0, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, x, ST(RUNNING), 30000), ST(RUNNING));
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(&c, &out, &err,
                           (const char *[]){"cancel", "--name", "X", "--state", "pending", NULL});
  cr_expect_eq(rc, 1, "out: %s err: %s", out, err);
  cr_expect(strstr(err, "nothing was cancelled"), "%s", err);
  free(out), free(err);
  cr_expect_eq(it_job_state(cl, x), ST(RUNNING), "the running element X_0 was cancelled");
  cr_expect_eq(it_job_state(cl, x + 999), ST(PENDING));
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", e0, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `job requeue ARRAY` requeues every element, as scontrol's, also once
 * they ended and left memory (--min-job-age 1 s, --job-cache 1): they come
 * back from the store, and run again. */
Test(jobs, requeue_of_an_ended_array_requeues_elements_gone_from_memory, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2,
                        &(it_options){.traind_args = (const char *const[]){
                                          "--min-job-age", "1", "--job-cache", "1", NULL}});
  ty_rpc_client *cl = it_client(&c);
  char marks[300], script[400];
  snprintf(marks, sizeof marks, "%s/runs", c.dir);
  snprintf(script, sizeof script, "echo $TRAINYARD_ARRAY_TASK_ID >> %s", marks);
  uint64_t id =
      it_submit_cli(&c, (const char *[]){"--array", "1-3", "--", "sh", "-c", script, NULL});
  for (uint64_t k = 0; k < 3; k++)
    cr_assert_eq(it_wait_state(cl, id + k, 0, 30000), ST(COMPLETED));
  it_sleep_ms(3000); /* past --min-job-age: the ended elements leave memory */
  char sid[32], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "requeue", sid, NULL}), 0);
  cr_assert(strstr(out, "3 elements"), "%s", out);
  free(out);
  for (int i = 0; i < 1500 && it_count_lines(marks) < 6; i++)
    it_sleep_ms(20);
  cr_assert_eq(it_count_lines(marks), 6, "each element ran twice (logs in %s)", c.dir);
  for (uint64_t k = 0; k < 3; k++)
    cr_assert_eq(it_wait_state(cl, id + k, 0, 30000), ST(COMPLETED));
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
  /* Each element copies the job: 100000 of a 60 KB one, a 60 KB request,
   * once had traind allocate about 12 GB (TY_ARRAY_MAX_BYTES). */
  char *big = malloc(60001), *big_argv[] = {"true", big};
  memset(big, 'x', 60000);
  big[60000] = '\0';
  cmd.n_argv = 2, cmd.argv = big_argv;
  r.first = 0, r.last = 99999;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.array: 100000 elements of a job of ") &&
                strstr(err, "at most 1024 MiB"),
            "%s", err);
  r.last = 9; /* ten of them are 600 KB: accepted */
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), 0, "%s", err);
  free(big);
  cmd.n_argv = 1, cmd.argv = argv;
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
  /* Job 0 is no job, though every plain job's array id is 0. */
  d.kind = TRAINYARD__DEPENDENCY_KIND__DEP_AFTEROK, target.job_id = 0;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "job.dependencies[0]: job 0 not found"), "%s", err);
  job.n_dependencies = 0;
  job.on_invalid_dependency = 7;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.on_invalid_dependency: 7 is not one"), "%s", err);
  job.on_invalid_dependency = 0;
  Trainyard__ArraySpec empty = TRAINYARD__ARRAY_SPEC__INIT;
  empty.max_running = 2, job.array = &empty;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL, "an empty array: a job");
  cr_assert(strstr(err, "job.array: no task index given"), "%s", err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A reference to element 0 of "array 0" names no job: array id 0 is every
 * plain job's, and GetJob, CancelJob and GetHistory once took it for one
 * of them (CancelJob 0_0 cancelled another user's job). */
Test(jobs, array_zero_names_no_job, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t victim = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  Trainyard__GetJobRequest g = TRAINYARD__GET_JOB_REQUEST__INIT;
  g.job_id = 0, g.has_task = true, g.task = 0;
  uint8_t buf[64];
  size_t n = trainyard__get_job_request__pack(&g, buf);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_JOB, buf, n, 10000, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND, "GetJob 0_0: %d %s", r.status, r.message);
  ty_rpc_result_close(&r);
  Trainyard__JobRef ref = TRAINYARD__JOB_REF__INIT, *refs = &ref;
  ref.job_id = 0, ref.has_task = true, ref.task = 0;
  Trainyard__CancelJobRequest cj = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  cj.n_refs = 1, cj.refs = &refs;
  n = trainyard__cancel_job_request__pack(&cj, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_CANCEL_JOB, buf, n, 10000, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND, "CancelJob 0_0: %d %s", r.status, r.message);
  cr_expect(strstr(r.message, "job 0_0 not found"), "%s", r.message);
  ty_rpc_result_close(&r);
  Trainyard__GetJobResponse *v = it_get_job(cl, victim);
  cr_assert_eq(v->job->state, TRAINYARD__JOB_STATE__JOB_PENDING, "the held job was cancelled");
  trainyard__get_job_response__free_unpacked(v, NULL);
  uint64_t zero = 0;
  Trainyard__GetHistoryRequest h = TRAINYARD__GET_HISTORY_REQUEST__INIT;
  h.n_job_ids = 1, h.job_ids = &zero;
  n = trainyard__get_history_request__pack(&h, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &r), 0);
  cr_assert_eq(r.status, 0, "%s", r.message);
  Trainyard__GetHistoryResponse *hr =
      trainyard__get_history_response__unpack(NULL, r.payload_len, r.payload);
  cr_assert(hr);
  cr_expect_eq(hr->n_jobs, 0u, "history of job 0 lists %zu jobs", hr->n_jobs);
  trainyard__get_history_response__free_unpacked(hr, NULL);
  ty_rpc_result_close(&r);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(jobs, dependencies_on_a_failed_job, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sk, NULL}), 0);
  cr_assert(strstr(out, "Dependency") && strstr(out, dep_ok), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sk, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sa, NULL}), 0);
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

/* Polls job id's reason until it holds `want`; fails the test after 10 s. */
static void wait_reason(ty_rpc_client *cl, uint64_t id, const char *want) {
  char last[512] = "";
  for (int i = 0; i < 500; i++) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    if (r) snprintf(last, sizeof last, "%s", r->job->reason);
    if (r) trainyard__get_job_response__free_unpacked(r, NULL);
    if (strstr(last, want)) return;
    it_sleep_ms(20);
  }
  cr_assert_fail("job %llu never said \"%s\"; it says \"%s\"", (unsigned long long)id, want, last);
}

/* A waiter's reason follows its target's state: RUNNING, then PENDING
 * once the target is requeued (kept pending by a drained node), not the
 * state it had when it last started. */
Test(jobs, a_dependency_reason_follows_a_requeued_target, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char want[96], ids[32], *out = NULL;
  uint64_t target = it_submit_cli(&c, (const char *[]){"--", "sleep", "60", NULL});
  snprintf(ids, sizeof ids, "afterok:%llu", (unsigned long long)target);
  uint64_t waiter = it_submit_cli(&c, (const char *[]){"--dependency", ids, "--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, target, ST(RUNNING), 30000), ST(RUNNING));
  snprintf(want, sizeof want, "Dependency: afterok:%llu(RUNNING)", (unsigned long long)target);
  wait_reason(cl, waiter, want);
  it_trainctl_ok(&c, &out, (const char *[]){"node", "drain", "w1", NULL});
  free(out);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)target);
  it_trainctl_ok(&c, &out, (const char *[]){"job", "requeue", ids, NULL});
  free(out);
  cr_assert_eq(it_wait_state(cl, target, ST(PENDING), 30000), ST(PENDING));
  snprintf(want, sizeof want, "Dependency: afterok:%llu(PENDING)", (unsigned long long)target);
  wait_reason(cl, waiter, want);
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
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", e9, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", NULL}), 0);
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

/* The priority a job's spec has now, through GetJob. */
static int32_t job_priority(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r && r->job && r->job->spec, "job %llu not found", (unsigned long long)id);
  int32_t p = r->job->spec->priority;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return p;
}

/* A change to a whole array of 20,000 elements goes a chunk per loop turn
 * (a 100,000-element one held traind's loop 21-48 s in one, and the workers,
 * their heartbeats unanswered, fenced their tasks): other requests are
 * answered while it runs, seeing its first element changed and its middle
 * and last not yet; an element cancelled meanwhile is counted as ended when
 * its chunk comes; the worker's node stays UP; every other element has the
 * change. */
Test(jobs, a_change_to_a_large_array_goes_in_chunks_answering_others, .timeout = 300) {
  enum { N = 20000 };
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char range[32], sid[32], last[48], log[400];
  snprintf(range, sizeof range, "0-%d", N - 1);
  uint64_t id = it_submit_quiet(
      &c, (const char *[]){"-H", "--command", "--array", range, "--", "true", NULL});
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  snprintf(last, sizeof last, "%s_%d", sid, N - 1);
  cr_assert_neq(job_priority(cl, id), 7);
  snprintf(log, sizeof log, "%s/priority.log", c.dir);
  pid_t pid = it_trainctl_spawn(
      &c, log, (const char *const[]){"--timeout", "200", "job", "priority", sid, "7", NULL});
  bool seen = false;
  int st, rc = -1;
  while (!seen && waitpid(pid, &st, WNOHANG) == 0)
    seen = job_priority(cl, id) == 7 && job_priority(cl, id + N / 2) != 7 &&
           job_priority(cl, id + N - 1) != 7;
  if (seen) {
    cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", last, NULL}), 0);
    rc = it_wait_exit(pid, log, 200000);
  } else {
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  char *text = it_read_text(log);
  cr_assert(seen, "no request was answered while the change ran: %s", text);
  char want[96];
  snprintf(want, sizeof want, "Array %s: priority applied to %d elements", sid, N - 1);
  cr_assert_eq(rc, 0, "%s", text);
  cr_assert(strstr(text, want), "%s", text);
  free(text);
  for (int i = 0; i < N - 1; i += 997)
    cr_assert_eq(job_priority(cl, id + (uint64_t)i), 7, "element %d", i);
  cr_assert_eq(job_priority(cl, id + N - 2), 7);
  cr_assert_eq(it_job_state(cl, id + N - 1), ST(CANCELLED));
  cr_assert_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 1);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
