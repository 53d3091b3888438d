/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A requeued job and the conditions around it, through a real traind,
 * trainworkerd and the trainctl binary: a job cancelled while it waited
 * on a dependency waits on it again once requeued (never running beside
 * a running afterok parent, nor after a failed one), a requeued
 * singleton waits for a later job of its name that runs (and goes before
 * a later one still pending), and a waiter
 * that found its target's condition never satisfied waits again once the
 * target is requeued; `job release` refuses a held job that ended, which
 * keeps its hold (and its JobHeldUser reason) through a requeue; an
 * `after:` on a requeued job (or array) pending again waits for its next
 * start. Part of
 * the jobs test binary (test_jobs.c, test_jobs_arrays.c); states and
 * reasons are asserted, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

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

/* Runs `trainctl job ACTION ID`, which must succeed. */
static void job_action(const it_cluster *c, const char *action, uint64_t id) {
  char ids[32], *out = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(c, &out, (const char *[]){"job", action, ids, NULL});
  free(out);
}

static void cancel(const it_cluster *c, uint64_t id) {
  char ids[32], *out = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(c, &out, (const char *[]){"cancel", ids, NULL});
  free(out);
}

/* Submits `true` with --dependency KIND:TARGET (and option `extra` set
 * to yes, or none when NULL). */
static uint64_t submit_after(const it_cluster *c, const char *kind, uint64_t target,
                             const char *extra) {
  char dep[64];
  snprintf(dep, sizeof dep, "%s:%llu", kind, (unsigned long long)target);
  if (extra)
    return it_submit_cli(c,
                         (const char *[]){"--dependency", dep, extra, "yes", "--", "true", NULL});
  return it_submit_cli(c, (const char *[]){"--dependency", dep, "--", "true", NULL});
}

/* `job requeue REF` once REF's ranks were killed (a cancelled job is
 * requeued only then); fails the test after 10 s. */
static void requeue_once_ended(const it_cluster *c, const char *ref) {
  char *out = NULL;
  for (int i = 0; i < 100; i++) {
    int rc = it_trainctl(c, &out, (const char *[]){"job", "requeue", ref, NULL});
    free(out);
    if (rc == 0) return;
    it_sleep_ms(100);
  }
  cr_assert_fail("job %s could not be requeued", ref);
}

/* Job id stays `state` over a few scheduling passes (1 s). */
static void stays(ty_rpc_client *cl, uint64_t id, int state) {
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(it_job_state(cl, id), state, "job %llu left state %d", (unsigned long long)id,
                 state);
    it_sleep_ms(100);
  }
}

/* Cancelled while it waited, a job requeued waits again: on its afterok
 * parent still running, and never runs after a parent that failed. A job
 * whose dependency was met (it ran) runs again at once when requeued,
 * as Slurm keeps no satisfied dependency. */
Test(jobs, a_requeued_job_waits_on_its_dependencies_again, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char want[128], reason[512];
  uint64_t parent = it_submit_cli(&c, (const char *[]){"--", "sleep", "60", NULL});
  uint64_t waiter = submit_after(&c, "afterok", parent, NULL);
  cr_assert_eq(it_wait_state(cl, parent, ST(RUNNING), 30000), ST(RUNNING));
  cancel(&c, waiter);
  job_action(&c, "requeue", waiter);
  snprintf(want, sizeof want, "Dependency: afterok:%llu(RUNNING)", (unsigned long long)parent);
  wait_reason(cl, waiter, want);
  stays(cl, waiter, ST(PENDING));

  uint64_t failed = it_submit_cli(&c, (const char *[]){"--", "false", NULL});
  cr_assert_eq(final_state(cl, failed, NULL, 0), ST(FAILED));
  uint64_t orphan = submit_after(&c, "afterok", failed, NULL);
  snprintf(want, sizeof want, "DependencyNeverSatisfied: afterok:%llu(FAILED)",
           (unsigned long long)failed);
  wait_reason(cl, orphan, want);
  cancel(&c, orphan);
  job_action(&c, "requeue", orphan);
  wait_reason(cl, orphan, want);
  stays(cl, orphan, ST(PENDING));

  uint64_t ok = it_submit_cli(&c, (const char *[]){"--", "true", NULL});
  uint64_t ran = submit_after(&c, "afterok", ok, NULL);
  cr_assert_eq(final_state(cl, ran, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  job_action(&c, "requeue", ran);
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 500; i++) { /* its second run ends */
    r = it_get_job(cl, ran);
    if (r && r->job->requeue_count == 1 && r->job->state == ST(COMPLETED)) break;
    if (r) trainyard__get_job_response__free_unpacked(r, NULL), r = NULL;
    it_sleep_ms(20);
  }
  cr_assert(r, "job %llu, whose dependency was met, did not run again once requeued",
            (unsigned long long)ran);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cancel(&c, parent);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* S1 (singleton) completed, S2 of its name and user runs: S1 requeued
 * waits for S2, never running beside it. */
Test(jobs, a_requeued_singleton_waits_for_a_later_job_of_its_name, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char want[128], reason[512];
  const char *const s1_args[] = {"--name", "solo", "--dependency", "singleton", "--", "true", NULL};
  uint64_t s1 = it_submit_cli(&c, s1_args);
  cr_assert_eq(final_state(cl, s1, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  uint64_t s2 = it_submit_cli(&c, (const char *[]){"--name", "solo", "--dependency", "singleton",
                                                   "--", "sleep", "60", NULL});
  cr_assert_eq(it_wait_state(cl, s2, ST(RUNNING), 30000), ST(RUNNING));
  job_action(&c, "requeue", s1);
  snprintf(want, sizeof want, "Dependency: singleton(job %llu RUNNING)", (unsigned long long)s2);
  wait_reason(cl, s1, want);
  stays(cl, s1, ST(PENDING));
  cancel(&c, s2);
  cr_assert_eq(final_state(cl, s1, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* J (singleton) cancelled, L of its name (singleton, afterok:J) found
 * J's end met its singleton; J requeued runs first, being older, and L
 * waits for it: neither waits on the other for ever. A later job held
 * (free to start but for its hold) never holds back an older one
 * requeued either. */
Test(jobs, a_requeued_singleton_goes_before_a_later_pending_one, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char ref[32], want[128], reason[512];
  uint64_t j = it_submit_cli(&c, (const char *[]){"--name", "pipe", "--dependency", "singleton",
                                                  "--", "sleep", "60", NULL});
  cr_assert_eq(it_wait_state(cl, j, ST(RUNNING), 30000), ST(RUNNING));
  char dep[64];
  snprintf(dep, sizeof dep, "singleton,afterok:%llu", (unsigned long long)j);
  uint64_t l = it_submit_cli(
      &c, (const char *[]){"--name", "pipe", "--dependency", dep, "--", "true", NULL});
  cancel(&c, j);
  wait_reason(cl, l, "DependencyNeverSatisfied");
  snprintf(ref, sizeof ref, "%llu", (unsigned long long)j);
  requeue_once_ended(&c, ref);
  cr_assert_eq(it_wait_state(cl, j, ST(RUNNING), 30000), ST(RUNNING),
               "requeued singleton %llu did not run before later %llu", (unsigned long long)j,
               (unsigned long long)l);
  snprintf(want, sizeof want, "singleton(job %llu RUNNING)", (unsigned long long)j);
  wait_reason(cl, l, want);
  cancel(&c, j);
  cancel(&c, l);

  uint64_t done = it_submit_cli(
      &c, (const char *[]){"--name", "solo", "--dependency", "singleton", "--", "true", NULL});
  cr_assert_eq(final_state(cl, done, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  uint64_t held = it_submit_cli(&c, (const char *[]){"--name", "solo", "--dependency", "singleton",
                                                     "-H", "--", "true", NULL});
  job_action(&c, "requeue", done);
  Trainyard__GetJobResponse *r = NULL;
  for (int i = 0; i < 500; i++) { /* its second run ends */
    r = it_get_job(cl, done);
    if (r && r->job->requeue_count == 1 && r->job->state == ST(COMPLETED)) break;
    if (r) snprintf(reason, sizeof reason, "%s", r->job->reason);
    if (r) trainyard__get_job_response__free_unpacked(r, NULL), r = NULL;
    it_sleep_ms(20);
  }
  cr_assert(r, "requeued job %llu did not run again beside held %llu: %s", (unsigned long long)done,
            (unsigned long long)held, reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cancel(&c, held);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* An element cancelled makes afterok on its array never satisfied; the
 * element requeued and completed, every element COMPLETED: the waiter
 * runs. One already cancelled for it (--kill-on-invalid-dep) stays so. */
Test(jobs, a_never_satisfied_dependency_waits_again_when_its_target_is_requeued, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  char ref[48], reason[512];
  uint64_t a = it_submit_cli(&c, (const char *[]){"--array", "0-1", "--", "sleep", "2", NULL});
  uint64_t waiter = submit_after(&c, "afterok", a, NULL);
  uint64_t killed = submit_after(&c, "afterok", a, "--kill-on-invalid-dep");
  snprintf(ref, sizeof ref, "%llu_1", (unsigned long long)a);
  char *out = NULL;
  it_trainctl_ok(&c, &out, (const char *[]){"cancel", ref, NULL});
  free(out);
  wait_reason(cl, waiter, "DependencyNeverSatisfied");
  cr_assert_eq(final_state(cl, killed, NULL, 0), ST(CANCELLED));
  requeue_once_ended(&c, ref);
  cr_assert_eq(final_state(cl, a, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, a + 1, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, waiter, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  cr_assert_eq(it_job_state(cl, killed), ST(CANCELLED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `job release` on an ended held job is refused, as scontrol's, and
 * records nothing: the job keeps its hold. */
Test(jobs, release_of_an_ended_job_is_refused, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char ids[32], want[128], *out = NULL, *err = NULL;
  uint64_t j = it_submit_cli(&c, (const char *[]){"-H", "--", "true", NULL});
  cancel(&c, j);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)j);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *[]){"job", "release", ids, NULL}), 0,
                "%s", out);
  snprintf(want, sizeof want, "job %llu is CANCELLED; only pending jobs can be released",
           (unsigned long long)j);
  cr_assert(strstr(err, want), "%s", err);
  free(out), free(err);
  it_trainctl_ok(&c, &out, (const char *[]){"show", ids, NULL});
  cr_assert(!strstr(out, "released"), "%s", out);
  free(out);
  Trainyard__GetJobResponse *r = it_get_job(cl, j);
  cr_assert(r && r->job->held, "the ended job lost its hold");
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A held job cancelled and requeued is pending held: its reason says so
 * (JobHeldUser), not the requeue, and it does not run. */
Test(jobs, a_requeued_held_job_says_it_is_held, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t j = it_submit_cli(&c, (const char *[]){"-H", "--", "true", NULL});
  cancel(&c, j);
  job_action(&c, "requeue", j);
  wait_reason(cl, j, "JobHeldUser");
  stays(cl, j, ST(PENDING));
  Trainyard__GetJobResponse *r = it_get_job(cl, j);
  cr_assert(r && r->job->held && strstr(r->job->reason, "JobHeldUser"), "%s",
            r ? r->job->reason : "");
  trainyard__get_job_response__free_unpacked(r, NULL);
  job_action(&c, "release", j);
  char reason[512];
  cr_assert_eq(final_state(cl, j, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `after:` holds once its target has begun its current run: a completed
 * job (and an array with a completed element) requeued and pending on
 * Resources behind a job holding every CPU is waited for until it starts
 * again; the waiters then run. */
Test(jobs, after_waits_for_a_requeued_job_to_begin_again, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char want[128], ref[48], reason[512];
  uint64_t a = it_submit_cli(&c, (const char *[]){"--", "true", NULL});
  cr_assert_eq(final_state(cl, a, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  uint64_t arr = it_submit_cli(&c, (const char *[]){"--array", "0-1", "--", "true", NULL});
  cr_assert_eq(final_state(cl, arr, NULL, 0), ST(COMPLETED));
  cr_assert_eq(final_state(cl, arr + 1, NULL, 0), ST(COMPLETED));
  uint64_t busy = it_submit_cli(&c, (const char *[]){"--cpus", "2", "--", "sleep", "60", NULL});
  cr_assert_eq(it_wait_state(cl, busy, ST(RUNNING), 30000), ST(RUNNING));
  job_action(&c, "requeue", a);
  snprintf(ref, sizeof ref, "%llu_1", (unsigned long long)arr);
  requeue_once_ended(&c, ref);
  uint64_t waiter = submit_after(&c, "after", a, NULL);
  uint64_t arr_waiter = submit_after(&c, "after", arr, NULL);
  snprintf(want, sizeof want, "Dependency: after:%llu(PENDING)", (unsigned long long)a);
  wait_reason(cl, waiter, want);
  wait_reason(cl, arr_waiter, "Dependency: after:");
  stays(cl, waiter, ST(PENDING));
  stays(cl, arr_waiter, ST(PENDING));
  cancel(&c, busy);
  cr_assert_eq(final_state(cl, waiter, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  cr_assert_eq(final_state(cl, arr_waiter, reason, sizeof reason), ST(COMPLETED), "%s", reason);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
