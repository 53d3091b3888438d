/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl history (and ls) checked against what sacct and squeue answer,
 * through a real traind, trainworkerd and the trainctl binary: -u lists
 * and uids, --limit as the newest N jobs, a requeued run in the metrics.
 * Asserts states and text, never
 * wall-clock time.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

static const char *me(void) {
  struct passwd *pw = getpwuid(getuid());
  cr_assert(pw && pw->pw_name);
  return pw->pw_name;
}

/* trainctl ARGS' stdout (the caller frees it); its exit status must be 0. */
static char *ctl_ok(const it_cluster *c, const char *const *args) {
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, args);
  cr_assert_eq(rc, 0, "%s %s: exit %d: %s", args[0], args[1], rc, err);
  free(err);
  return out;
}

/* sacct -u A,B and squeue -u A,B list each user's jobs; a uid names its
 * user; an unknown user is refused (exit 2), as sacct's "Invalid user
 * id". Once a list or a uid matched nothing and an unknown user listed
 * nothing, all with exit 0. */
Test(history_sacct, user_lists_and_uids_as_saccts, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-J", "mine", "--wrap", "true", NULL});
  cr_assert_eq(it_wait_state(cl, id, ST(COMPLETED), 60000), ST(COMPLETED));
  uint64_t live = it_submit_quiet(&c, (const char *[]){"-H", "-J", "held", "--wrap", "true", NULL});
  char list[128], uid[24], want[64];
  snprintf(list, sizeof list, "nobody,%s", me());
  snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
  snprintf(want, sizeof want, "%llu\n%llu\n", (unsigned long long)id, (unsigned long long)live);
  const char *users[] = {list, uid};
  for (size_t i = 0; i < TY_ARRAY_LEN(users); i++) {
    char *out = ctl_ok(&c, (const char *[]){"history", "-u", users[i], "-n", "-o", "id", NULL});
    cr_assert_str_eq(out, want, "history -u %s", users[i]);
    free(out);
    out = ctl_ok(&c, (const char *[]){"ls", "--all", "-u", users[i], "-n", "-o", "id", NULL});
    cr_assert_str_eq(out, want, "ls -u %s", users[i]);
    free(out);
  }
  /* several users: --limit keeps the newest of them all */
  char *out =
      ctl_ok(&c, (const char *[]){"history", "-u", list, "--limit", "1", "-n", "-o", "id", NULL});
  snprintf(want, sizeof want, "%llu\n", (unsigned long long)live);
  cr_assert_str_eq(out, want);
  free(out);
  const char *const cmds[][6] = {{"history", "-u", "nosuchuser-ty", NULL},
                                 {"ls", "-u", "root,nosuchuser-ty", NULL},
                                 {"cancel", "-u", "nosuchuser-ty", NULL}};
  for (size_t i = 0; i < TY_ARRAY_LEN(cmds); i++) {
    char *err = NULL;
    out = NULL;
    cr_assert_eq(it_trainctl_err(&c, &out, &err, cmds[i]), 2, "%s", cmds[i][0]);
    cr_assert(err && strstr(err, "--user: \"nosuchuser-ty\" is not a user here"), "%s: %s",
              cmds[i][0], err);
    free(out), free(err);
  }
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* --limit N is the newest N jobs, live or ended: an older held job does
 * not push out a newer ended one. Once the live jobs filled the answer
 * first: a held job and the newest ended one, the one between dropped. */
Test(history_sacct, limit_is_the_newest_live_or_ended, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t held = it_submit_quiet(&c, (const char *[]){"-H", "-J", "held", "--wrap", "true", NULL});
  uint64_t q[3];
  for (size_t i = 0; i < 3; i++)
    q[i] = it_submit_quiet(&c, (const char *[]){"-J", "q", "--wrap", "true", NULL});
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(it_wait_state(cl, q[i], ST(COMPLETED), 60000), ST(COMPLETED));
  char want[64];
  snprintf(want, sizeof want, "%llu\n%llu\n", (unsigned long long)q[1], (unsigned long long)q[2]);
  char *out = ctl_ok(&c, (const char *[]){"history", "--limit", "2", "-n", "-o", "id", NULL});
  cr_assert_str_eq(out, want, "held job %llu: %s", (unsigned long long)held, out);
  free(out);
  /* with the held job among the newest, both halves give */
  uint64_t last =
      it_submit_quiet(&c, (const char *[]){"-H", "-J", "held2", "--wrap", "true", NULL});
  snprintf(want, sizeof want, "%llu\n%llu\n", (unsigned long long)q[2], (unsigned long long)last);
  out = ctl_ok(&c, (const char *[]){"history", "--limit", "2", "-n", "-o", "id", NULL});
  cr_assert_str_eq(out, want);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A requeued run (job requeue: RUNNING -> PENDING) ended REQUEUED, as
 * sacct names it, in the run metrics, whose series exist from 0. Once it
 * was observed in trainyard_job_run_seconds as state="PENDING" and not
 * counted in trainyard_job_ends_total at all. */
Test(history_sacct, a_requeued_run_ends_requeued_in_the_metrics, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  const char *ends = "trainyard_job_ends_total{queue=\"default\",state=\"REQUEUED\"}";
  const char *runs = "trainyard_job_run_seconds_count{queue=\"default\",state=\"REQUEUED\"}";
  cr_assert_eq(it_metric(c.metrics_port, ends), 0, "the series is there from 0");
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-J", "rq", "--wrap", "sleep 60", NULL});
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  char *out = ctl_ok(&c, (const char *[]){"job", "requeue", sid, NULL});
  free(out);
  for (int i = 0; i < 600 && it_metric(c.metrics_port, ends) != 1; i++)
    it_sleep_ms(50);
  char *scrape = it_http_get_metrics(c.metrics_port);
  cr_assert_eq(it_metric_in(scrape, ends), 1, "%s", strstr(scrape, "trainyard_job_ends_total"));
  free(scrape);
  cr_assert_eq(it_metric(c.metrics_port, runs), 1);
  double pending = it_metric(c.metrics_port,
                             "trainyard_job_run_seconds_count{queue=\"default\",state=\"PENDING\"");
  cr_assert(isnan(pending) || pending == 0, "a run ended PENDING: %g", pending);
  out = ctl_ok(&c, (const char *[]){"cancel", sid, NULL});
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A job pending again after a requeue has not started this run: history
 * (text, -P, --json) and show -o say so as show does, start unknown and
 * elapsed 0. Once history's elapsed grew from the old run's start while
 * the job waited, and show -o printed that start as StartTime. */
Test(history_sacct, a_job_pending_again_has_no_start, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-J", "again", "--wrap", "sleep 60", NULL});
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  /* the node drained, the requeued job waits */
  free(ctl_ok(&c, (const char *[]){"node", "drain", c.name[0], "--reason", "t", NULL}));
  free(ctl_ok(&c, (const char *[]){"job", "requeue", sid, NULL}));
  cr_assert_eq(it_wait_state(cl, id, ST(PENDING), 60000), ST(PENDING));
  it_sleep_ms(1500); /* elapsed would have grown */
  char want[64];
  snprintf(want, sizeof want, "%s|PENDING|Unknown|00:00:00\n", sid);
  char *out = ctl_ok(&c, (const char *[]){"history", "-j", sid, "-P", "-n", "-o",
                                          "JobID,State,Start,Elapsed", NULL});
  cr_assert_str_eq(out, want);
  free(out);
  out = ctl_ok(&c, (const char *[]){"history", "-j", sid, "-n", "-o", "start,elapsed", NULL});
  cr_assert_str_eq(out, "-  0:00\n");
  free(out);
  out = ctl_ok(&c, (const char *[]){"history", "-j", sid, "--json", NULL});
  cr_assert(strstr(out, "\"start_time_ms\":0,") && strstr(out, "\"elapsed_ms\":0,"), "%s", out);
  free(out);
  out = ctl_ok(&c, (const char *[]){"show", "-o", sid, NULL});
  cr_assert(strstr(out, " RunTime=00:00:00 ") && strstr(out, " StartTime=Unknown "), "%s", out);
  free(out);
  free(ctl_ok(&c, (const char *[]){"cancel", sid, NULL}));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* scontrol show job -o ARRAYID prints a line per element, so a script's
 * `grep -c JobState=COMPLETED` counts them; an element's id, its own.
 * Once the array's id printed its first element alone. */
Test(history_sacct, show_oneliner_of_an_array_is_a_line_per_element, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  uint64_t id = it_submit_quiet(
      &c, (const char *[]){"-W", "--array", "1-5:2", "-o", "/dev/null", "--wrap", "true", NULL});
  char sid[24], want[3][96];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  char *out = ctl_ok(&c, (const char *[]){"show", "-o", sid, NULL});
  const char *p = out;
  for (int k = 0; k < 3; k++) {
    snprintf(want[k], sizeof want[k], "ArrayJobId=%s ArrayTaskId=%d ", sid, 1 + 2 * k);
    const char *nl = strchr(p, '\n');
    cr_assert(nl, "line %d missing: %s", k + 1, out);
    const char *hit = strstr(p, want[k]);
    cr_assert(hit && hit < nl && strstr(p, "JobState=COMPLETED") < nl, "line %d: %s", k + 1, out);
    p = nl + 1;
  }
  cr_assert_str_eq(p, "", "three lines: %s", out);
  free(out);
  char elem[40];
  snprintf(elem, sizeof elem, "%s_3", sid);
  out = ctl_ok(&c, (const char *[]){"show", "-o", elem, NULL});
  cr_assert(strstr(out, want[1]) && strchr(out, '\n') == out + strlen(out) - 1, "%s", out);
  free(out);
  it_cluster_stop(&c);
}

/* sacct's ExitCode of a cancelled job: 0:15 when the cancel's SIGTERM
 * killed its running batch step, 0:0 when it was cancelled pending. Once
 * a running one read 0:0, its rank's signal not taken. */
Test(history_sacct, a_running_job_cancelled_exits_with_the_signal, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t run = it_submit_quiet(&c, (const char *[]){"--wrap", "sleep 60", NULL});
  uint64_t held = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  cr_assert_eq(it_wait_state(cl, run, ST(RUNNING), 60000), ST(RUNNING));
  char ids[64], *comma;
  snprintf(ids, sizeof ids, "%llu,%llu", (unsigned long long)run, (unsigned long long)held);
  comma = strchr(ids, ',');
  *comma = '\0'; /* cancel takes ids as words, history -j a list */
  free(ctl_ok(&c, (const char *[]){"cancel", ids, comma + 1, NULL}));
  *comma = ',';
  char *out = NULL;
  for (int i = 0; i < 300; i++) { /* its rank ends at the SIGTERM */
    free(out);
    out = ctl_ok(
        &c, (const char *[]){"history", "-j", ids, "-X", "-P", "-n", "-o", "State,ExitCode", NULL});
    if (!strcmp(out, "CANCELLED|0:15\nCANCELLED|0:0\n")) break;
    it_sleep_ms(100);
  }
  cr_assert_str_eq(out, "CANCELLED|0:15\nCANCELLED|0:0\n");
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A job's end is its last rank's, however it ended: a cancelled job whose
 * rank ignores SIGTERM holds its CPU until the kill grace's SIGKILL
 * (COMPLETING), and its End and Elapsed count that, as a TIMEOUT's do.
 * Once its end stayed at the cancel, before its rank's end, so the rank
 * row outlasted the job's and its CPU time passed Elapsed x CPUs. */
Test(history_sacct, a_cancelled_job_ends_with_its_last_rank, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id =
      it_submit_quiet(&c, (const char *[]){"-J", "stub", "--wrap", "trap '' TERM; sleep 30", NULL});
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  it_sleep_ms(500); /* the trap is set */
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  free(ctl_ok(&c, (const char *[]){"cancel", sid, NULL}));
  cr_assert_eq(it_wait_state(cl, id, ST(CANCELLED), 60000), ST(CANCELLED));
  /* its rank ends at the SIGKILL after the grace (10 s) */
  char *out = NULL;
  for (int i = 0; i < 300; i++) {
    free(out);
    out = ctl_ok(&c, (const char *[]){"ls", "-j", sid, "--all", "-n", "-o", "st", NULL});
    if (!strcmp(out, "CA\n")) break;
    it_sleep_ms(100);
  }
  cr_assert_str_eq(out, "CA\n", "still COMPLETING");
  free(out);
  out = ctl_ok(&c, (const char *[]){"history", "-j", sid, "--ranks", "-P", "-n", "-o",
                                    "JobID,End,Elapsed", NULL});
  char *nl = strchr(out, '\n');
  cr_assert(nl && strchr(nl + 1, '\n'), "a job row and a rank row: %s", out);
  const char *job = strchr(out, '|'), *rank = strchr(nl + 1, '|');
  cr_assert(job && rank && !strncmp(job, rank, (size_t)(nl - job)),
            "the job's End and Elapsed are its rank's: %s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
