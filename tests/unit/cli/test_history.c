/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/fields.c, cli/history.c and the clipping of
 * cli/table.c: --format fields, points in time, history's command line,
 * its text and JSON, node show, and tables fitted to a terminal. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_history.h"

static char *take(ty_buf *b) {
  ty_buf_append(b, "", 1);
  return (char *)b->data;
}

static const ty_cli_field fields[] = {
    {"id", "ID", true, "the id"}, {"name", "NAME", false, "the name"}, {"state", "ST", false, "x"}};

Test(fields, parse_names_in_order_and_refuse_unknown_or_repeated) {
  ty_cli_format f;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_format("--format", "State,id", fields, 3, &f, err, sizeof err), 0);
  cr_assert_eq(f.n, 2);
  cr_assert_eq(f.idx[0], 2);
  cr_assert_eq(f.idx[1], 0);
  cr_assert_eq(ty_cli_parse_format("--format", "id,nope", fields, 3, &f, err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--format: unknown field \"nope\" (one of: id, name, state)");
  cr_assert_eq(ty_cli_parse_format("-o", "id,ID", fields, 3, &f, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "-o: field \"ID\" is named twice");
  cr_assert_eq(ty_cli_parse_format("-o", ",", fields, 3, &f, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "-o: must name a field");
  cr_assert_eq(ty_cli_parse_format("-o", "", fields, 3, &f, err, sizeof err), TY_EINVAL);
  /* sacct's names and width suffixes; a Slurm name whose field this
   * listing lacks stays unknown. */
  cr_assert_eq(
      ty_cli_parse_format("-o", "JobName%20,JOBID,state%5", fields, 3, &f, err, sizeof err), 0,
      "%s", err);
  cr_assert_eq(f.n, 3);
  cr_assert(f.idx[0] == 1 && f.idx[1] == 0 && f.idx[2] == 2);
  cr_assert_eq(ty_cli_parse_format("-o", "MaxRSS", fields, 3, &f, err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_cli_parse_format("-o", "jobid,id", fields, 3, &f, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "-o: field \"id\" is named twice");
}

Test(fields, times_are_relative_absolute_or_refused) {
  const int64_t now = 1800000000000;
  int64_t t = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_time("--since", "now", now, &t, err, sizeof err), 0);
  cr_assert_eq(t, now);
  cr_assert_eq(ty_cli_parse_time("--since", "2h", now, &t, err, sizeof err), 0);
  cr_assert_eq(t, now - 7200000);
  cr_assert_eq(ty_cli_parse_time("--since", "now-15m", now, &t, err, sizeof err), 0);
  cr_assert_eq(t, now - 900000);
  cr_assert_eq(ty_cli_parse_time("--since", "@1700000000", now, &t, err, sizeof err), 0);
  cr_assert_eq(t, 1700000000000);
  int64_t day = 0, minute = 0, second = 0;
  cr_assert_eq(ty_cli_parse_time("--since", "2026-12-01", now, &day, err, sizeof err), 0);
  cr_assert_eq(ty_cli_parse_time("--since", "2026-12-01T00:01", now, &minute, err, sizeof err), 0);
  cr_assert_eq(ty_cli_parse_time("--since", "2026-12-01 00:01:30", now, &second, err, sizeof err),
               0);
  cr_assert_eq(minute - day, 60000);
  cr_assert_eq(second - minute, 30000);
  /* sacct -S's forms: now-N (seconds) or now-N with its unit words, and a
   * time of day at its last past occurrence (today's or yesterday's). */
  cr_assert_eq(ty_cli_parse_time("--since", "now-2hours", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(t, now - 7200000);
  cr_assert_eq(ty_cli_parse_time("--since", "now-90", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(t, now - 90000);
  int64_t clock = 0, noon = 0;
  cr_assert_eq(ty_cli_parse_time("--since", "12:00", now, &clock, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_cli_parse_time("--since", "noon", now, &noon, err, sizeof err), 0, "%s", err);
  cr_assert(clock == noon && clock <= now && now - clock < 86400000, "12:00 is its last past one");
  cr_assert_eq(ty_cli_parse_time("--since", "midnight", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert(t <= now && now - t < 86400000);
  /* sacct's MM/DD[/YY], MM.DD[.YY] and MMDD[YY] with an optional -HH:MM:
   * a ported "-S 120626" is December 6th, not 120626 seconds ago, and a
   * date without its year is its last past one (now is January 2027). */
  int64_t iso = 0, iso_time = 0;
  cr_assert_eq(ty_cli_parse_time("-S", "2026-12-06", now, &iso, err, sizeof err), 0);
  cr_assert_eq(ty_cli_parse_time("-S", "2026-12-06T08:30", now, &iso_time, err, sizeof err), 0);
  static const char *const sacct_days[] = {"12/06/26", "12/06", "120626", "1206", "12.06.26"};
  for (size_t i = 0; i < TY_ARRAY_LEN(sacct_days); i++) {
    cr_assert_eq(ty_cli_parse_time("-S", sacct_days[i], now, &t, err, sizeof err), 0, "%s: %s",
                 sacct_days[i], err);
    cr_assert_eq(t, iso, "%s", sacct_days[i]);
  }
  /* YY is 20YY, as sacct's parse_time reads it (not POSIX %y's 19YY for
   * 69-99): --help says so. */
  int64_t y2069 = 0;
  cr_assert_eq(ty_cli_parse_time("-S", "2069-12-31", now, &y2069, err, sizeof err), 0, "%s", err);
  static const char *const sacct_69[] = {"12/31/69", "12.31.69", "123169"};
  for (size_t i = 0; i < TY_ARRAY_LEN(sacct_69); i++) {
    cr_assert_eq(ty_cli_parse_time("-S", sacct_69[i], now, &t, err, sizeof err), 0, "%s", err);
    cr_assert_eq(t, y2069, "%s is 2069", sacct_69[i]);
  }
  cr_assert_eq(ty_cli_parse_time("-S", "120626-08:30", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(t, iso_time);
  cr_assert_eq(ty_cli_parse_time("-S", "12/06-08:30:00", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(t, iso_time);
  cr_assert_eq(ty_cli_parse_time("-S", "3600", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(t, now - 3600000, "no month 36: still seconds ago");
  static const char *const bad[] = {
      "yesterday",     "",           "2026-13-01", "2026-12-01T25:00", "@x",
      "2026-12-01T10", "now-",       "-5m",        "now-3fortnights",  "13/06",
      "12/32/26",      "12/06/2026", "1206-25:00", "12/06-8:30"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(ty_cli_parse_time("--until", bad[i], now, &t, err, sizeof err), TY_EINVAL, "%s",
                 bad[i]);
    cr_assert(strstr(err, "--until: \"") && strstr(err, "is not a time"), "%s", err);
  }
}

/* A date or time of day that does not exist is refused naming what is
 * wrong: mktime would roll 30 February into March, and H:MM[:SS] is
 * always a time of day, never minutes and seconds ago. */
Test(fields, times_that_do_not_exist_are_refused) {
  const int64_t now = 1800000000000; /* 2027-01-15 */
  int64_t t = 0;
  char err[TY_ERR_LEN] = "";
  static const struct {
    const char *s, *why;
  } bad[] = {{"2026-02-30", "February 2026 has 28 days"},
             {"2027-02-31T00:00", "February 2027 has 28 days"},
             {"2026-04-31", "April 2026 has 30 days"},
             {"2026-12-01T23:60", "minute 60 is not 0-59"},
             {"0230", "February 2027 has 28 days"},
             {"02/30/27", "February 2027 has 28 days"},
             {"11/31", "November 2027 has 30 days"},
             {"1206-25:00", "hour 25 is not 0-23"},
             {"5:99", "minute 99 is not 0-59"},
             {"25:00", "hour 25 is not 0-23"},
             {"12:00:61", "second 61 is not 0-59"}};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(ty_cli_parse_time("-S", bad[i].s, now, &t, err, sizeof err), TY_EINVAL,
                 "accepted %s", bad[i].s);
    cr_assert(strstr(err, "-S: \"") && strstr(err, bad[i].why), "%s: %s", bad[i].s, err);
  }
  cr_assert_eq(ty_cli_parse_time("-S", "2028-02-29", now, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_cli_parse_time("-S", "0228", now, &t, err, sizeof err), 0, "%s", err);
}

static int parse(const char *const *args, ty_cli_history_args *a, char *err) {
  int argc = 0;
  while (args[argc])
    argc++;
  return ty_cli_parse_history(argc, (char **)args, 1800000000000, a, err, TY_ERR_LEN);
}

Test(history_args, defaults_options_and_refusals) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){NULL}, &a, err), 0);
  cr_assert(!a.user && !a.all_users && a.format.n == 13 && a.limit == 0);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-a", "-S", "1h", "-s", "failed,CD", "-j", "4,9", "--ranks",
                                      "--limit", "20", "-o", "id,cputime", "-n", "--json", NULL},
                     &a, err),
               0, "%s", err);
  cr_assert(a.all_users && a.ranks && a.noheader && a.json);
  cr_assert_eq(a.since_ms, 1800000000000 - 3600000);
  cr_assert_eq(a.nstates, 2);
  cr_assert_eq(a.nids, 2);
  cr_assert_eq(a.ids[1], 9);
  cr_assert_eq(a.limit, 20);
  cr_assert_eq(a.format.n, 2);
  ty_cli_history_args_close(&a);
  /* sacct's long names: --allusers, --starttime, --endtime, -r/--partition, -b/--brief */
  cr_assert_eq(parse((const char *[]){"--allusers", "--starttime", "2h", "--endtime", "1h", "-r",
                                      "gpu", "--brief", NULL},
                     &a, err),
               0, "%s", err);
  cr_assert(a.all_users);
  cr_assert_eq(a.since_ms, 1800000000000 - 7200000);
  cr_assert_eq(a.until_ms, 1800000000000 - 3600000);
  cr_assert_str_eq(a.queue, "gpu");
  cr_assert_eq(a.format.n, 3, "--brief is JobID, State, ExitCode");
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"--partition=cpu", "-b", "-o", "id", NULL}, &a, err), 0, "%s",
               err);
  cr_assert_str_eq(a.queue, "cpu");
  cr_assert_eq(a.format.n, 1, "--format wins over --brief");
  ty_cli_history_args_close(&a);
  static const struct {
    const char *args[5];
    const char *says;
  } bad[] = {
      {{"--limit", "0", NULL}, "--limit"},
      {{"-j", "4,0", NULL}, "--job: \"0\" is not a job id"},
      {{"-u", "", NULL}, "--user: must not be empty"},
      {{"extra", NULL}, "unexpected argument \"extra\""},
      {{"-u", "x", "-a", NULL}, "--user and --all-users exclude each other"},
      {{"-S", "1h", "-E", "2h", NULL}, "--until: must be after --since"},
      {{"-E", "1969-12-31T00:00:00", NULL}, "is at or before 1970-01-01 00:00 UTC"},
      /* mktime's (time_t)-1 in UTC: a time, not "no such local time" */
      {{"-E", "1969-12-31T23:59:59", NULL}, "is at or before 1970-01-01 00:00 UTC"},
      {{"-q", "normal", NULL}, "history -q/--qos normal: Trainyard has no QOS"},
      {{"--qos=high", NULL}, "-r/--partition or --queue Q filters by queue"},
  };
  setenv("TZ", "UTC", 1);
  tzset();
  cr_assert_eq(parse((const char *[]){"-S", "1969-12-31T23:59:59", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(a.since_ms, -1000);
  ty_cli_history_args_close(&a);
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(parse(bad[i].args, &a, err), TY_EINVAL, "%s", bad[i].args[0]);
    cr_assert(strstr(err, bad[i].says), "expected \"%s\" in: %s", bad[i].says, err);
  }
}

static ty_cli_record record(uint64_t id, bool measured) {
  ty_cli_record r = {.id = id,
                     .state = TY_JOB_COMPLETED,
                     .start_ms = 1000,
                     .end_ms = 61000,
                     .cpus = 2,
                     .cpu_s = 120,
                     .measured = measured,
                     .mem_peak = measured ? 1 << 20 : 0};
  r.name = strdup("train"), r.user = strdup("alice"), r.queue = strdup(""), r.reason = strdup("");
  r.nodes = strdup("n1");
  return r;
}

Test(history_render, marks_allocated_times_and_lists_ranks) {
  ty_cli_record *rs = calloc(2, sizeof *rs);
  rs[0] = record(7, false), rs[1] = record(8, true);
  rs[0].ranks = calloc(1, sizeof *rs[0].ranks);
  rs[0].ranks[0] = (ty_cli_rank_record){.run = 2,
                                        .rank = 0,
                                        .node = strdup("n1"),
                                        .state = 3,
                                        .start_ms = 1000,
                                        .end_ms = 31000,
                                        .cpus = 2,
                                        .cpu_s = 60};
  rs[0].nranks = 1;
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-o", "id,state,elapsed,cputime,maxmem", NULL}, &a, err), 0);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "ID     STATE      ELAPSED  CPUTIME  MAXMEM\n"
                             "7      COMPLETED     1:00    ~2:00       -\n"
                             "7.0#2  EXITED        0:30    ~1:00       -\n"
                             "8      COMPLETED     1:00     2:00      1M\n"
                             "~ allocated, not measured: elapsed x the CPUs (GPUs) held\n");
  ty_buf_close(&b);
  a.json = true;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 1, &a, 0, 0, &b), 0);
  const char *js = take(&b);
  cr_assert(strstr(js, "{\"id\":7,\"name\":\"train\",\"user\":\"alice\",\"queue\":\"default\""),
            "%s", js);
  cr_assert(strstr(js, "\"elapsed_ms\":60000") && strstr(js, "\"accounting\":\"allocated\""), "%s",
            js);
  cr_assert(strstr(js, "\"ranks\":[{\"run\":2,\"rank\":0,\"node\":\"n1\",\"state\":\"EXITED\""),
            "%s", js);
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  ty_cli_records_free(rs, 2);
}

/* sacct's -P/--parsable2 and -p/--parsable, as scripts read them: cells
 * unpadded with '|' between (and after the last with -p), no note under
 * the table, sacct's names in the header of columns named as sacct names
 * them (a csv.DictReader keys on JobID), ours for ours; -X and --jobs are
 * taken as sacct's. */
Test(history_render, parsable_as_saccts) {
  ty_cli_record *rs = calloc(2, sizeof *rs);
  rs[0] = record(7, false), rs[1] = record(8, true);
  rs[1].state = TY_JOB_FAILED, rs[1].exit_code = 3;
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-X", "--jobs", "7,8", "-P", "-o",
                                      "JobID,State,ExitCode,CPUTime", NULL},
                     &a, err),
               0, "%s", err);
  cr_assert_eq(a.nids, 2u);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 0, &b), 0);
  /* sacct's CPUTime: [D-]HH:MM:SS, the allocation without our '~' */
  cr_assert_str_eq(take(&b), "JobID|State|ExitCode|CPUTime\n"
                             "7|COMPLETED|0:0|00:02:00\n"
                             "8|FAILED|3:0|00:02:00\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-p", "-n", "-o", "id,state", NULL}, &a, err), 0, "%s", err);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 80, &b), 0);
  cr_assert_str_eq(take(&b), "7|COMPLETED|\n8|FAILED|\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-P", "-o", "id,state", NULL}, &a, err), 0, "%s", err);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 1, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "ID|STATE\n7|COMPLETED\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-P", "-b", "-o", "jobid,elapsed%9", NULL}, &a, err), 0);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 1, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "JobID|Elapsed\n7|00:01:00\n"); /* sacct's header and format */
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  /* sacct's MaxRSS in whole KiB (a part rounds up); maxmem keeps 1.2M */
  rs[1].mem_peak = 1184 * 1024 + 1;
  cr_assert_eq(parse((const char *[]){"-P", "-o", "JobID,MaxRSS", NULL}, &a, err), 0, "%s", err);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "JobID|MaxRSS\n7|-\n8|1185K\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-P", "-o", "id,maxmem", NULL}, &a, err), 0, "%s", err);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "ID|MAXMEM\n7|-\n8|1.2M\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  ty_cli_records_free(rs, 2);
}

/* sacct -j takes array elements (12_3) and steps (12.batch: job 12): the
 * request asks for the array, the answer keeps the elements named. */
Test(history_args, jobs_elements_and_steps_as_saccts) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-j", "7_1,9.batch,9.0,10.extern", NULL}, &a, err), 0, "%s",
               err);
  cr_assert_eq(a.nids, 3u, "7, 9 and 10, each once");
  cr_assert(a.ids[0] == 7 && a.ids[1] == 9 && a.ids[2] == 10);
  ty_cli_record *rs = calloc(4, sizeof *rs);
  rs[0] = record(7, true), rs[1] = record(8, true), rs[2] = record(9, true);
  rs[3] = record(10, true);
  rs[0].array_job_id = rs[1].array_job_id = 7, rs[1].array_task_id = 1;
  size_t n = 4;
  ty_cli_history_select(rs, &n, &a);
  cr_assert_eq(n, 3u, "element 7_0 is not asked for");
  cr_assert(rs[0].id == 8 && rs[1].id == 9 && rs[2].id == 10);
  ty_cli_records_free(rs, n);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-j", "9.bogus", NULL}, &a, err), TY_EINVAL);
  cr_assert(strstr(err, "--job: \"9.bogus\" is not"), "%s", err);
  cr_assert_eq(parse((const char *[]){"-j", "7_[1,3].batch,9", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(a.nrefs, 3u, "7_1, 7_3 and 9");
  cr_assert_eq(a.nids, 2u);
  ty_cli_history_args_close(&a);
}

/* sacct's JobIDRaw is an array element's own id, beside its JobID
 * (123_7); once it fell back to JobID, and both together were refused as
 * one field named twice. */
Test(history_render, jobidraw_is_the_elements_own_id) {
  ty_cli_record *rs = calloc(1, sizeof *rs);
  rs[0] = record(8, true);
  rs[0].array_job_id = 7, rs[0].array_task_id = 1;
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-X", "-P", "-o", "JobID,JobIDRaw", NULL}, &a, err), 0, "%s",
               err);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 1, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "JobID|JobIDRaw\n7_1|8\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  ty_cli_records_free(rs, 1);
}

/* sacct --name N,N picks jobs by name; the answer (newest first) is listed
 * by id as sacct lists it, and a job's nodes fold as sacct's NodeList. */
Test(history_args, names_order_and_folded_nodes_as_saccts) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"--name", "", NULL}, &a, err), TY_EINVAL);
  cr_assert_eq(parse((const char *[]){"--name", ",", NULL}, &a, err), TY_EINVAL);
  cr_assert(strstr(err, "--name: must not be empty"), "%s", err);
  cr_assert_eq(
      parse((const char *[]){"--name", "train,eval", "-n", "-o", "id,nodes", NULL}, &a, err), 0,
      "%s", err);
  cr_assert_eq(a.nnames, 2u);
  ty_cli_record *rs = calloc(4, sizeof *rs);
  rs[0] = record(12, true), rs[1] = record(11, true), rs[2] = record(10, true);
  rs[3] = record(9, true);
  free(rs[1].name), rs[1].name = strdup("other");
  free(rs[2].name), rs[2].name = strdup("eval");
  free(rs[0].nodes), rs[0].nodes = strdup("n1,n2,n3,gpu07,n2");
  size_t n = 4;
  ty_cli_history_select(rs, &n, &a);
  cr_assert_eq(n, 3u, "\"other\" is not asked for");
  cr_assert(rs[0].id == 9 && rs[1].id == 10 && rs[2].id == 12, "by id, oldest first");
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, n, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "9   n1\n10  n1\n12  n[1-3],gpu07\n");
  ty_buf_close(&b);
  ty_cli_records_free(rs, n);
  ty_cli_history_args_close(&a);
  /* sacct -N/--nodelist: jobs that ran on any of a hostlist's nodes */
  cr_assert_eq(parse((const char *[]){"-N", "n[3-4]", "--nodelist", "gpu7", NULL}, &a, err), 0,
               "%s", err);
  cr_assert_eq(a.nnodes, 3u);
  rs = calloc(3, sizeof *rs);
  rs[0] = record(1, true), rs[1] = record(2, true), rs[2] = record(3, true);
  free(rs[1].nodes), rs[1].nodes = strdup("n13,n1");
  free(rs[2].nodes), rs[2].nodes = strdup("n2,n3");
  n = 3;
  ty_cli_history_select(rs, &n, &a);
  cr_assert(n == 1 && rs[0].id == 3, "n13 is not n3");
  ty_cli_records_free(rs, n);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-N", "n[2-1]", NULL}, &a, err), TY_EINVAL);
  cr_assert(strstr(err, "-N/--nodelist: "), "%s", err);
}

/* Cgroups measure CPU time and memory, never GPUs: GPU time held is always
 * marked allocated, even on a measured job; none held is a plain 0. */
Test(history_render, gpu_time_is_always_allocated) {
  ty_cli_record *rs = calloc(2, sizeof *rs);
  rs[0] = record(7, true), rs[1] = record(8, true);
  rs[0].gpu_s = 30;
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-o", "id,cputime,gputime", NULL}, &a, err), 0);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, 2, &a, 0, 0, &b), 0);
  cr_assert_str_eq(take(&b), "ID  CPUTIME  GPUTIME\n"
                             "7      2:00    ~0:30\n"
                             "8      2:00     0:00\n"
                             "~ allocated, not measured: elapsed x the CPUs (GPUs) held\n");
  ty_buf_close(&b);
  ty_cli_history_args_close(&a);
  ty_cli_records_free(rs, 2);
}

Test(table, clips_text_columns_to_the_width_and_drops_the_header) {
  const char *hdr[] = {"ID", "NAME", "REASON"};
  const bool right[] = {true, false, false};
  ty_cli_table *t = ty_cli_table_create(hdr, right, 3);
  cr_assert_eq(ty_cli_table_add(t, (const char *[]){"12345", "a-rather-long-name", "Resources"}),
               0);
  ty_buf b;
  ty_buf_init(&b);
  /* 5 + 2 + 18 + 2 + 9 = 36 wide; 26 takes 10 from NAME, the widest. */
  ty_cli_table_opts o = {.max_width = 26};
  cr_assert_eq(ty_cli_table_render_opts(t, &o, &b), 0);
  cr_assert_str_eq(take(&b), "   ID  NAME      REASON\n"
                             "12345  a-rathe+  Resources\n");
  ty_buf_close(&b);
  /* Narrower than any clipping allows: text columns stop at 4, numbers whole. */
  o = (ty_cli_table_opts){.noheader = true, .max_width = 5};
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_table_render_opts(t, &o, &b), 0);
  cr_assert_str_eq(take(&b), "12345  a-r+  Res+\n");
  ty_buf_close(&b);
  ty_cli_table_destroy(t);
}

Test(node_show, text_and_json_with_events) {
  ty_cli_node nd = {.name = "n1",
                    .io_addr = "127.0.0.1:1",
                    .reason = "",
                    .topology = "",
                    .state = 1,
                    .cpus = 4,
                    .memory = 1 << 30,
                    .last_heartbeat_ms = 5000};
  ty_cli_node_event ev[] = {
      {.time_ms = 0, .from = 0, .to = 1, .action = "register", .reason = "", .actor = "node:n1"},
      {.time_ms = 0,
       .from = 1,
       .to = 4,
       .action = "drain",
       .reason = "bad fan",
       .actor = "user:alice"}};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, ev, 2, 6000, false, &b), 0);
  const char *s = take(&b);
  cr_assert(strstr(s, "Node n1: UP\n") && strstr(s, "last heartbeat 0:01 ago"), "%s", s);
  cr_assert(strstr(s, "drain     UP -> DRAINED  user:alice  bad fan\n"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, ev, 2, 6000, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "{\"time_ms\":0,\"from\":\"UP\",\"to\":\"DRAINED\",\"action\":\"drain\","
                      "\"reason\":\"bad fan\",\"actor\":\"user:alice\"}"),
            "%s", s);
  cr_assert(strstr(s, "\"version\":\"\""), "%s", s);
  ty_buf_close(&b);
}

/* The node's switch group (switch.* of traind's config), as Slurm's
 * topology shows it; (none) when it is in none. */
Test(node_show, switch_of_the_node) {
  ty_cli_node nd = {
      .name = "n1", .io_addr = "127.0.0.1:1", .reason = "", .topology = "", .state = 1};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, false, &b), 0);
  const char *s = take(&b);
  cr_assert(strstr(s, "\n  Switch=(none)\n"), "%s", s);
  ty_buf_close(&b);
  nd.switch_name = "rack1";
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\n  Switch=rack1\n"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"switch\":\"rack1\""), "%s", s);
  ty_buf_close(&b);
}

/* The worker's build, as it registered (Slurm's Version=); an older worker
 * sends none. */
Test(node_show, version_of_the_worker) {
  ty_cli_node nd = {
      .name = "n1", .io_addr = "127.0.0.1:1", .reason = "", .topology = "", .state = 1};
  const char *s;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\n  Version=unknown\n"), "%s", s);
  ty_buf_close(&b);
  nd.version = "v0.2.0-3-g1a2b3c4";
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\n  Version=v0.2.0-3-g1a2b3c4\n"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_show(&nd, NULL, 0, 6000, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"version\":\"v0.2.0-3-g1a2b3c4\""), "%s", s);
  ty_buf_close(&b);
}

/* ---- ls: --format, --sort, --noheader, --since ---------------------------------------- */

static ty_cli_jobinfo ls_job(uint64_t id, const char *name, int32_t pri, double prio, int state) {
  ty_cli_jobinfo j = {.id = id, .state = state, .reason = "", .priority = prio};
  j.spec.name = (char *)name, j.spec.user = "alice", j.spec.queue = "";
  j.spec.priority = pri, j.spec.nodes = 2, j.spec.tasks_per_node = 2, j.spec.cpus_per_task = 3;
  j.spec.gpus_per_node = 1, j.spec.time_limit_s = 3600;
  return j;
}

static int parse_ls(const char *const *args, ty_cli_ls_args *a, char *err) {
  int argc = 0;
  while (args[argc])
    argc++;
  return ty_cli_parse_ls(argc, (char **)args, a, err, TY_ERR_LEN);
}

Test(ls_format, fields_sort_and_noheader) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-o", "id,name,priority,cpus,gpus,timelimit,held", "-S",
                                         "-priority,name", "-n", "--since", "@1700000000", NULL},
                        &a, err),
               0, "%s", err);
  cr_assert(a.noheader);
  cr_assert_eq(a.since_ms, 1700000000000);
  cr_assert_eq(a.sort.keys.n, 2);
  cr_assert(a.sort.desc[0] && !a.sort.desc[1]);
  ty_cli_jobinfo js[3] = {ls_job(1, "b", 0, 0.25, TY_JOB_PENDING),
                          ls_job(2, "a", 0, 0.5, TY_JOB_PENDING),
                          ls_job(3, "c", 0, 0.25, TY_JOB_PENDING)};
  js[2].held = true;
  cr_assert_eq(ty_cli_sort_jobs(js, 3, &a.sort, 0), 0);
  cr_assert_eq(js[0].id, 2);
  cr_assert_eq(js[1].id, 1); /* equal priority: by name */
  cr_assert_eq(js[2].id, 3);
  ty_cli_table_opts o = {.noheader = a.noheader};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_table(js, 3, 0, true, &a.format, &o, &b), 0);
  cr_assert_str_eq(take(&b), "2  a  0.5000  12  2  1:00:00  no\n"
                             "1  b  0.2500  12  2  1:00:00  no\n"
                             "3  c  0.2500  12  2  1:00:00  yes\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
  /* squeue -S takes its -o codes: "-p,j" is -priority,name. */
  cr_assert_eq(parse_ls((const char *[]){"-S", "-p,j", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(a.sort.keys.n, 2);
  cr_assert(a.sort.desc[0] && !a.sort.desc[1]);
  ty_cli_sort by_name = a.sort;
  ty_cli_ls_args_close(&a);
  cr_assert_eq(parse_ls((const char *[]){"-S", "-priority,name", NULL}, &a, err), 0, "%s", err);
  cr_assert(a.sort.keys.n == 2 && a.sort.keys.idx[0] == by_name.keys.idx[0] &&
                a.sort.keys.idx[1] == by_name.keys.idx[1],
            "-p,j is not -priority,name");
  ty_cli_ls_args_close(&a);
  cr_assert_eq(parse_ls((const char *[]){"--sort", "E,E,E,E,E,E,E,E", NULL}, &a, err), TY_EINVAL);
  cr_assert(strstr(err, "field \"dependency\" is named twice"), "%s", err);
  /* squeue -t all: every state, as --all (not a filter of none). */
  cr_assert_eq(parse_ls((const char *[]){"-t", "ALL", NULL}, &a, err), 0, "%s", err);
  cr_assert(a.all && a.nstates == 0);
  ty_cli_ls_args_close(&a);
  /* Without --format: ls's historical columns. */
  cr_assert_eq(parse_ls((const char *[]){NULL}, &a, err), 0);
  cr_assert_eq(a.format.n, 9);
  cr_assert_eq(a.sort.keys.n, 0);
  ty_cli_ls_args_close(&a);
  static const struct {
    const char *args[3];
    const char *says;
  } bad[] = {
      {{"--format", "id,colour", NULL}, "--format: unknown field \"colour\""},
      {{"--sort", "-bogus", NULL}, "--sort: unknown field \"bogus\""},
      {{"--sort", "id,-id", NULL}, "--sort: field \"id\" is named twice"},
      {{"--since", "soon", NULL}, "--since: \"soon\" is not a time"},
      {{"--start", NULL}, "squeue --start) is trainctl why ID"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(parse_ls(bad[i].args, &a, err), TY_EINVAL, "%s", bad[i].args[1]);
    cr_assert(strstr(err, bad[i].says), "expected \"%s\" in: %s", bad[i].says, err);
  }
}

/* An entry the controller folded (ListJobs' fold_arrays) prints its task
 * list; the client folds elements that come one by one to the same label. */
Test(ls_format, folded_arrays_label) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-o", "id,state", "-n", NULL}, &a, err), 0, "%s", err);
  ty_cli_jobinfo js[3] = {ls_job(7, "x", 0, 0, TY_JOB_PENDING),
                          ls_job(20, "y", 0, 0, TY_JOB_PENDING),
                          ls_job(21, "y", 0, 0, TY_JOB_PENDING)};
  js[0].array_job_id = 7, js[0].array_folded = "0-2,5";
  js[1].array_job_id = js[2].array_job_id = 19;
  js[1].array_task_id = 1, js[2].array_task_id = 2;
  ty_cli_table_opts o = {.noheader = true};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_table(js, 3, 0, true, &a.format, &o, &b), 0);
  cr_assert_str_eq(take(&b), "7_[0-2,5]  PENDING\n"
                             " 19_[1-2]  PENDING\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
}

/* squeue's %A (the element's own id), %F (its array's) and %K (its index,
 * the folded range, N/A for no array), as array scripts read them. */
Test(ls_format, squeue_array_codes) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-o", "%.18i %A %F %.5K", "-n", NULL}, &a, err), 0, "%s",
               err);
  ty_cli_jobinfo js[4] = {
      ls_job(7, "x", 0, 0, TY_JOB_PENDING), ls_job(20, "y", 0, 0, TY_JOB_RUNNING),
      ls_job(21, "y", 0, 0, TY_JOB_PENDING), ls_job(22, "y", 0, 0, TY_JOB_PENDING)};
  js[1].array_job_id = js[2].array_job_id = js[3].array_job_id = 19;
  js[1].array_task_id = 1, js[2].array_task_id = 2, js[3].array_task_id = 3;
  ty_cli_table_opts o = {.noheader = true, .delim = '|'};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_table(js, 4, 0, true, &a.format, &o, &b), 0);
  cr_assert_str_eq(take(&b), "7|7|7|N/A\n19_1|20|19|1\n19_[2-3]|21|19|2-3\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
  cr_assert_eq(parse_ls((const char *[]){"-O", "JobIDRaw,ArrayJobID,ArrayTaskID:8", NULL}, &a, err),
               0, "%s", err);
  cr_assert_eq(a.format.n, 3u);
  ty_cli_ls_args_close(&a);
}

/* squeue's -j/--jobs and --name: ids (an array's names its elements, 12_3
 * one element, a raw element id itself) and names, both given = both must
 * match; the jobs not selected are closed. */
static ty_cli_jobinfo sel_job(uint64_t id, const char *name, uint64_t array, uint32_t task) {
  ty_cli_jobinfo j = {.id = id, .array_job_id = array, .array_task_id = task};
  j.reason = ty_strdup(""), j.spec.name = ty_strdup(name);
  return j;
}

static size_t selected_ids(const char *const *args, uint64_t *ids) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls(args, &a, err), 0, "%s", err);
  ty_cli_jobinfo js[5] = {sel_job(1, "train", 0, 0), sel_job(2, "eval", 0, 0),
                          sel_job(3, "sweep", 3, 0), sel_job(4, "sweep", 3, 1),
                          sel_job(5, "sweep", 3, 2)};
  /* job 1 runs on n1 and n2, element 3_0 on n3; the others are pending */
  js[0].nodes = ty_xrealloc(NULL, 2 * sizeof *js[0].nodes), js[0].nnodes = 2;
  js[0].nodes[0] = ty_strdup("n1"), js[0].nodes[1] = ty_strdup("n2");
  js[2].nodes = ty_xrealloc(NULL, sizeof *js[2].nodes), js[2].nnodes = 1;
  js[2].nodes[0] = ty_strdup("n3");
  /* job 2 in queue gpu, element 3_1 in cpu, the others in default */
  js[1].spec.queue = ty_strdup("gpu"), js[3].spec.queue = ty_strdup("cpu");
  size_t n = 5;
  ty_cli_ls_select(js, &n, &a);
  for (size_t i = 0; i < n; i++) {
    ids[i] = js[i].id;
    ty_cli_jobinfo_close(&js[i]);
  }
  ty_cli_ls_args_close(&a);
  return n;
}

/* squeue's %t: the compact state a script compares with "R" or "PD". */
Test(ls_format, compact_state_as_squeues_t) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-n", "-o", "%i %t %T", NULL}, &a, err), 0, "%s", err);
  ty_cli_jobinfo js[4] = {
      ls_job(1, "a", 0, 0, TY_JOB_PENDING), ls_job(2, "b", 0, 0, TY_JOB_RUNNING),
      ls_job(3, "c", 0, 0, TY_JOB_TIMEOUT), ls_job(4, "d", 0, 0, TY_JOB_OUT_OF_MEMORY)};
  ty_cli_table_opts o = {.noheader = a.noheader};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_table(js, 4, 0, false, &a.format, &o, &b), 0);
  cr_assert_str_eq(take(&b), "1  PD   PENDING\n"
                             "2  R    RUNNING\n"
                             "3  TO   TIMEOUT\n"
                             "4  OOM  OUT_OF_MEMORY\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
}

/* squeue -o's format is printed as squeue prints it, so scripts that split
 * on its text (IFS='|', cut -d' ') or compare %r ("Dependency") work: the
 * text between codes kept, widths applied (cut to them), none without;
 * %r a pending job's reason name, %R it in parentheses or a job's nodes. A
 * later list of names is a table again. */
Test(ls_format, squeue_format_printed_as_squeues) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-o", "%i|%t|%r|%R|%.6j|%4u.", NULL}, &a, err), 0, "%s",
               err);
  cr_assert_str_eq(a.squeue_format, "%i|%t|%r|%R|%.6j|%4u.");
  char *nodes[] = {"n1", "n2"};
  ty_cli_jobinfo js[4] = {
      ls_job(1, "train", 0, 0, TY_JOB_RUNNING), ls_job(2, "eval-long", 0, 0, TY_JOB_PENDING),
      ls_job(3, "h", 0, 0, TY_JOB_PENDING), ls_job(4, "f", 0, 0, TY_JOB_FAILED)};
  js[0].nodes = nodes, js[0].nnodes = 2;
  js[1].reason = "Dependency: afterok:1(RUNNING) (position 1)";
  js[2].reason = "Held: until released (trainctl job release)";
  js[3].reason = "rank 0 exited with code 3";
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(js, 4, 0, false, a.squeue_format, false, &b), 0);
  cr_assert_str_eq(take(&b), "JOBID|ST|REASON|NODELIST(REASON)|  NAME|USER.\n"
                             "1|R|None|n[1-2]| train|alic.\n"
                             "2|PD|Dependency|(Dependency)|eval-l|alic.\n"
                             "3|PD|JobHeldUser|(JobHeldUser)|     h|alic.\n"
                             "4|F|None||     f|alic.\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
  /* %E: squeue's (null) when the job waits for nothing */
  cr_assert_eq(parse_ls((const char *[]){"-h", "-o", "%i %E", NULL}, &a, err), 0, "%s", err);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(js, 1, 0, false, a.squeue_format, true, &b), 0);
  cr_assert_str_eq(take(&b), "1 (null)\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
  cr_assert_eq(parse_ls((const char *[]){"-o", "%i", "-o", "id,state", NULL}, &a, err), 0);
  cr_assert_null(a.squeue_format);
  ty_cli_ls_args_close(&a);
}

/* squeue's %L, the time left (a common alias's column): the limit less
 * the run time so far, a pending job's whole limit, 0:00 once past it,
 * UNLIMITED without one; `-O TimeLeft`'s field is timeleft. It was once
 * refused, "squeue's %L has no counterpart". */
Test(ls_format, squeue_time_left) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse_ls((const char *[]){"-o", "%i %.9L|%t", NULL}, &a, err), 0, "%s", err);
  ty_cli_jobinfo js[4] = {
      ls_job(1, "run", 0, 0, TY_JOB_RUNNING), ls_job(2, "wait", 0, 0, TY_JOB_PENDING),
      ls_job(3, "late", 0, 0, TY_JOB_RUNNING), ls_job(4, "free", 0, 0, TY_JOB_RUNNING)};
  const int64_t now = 10000000;
  js[0].start_ms = now - 600000;                            /* 10 of its 60 minutes run */
  js[2].start_ms = now - 3700000;                           /* past its limit, being killed */
  js[3].start_ms = now - 5000, js[3].spec.time_limit_s = 0; /* no limit */
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(js, 4, now, false, a.squeue_format, false, &b), 0);
  cr_assert_str_eq(take(&b), "JOBID TIME_LEFT|ST\n"
                             "1     50:00|R\n"
                             "2   1:00:00|PD\n"
                             "3      0:00|R\n"
                             "4 UNLIMITED|R\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
}

/* cancel's filters (scancel -t PD, -n NAME): an array whose every live
 * element matches is one ref, its id, however many elements it has (one
 * CancelJob holds at most 1024 refs); an array of which only some match
 * is named element by element, a job alone by its id; --name filters. */
Test(ls_format, cancel_refs_fold_arrays_whose_live_elements_all_match) {
  enum { N = 1100 };
  ty_cli_jobinfo *js = ty_xcalloc(N + 4, sizeof *js), *live = ty_xcalloc(N + 5, sizeof *live);
  for (uint32_t t = 0; t < N; t++)
    js[t] = sel_job(100 + t, "big", 100, t), live[t] = sel_job(100 + t, "big", 100, t);
  js[N] = sel_job(7, "one", 0, 0), live[N] = sel_job(7, "one", 0, 0);
  /* array 50: elements 0 and 1 pending (matched), 2 running (not) */
  js[N + 1] = sel_job(50, "part", 50, 0), live[N + 1] = sel_job(50, "part", 50, 0);
  js[N + 2] = sel_job(51, "part", 50, 1), live[N + 2] = sel_job(51, "part", 50, 1);
  live[N + 3] = sel_job(52, "part", 50, 2);
  js[N + 3] = sel_job(60, "gone", 60, 0); /* ended since: not live */
  live[N + 4] = sel_job(8, "big", 0, 0);
  ty_job_ref *refs = ty_xcalloc(N + 4, sizeof *refs);
  size_t n = ty_cli_cancel_refs(js, N + 4, NULL, live, N + 5, false, refs);
  cr_assert_eq(n, 5u);
  cr_assert(refs[0].id == 100 && !refs[0].has_task, "the whole array, once");
  cr_assert(refs[1].id == 7 && !refs[1].has_task);
  cr_assert(refs[2].id == 50 && refs[2].has_task && refs[2].task == 0);
  cr_assert(refs[3].id == 50 && refs[3].has_task && refs[3].task == 1);
  cr_assert(refs[4].id == 60 && refs[4].has_task && refs[4].task == 0);
  n = ty_cli_cancel_refs(js, N + 4, "big", live, N + 5, false, refs);
  cr_assert_eq(n, 1u, "--name big");
  cr_assert(refs[0].id == 100 && !refs[0].has_task);
  n = ty_cli_cancel_refs(js, N, NULL, NULL, 0, false, refs);
  cr_assert_eq(n, (size_t)N, "no live list: element by element");
  ty_cli_jobinfos_free(js, N + 4);
  ty_cli_jobinfos_free(live, N + 5);
  free(refs);
}

/* An array is folded by which elements match, not by how many: array 100's
 * element 0 runs (not matched by --state pending) while 1 and 2 wait; a
 * live listing as many long but without element 0 (cut: the controller
 * drops the oldest first) must not fold it, nor one that holds another
 * element in its place. */
Test(ls_format, cancel_refs_fold_by_identity_never_on_a_cut_listing) {
  ty_cli_jobinfo js[2] = {sel_job(101, "X", 100, 1), sel_job(102, "X", 100, 2)};
  ty_cli_jobinfo live[2] = {sel_job(101, "X", 100, 1), sel_job(102, "X", 100, 2)};
  ty_job_ref refs[2];
  size_t n = ty_cli_cancel_refs(js, 2, NULL, live, 2, true, refs);
  cr_assert_eq(n, 2u, "a cut live listing: element by element");
  cr_assert(refs[0].id == 100 && refs[0].has_task && refs[0].task == 1);
  cr_assert(refs[1].id == 100 && refs[1].has_task && refs[1].task == 2);
  ty_cli_jobinfo_close(&live[1]);
  live[1] = sel_job(100, "X", 100, 0); /* two live, two matched, not the same */
  n = ty_cli_cancel_refs(js, 2, NULL, live, 2, false, refs);
  cr_assert_eq(n, 2u, "element 0 is live and not matched");
  cr_assert(refs[0].has_task && refs[1].has_task);
  n = ty_cli_cancel_refs(js, 2, NULL, js, 2, false, refs);
  cr_assert_eq(n, 1u, "every live element matched: the array's id");
  cr_assert(refs[0].id == 100 && !refs[0].has_task);
  for (size_t i = 0; i < 2; i++)
    ty_cli_jobinfo_close(&js[i]), ty_cli_jobinfo_close(&live[i]);
}

Test(ls_format, jobs_and_name_select_as_squeues) {
  uint64_t ids[5];
  cr_assert_eq(selected_ids((const char *const[]){"-j", "2,3_1", NULL}, ids), 2);
  cr_assert(ids[0] == 2 && ids[1] == 4, "%lu %lu", (unsigned long)ids[0], (unsigned long)ids[1]);
  cr_assert_eq(selected_ids((const char *const[]){"--jobs=3", NULL}, ids), 3,
               "the array's elements");
  cr_assert_eq(selected_ids((const char *const[]){"-j", "5", NULL}, ids), 1, "a raw element id");
  cr_assert_eq(ids[0], 5);
  cr_assert_eq(selected_ids((const char *const[]){"-j", "3_[0-1]", NULL}, ids), 2);
  cr_assert_eq(selected_ids((const char *const[]){"-j", "3_[0,2],1", NULL}, ids), 3,
               "a comma inside brackets lists elements");
  cr_assert_eq(selected_ids((const char *const[]){"--name", "eval,train", NULL}, ids), 2);
  cr_assert(ids[0] == 1 && ids[1] == 2);
  cr_assert_eq(selected_ids((const char *const[]){"--name", "sweep", "-j", "1,5", NULL}, ids), 1);
  cr_assert_eq(ids[0], 5, "both filters must match");
  cr_assert_eq(selected_ids((const char *const[]){NULL}, ids), 5, "no filter: every job");
  /* squeue's -w/--nodelist: jobs on any of the nodes, a hostlist */
  cr_assert_eq(selected_ids((const char *const[]){"-w", "n[2-3]", NULL}, ids), 2);
  cr_assert(ids[0] == 1 && ids[1] == 3);
  cr_assert_eq(selected_ids((const char *const[]){"--nodelist=n3", "--name", "train", NULL}, ids),
               0);
  /* squeue's -p list: jobs in any of the queues ("" is default) */
  cr_assert_eq(selected_ids((const char *const[]){"-p", "gpu,cpu", NULL}, ids), 2);
  cr_assert(ids[0] == 2 && ids[1] == 4);
  cr_assert_eq(selected_ids((const char *const[]){"--partition=default,gpu", NULL}, ids), 4);
  cr_assert(ids[0] == 1 && ids[1] == 2 && ids[2] == 3 && ids[3] == 5);
  cr_assert_eq(selected_ids((const char *const[]){"-p", "cpu", NULL}, ids), 1);
  cr_assert_eq(ids[0], 4);

  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_neq(parse_ls((const char *const[]){"-j", "12,x", NULL}, &a, err), 0);
  cr_assert(strstr(err, "--jobs: \"x\" is not a job id"), "%s", err);
  cr_assert_neq(parse_ls((const char *const[]){"-w", "n[3-1]", NULL}, &a, err), 0);
  cr_assert(strstr(err, "-w/--nodelist: ") && strstr(err, "n[3-1]"), "%s", err);
  cr_assert_neq(parse_ls((const char *const[]){"--jobs=", NULL}, &a, err), 0);
  cr_assert(strstr(err, "--jobs: must not be empty"), "%s", err);
  cr_assert_neq(parse_ls((const char *const[]){"-j", "12,", NULL}, &a, err), 0);
  cr_assert(strstr(err, "--jobs: an empty job id in \"12,\""), "%s", err);
  cr_assert_neq(parse_ls((const char *const[]){"--name", ",", NULL}, &a, err), 0);
  cr_assert(strstr(err, "--name: must not be empty"), "%s", err);
}
