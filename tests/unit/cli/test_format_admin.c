/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/format_admin.c: `trainctl why`'s start estimate says
 * what it rests on, and is "unknown" with the reason rather than a guess. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_admin.h"

static char *why(const ty_cli_explain *e, int64_t now_ms, bool json) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_explain(e, now_ms, json, &b), 0);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

static ty_cli_explain pending(int kind, int64_t est, bool lower, const char *note) {
  return (ty_cli_explain){.job_id = 9,
                          .state = TY_JOB_PENDING,
                          .reason = "Resources: busy",
                          .position = 2,
                          .pending_total = 3,
                          .nodes_needed = 1,
                          .est_start_ms = est,
                          .est_kind = kind,
                          .est_lower_bound = lower,
                          .est_note = (char *)note,
                          .wait = "Resources",
                          .reserved_job = 7};
}

Test(format_admin, why_estimate_by_kind) {
  const int64_t now = 1000000;
  ty_cli_explain e = pending(TY_CLI_EST_LIMITS, now + 750000, false,
                             "from running jobs' time limits and job 7's reservation");
  char *s = why(&e, now, false);
  cr_assert(strstr(s, "Est. start:  in 12:30 (from running jobs' time limits and job 7's "
                      "reservation)\n"),
            "%s", s);
  cr_assert(strstr(s, "Reservation: held by job 7\n"), "%s", s);
  free(s);
  e = pending(TY_CLI_EST_LIMITS, now + 60000, true, "from running jobs' time limits");
  s = why(&e, now, false);
  cr_assert(strstr(s, "Est. start:  not before 1:00 from now (from running jobs'"), "%s", s);
  free(s);
  e = pending(TY_CLI_EST_PREEMPTION, now + 5000, false,
              "when the jobs preempted for it exit (grace period 60 s)");
  s = why(&e, now, false);
  cr_assert(strstr(s, "Est. start:  in 0:05 (when the jobs preempted for it exit (grace period "
                      "60 s))\n"),
            "%s", s);
  free(s);
  e = pending(TY_CLI_EST_UNKNOWN, 0, false, "none: it depends on job 4, which has no time limit");
  s = why(&e, now, false);
  cr_assert(strstr(s, "Est. start:  unknown: none: it depends on job 4"), "%s", s);
  cr_assert_null(strstr(s, " in "), "%s", s);
  free(s);
  e = pending(TY_CLI_EST_NOW, now, false, "");
  s = why(&e, now, false);
  cr_assert(strstr(s, "Est. start:  now"), "%s", s);
  free(s);
}

Test(format_admin, why_json_carries_the_estimate_fields) {
  ty_cli_explain e = pending(TY_CLI_EST_LIMITS, 5000, true, "from running jobs' time limits");
  char *s = why(&e, 0, true);
  cr_assert(strstr(s, "\"wait\":\"Resources\",\"est_start_ms\":5000,\"est_kind\":\"limits\","
                      "\"est_lower_bound\":true,\"est_note\":\"from running jobs' time limits\""),
            "%s", s);
  free(s);
  e = pending(TY_CLI_EST_UNKNOWN, 0, false, "none while it waits for: Held");
  s = why(&e, 0, true);
  cr_assert(strstr(s, "\"est_kind\":\"unknown\",\"est_lower_bound\":false"), "%s", s);
  free(s);
}

/* why 7_8 names the element as its user did, with its own id beside. */
Test(format_admin, why_names_an_element_as_asked) {
  ty_cli_explain e = pending(TY_CLI_EST_NOW, 0, false, "");
  char *s = why(&e, 0, false);
  cr_assert(!strncmp(s, "Job 9: PENDING\n", 15), "%s", s);
  free(s);
  snprintf(e.name, sizeof e.name, "7_3");
  s = why(&e, 0, false);
  cr_assert(!strncmp(s, "Job 7_3 (id 9): PENDING\n", 24), "%s", s);
  free(s);
}

static char *test_only(const ty_cli_submit_test *t, bool json) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_submit_test(t, json, &b), 0);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

/* submit --test-only: sbatch's line shape, the nodes when they are known,
 * what a later estimate rests on, and why there is none. */
Test(format_admin, test_only_says_when_where_and_why) {
  char *nodes[] = {"n1", "n10"}, when[32];
  ty_cli_submit_test t = {.est_start_ms = 1000000,
                          .est_kind = TY_CLI_EST_NOW,
                          .est_note = "",
                          .queue = "default",
                          .nodes = nodes,
                          .n_nodes = 2,
                          .cpus = 4};
  ty_cli_format_time(1000000, 'T', when, sizeof when);
  char *s = test_only(&t, false), want[160];
  snprintf(want, sizeof want,
           "trainctl: Job would start at %s using 4 CPUs on nodes n1,n10 in queue default\n", when);
  cr_assert_str_eq(s, want);
  free(s);
  t = (ty_cli_submit_test){.est_start_ms = 1000000,
                           .est_kind = TY_CLI_EST_LIMITS,
                           .est_lower_bound = true,
                           .est_note = "from running jobs' time limits",
                           .queue = "q",
                           .cpus = 1};
  s = test_only(&t, false);
  snprintf(want, sizeof want,
           "trainctl: Job would start not before %s using 1 CPUs in queue q (from running jobs' "
           "time limits)\n",
           when);
  cr_assert_str_eq(s, want);
  free(s);
  t = (ty_cli_submit_test){.est_note = "none while it waits for: Held", .queue = "q", .cpus = 1};
  s = test_only(&t, false);
  cr_assert_str_eq(s, "trainctl: Job's start cannot be estimated in queue q: none while it waits "
                      "for: Held\n");
  free(s);
  s = test_only(&t, true);
  cr_assert(strstr(s, "\"test_only\":true,\"est_start_ms\":0,\"est_kind\":\"unknown\""), "%s", s);
  free(s);
}

/* A reason quoting a rank's log (a path the user chose) is shown, never
 * acted on: control bytes come out as $'...' escapes, as ls and show
 * print them. */
Test(format_admin, why_quotes_control_bytes) {
  ty_cli_explain e = {.job_id = 22, .state = TY_JOB_FAILED};
  e.reason = "cannot open /d/\033]0;PWNED\007\033[31mFAKE";
  char *s = why(&e, 0, false);
  cr_assert_null(strchr(s, '\033'), "a raw escape: %s", s);
  cr_assert(strstr(s, "Reason:      $'cannot open /d/\\033]0;PWNED\\a\\033[31mFAKE'\n"), "%s", s);
  free(s);
}

/* trainctl queue's --default-time and --max-time read as submit's --time and
 * Slurm's partition limits (a bare number is minutes), and go to traind as
 * seconds with their unit, which any traind reads alike. */
Test(format_admin, queue_times_are_slurm_time_limits) {
  char *argv[] = {"gpuq",       "--max-time", "120",      "--default-time",
                  "1-00:30:00", "--max-time", "UNLIMITED"};
  ty_cli_queue_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_queue_args(7, argv, true, &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.n_settings, 3);
  cr_assert_str_eq(a.settings[0], "max_time=7200s");
  cr_assert_str_eq(a.settings[1], "default_time=88200s");
  cr_assert_str_eq(a.settings[2], "max_time=0");
  ty_cli_queue_args_close(&a);
  char *bad[] = {"gpuq", "--default-time", "soon"};
  cr_assert_eq(ty_cli_parse_queue_args(3, bad, true, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--default-time: \"soon\" is not a time limit"), "%s", err);
}

/* --allow-groups and --allow-users become the allow_groups and allow_users
 * settings as given; a bad list is a usage error naming the option. */
Test(format_admin, queue_access_options) {
  char *argv[] = {"high", "--allow-groups", "hpc-admins,ml", "--allow-users", "ALL"};
  ty_cli_queue_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_queue_args(5, argv, true, &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.n_settings, 2);
  cr_assert_str_eq(a.settings[0], "allow_groups=hpc-admins,ml");
  cr_assert_str_eq(a.settings[1], "allow_users=ALL");
  ty_cli_queue_args_close(&a);
  char *bad[] = {"high", "--allow-users", "bob,,alice"};
  cr_assert_eq(ty_cli_parse_queue_args(3, bad, true, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--allow-users: \"\" is not a user or group name"), "%s", err);
  char *dup[] = {"high", "--allow-groups", "ml,ml"};
  cr_assert_eq(ty_cli_parse_queue_args(3, dup, true, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--allow-groups: \"ml\" is named twice"), "%s", err);
}

/* queue ls shows who may submit (ALLOW: ALL, or the lists), --json the
 * lists as arrays of names. */
Test(format_admin, queue_ls_shows_the_access_lists) {
  ty_queue_info qs[2] = {{.name = "default", .state = TY_QUEUE_OPEN, .share = 1},
                         {.name = "high", .state = TY_QUEUE_OPEN, .share = 1}};
  snprintf(qs[1].allow_groups, sizeof qs[1].allow_groups, "hpc-admins,ml");
  snprintf(qs[1].allow_users, sizeof qs[1].allow_users, "bob");
  ty_buf out;
  ty_buf_init(&out);
  cr_assert_eq(ty_cli_render_queues(qs, 2, false, &out), 0);
  ty_buf_append(&out, "", 1);
  const char *s = (const char *)out.data;
  cr_assert(strstr(s, "ALLOW\n"), "%s", s);
  cr_assert(strstr(s, "  ALL\n"), "%s", s);
  cr_assert(strstr(s, "  groups=hpc-admins,ml users=bob\n"), "%s", s);
  out.len = 0;
  cr_assert_eq(ty_cli_render_queues(qs, 2, true, &out), 0);
  ty_buf_append(&out, "", 1);
  s = (const char *)out.data;
  cr_assert(strstr(s, "\"allow_groups\":[],\"allow_users\":[]"), "%s", s);
  cr_assert(strstr(s, "\"allow_groups\":[\"hpc-admins\",\"ml\"],\"allow_users\":[\"bob\"]"), "%s",
            s);
  ty_buf_close(&out);
}
