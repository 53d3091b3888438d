/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Accounting (issue 15) through a real traind, a real trainworkerd and the
 * trainctl binary: `trainctl history` answers ended jobs from the store
 * (with their ranks, exit codes, nodes and allocation-based CPU time,
 * labelled as such) and live ones from memory, before and after a
 * controller restart; `job update --time` and `job requeue` are recorded
 * in the job's history with who made them; `node show` lists a node's
 * events (registration, drain, resume) with the reason and who. Every
 * refusal (bad options, bad requests straight to the controller) is
 * checked too. Asserts states and text, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

static const char *me(void) {
  struct passwd *pw = getpwuid(getuid());
  cr_assert(pw && pw->pw_name);
  return pw->pw_name;
}

/* trainctl ARGS: exit status; stdout in *out (may be NULL), stderr kept. */
static int ctl_err(const it_cluster *c, char **out, char **err, const char *const *args) {
  return it_trainctl_err(c, out, err, args);
}

/* The one JSON line of `out` that is job `id`'s record (a copy), or NULL. */
static char *json_line(const char *out, uint64_t id) {
  char key[48];
  snprintf(key, sizeof key, "{\"id\":%llu,", (unsigned long long)id);
  const char *p = strstr(out, key);
  if (!p) return NULL;
  const char *e = strchr(p, '\n');
  return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

static void id_str(uint64_t id, char *buf) {
  snprintf(buf, 24, "%llu", (unsigned long long)id);
}

/* Job a ran two ranks on the worker and COMPLETED, job b exited 3. */
static void check_records(const it_cluster *c, uint64_t a, uint64_t b) {
  char *out = NULL;
  /* Ended as it_wait_state saw them: history has them, stored or not yet. */
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"history", "--json", "--ranks", NULL}), 0);
  char *la = json_line(out, a), *lb = json_line(out, b);
  cr_assert(la && lb, "history lacks %llu or %llu:\n%s", (unsigned long long)a,
            (unsigned long long)b, out);
  cr_assert(strstr(la, "\"state\":\"COMPLETED\"") && strstr(la, "\"name\":\"acct-ok\""), "%s", la);
  /* CPU time and memory from the ranks' cgroups where the worker has them. */
  bool measured = it_worker_has_cgroups(c);
  cr_assert(strstr(la, measured ? "\"accounting\":\"measured\"" : "\"accounting\":\"allocated\""),
            "%s", la);
  cr_assert(strstr(la, "\"cpus\":2"), "%s", la);
  if (measured) cr_assert(!strstr(la, "\"mem_peak_bytes\":0,"), "%s", la);
  cr_assert(strstr(la, "\"rank\":0") && strstr(la, "\"rank\":1"), "%s", la);
  char node[64];
  snprintf(node, sizeof node, "\"nodes\":\"%s\"", c->name[0]);
  cr_assert(strstr(la, node), "%s", la);
  cr_assert(strstr(lb, "\"state\":\"FAILED\"") && strstr(lb, "\"exit_code\":3"), "%s", lb);
  free(la), free(lb), free(out);
  /* Chosen fields, no header, one state. */
  char expect[64];
  snprintf(expect, sizeof expect, "%llu  FAILED  3:0\n", (unsigned long long)b);
  cr_assert_eq(it_trainctl(c, &out,
                           (const char *[]){"history", "--state", "failed", "--noheader",
                                            "--format", "id,state,exit", NULL}),
               0);
  cr_assert_str_eq(out, expect);
  free(out);
  /* The text marks allocation-based times and says so: a running job's
   * (cgroups are read as ranks end), and an ended one's without cgroups;
   * measured ones are plain (GPU time, always allocated, is 0: none held). */
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"history", NULL}), 0);
  bool allocated = !measured || strstr(out, "RUNNING");
  cr_assert(strstr(out, "CPUTIME") && !strstr(out, "allocated, not measured") == !allocated, "%s",
            out);
  const char *ok = strstr(out, "acct-ok"), *eol = ok ? strchr(ok, '\n') : NULL;
  const char *mark = ok ? strchr(ok, '~') : NULL;
  cr_assert(ok && eol);
  cr_assert(measured ? !mark || mark > eol : mark && mark < eol, "%s", out);
  free(out);
}

Test(history, records_ended_jobs_with_ranks_before_and_after_a_restart, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  uint64_t a = it_submit_cli(
      &c, (const char *[]){"--name", "acct-ok", "--ntasks-per-node", "2", "--", "true", NULL});
  uint64_t b = it_submit_cli(
      &c, (const char *[]){"--name", "acct-bad", "--", "/bin/sh", "-c", "exit 3", NULL});
  cr_assert_eq(it_wait_state(cl, a, 0, 60000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, b, 0, 60000), ST(FAILED));
  check_records(&c, a, b);
  /* A live job shows too, with the running time so far. */
  uint64_t live =
      it_submit_cli(&c, (const char *[]){"--name", "acct-live", "--", "sleep", "60", NULL});
  cr_assert_eq(it_wait_state(cl, live, ST(RUNNING), 60000), ST(RUNNING));
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"history", "--state", "running", "--noheader",
                                            "--format", "name,state", NULL}),
               0);
  cr_assert_str_eq(out, "acct-live  RUNNING\n");
  free(out);
  /* --limit counts live and ended jobs together, the newest, and says
   * when more matched; they are listed by id, as sacct lists them. */
  char *err = NULL;
  cr_assert_eq(ctl_err(&c, &out, &err,
                       (const char *[]){"history", "--limit", "2", "--noheader", "--format", "name",
                                        "--state", "running,failed,completed", NULL}),
               0);
  cr_assert(!strcmp(out, "acct-bad\nacct-live\n") || !strcmp(out, "acct-ok\nacct-live\n"), "%s",
            out);
  cr_assert(strstr(err, "more jobs matched; the newest 2 are shown"), "%s", err);
  free(out), free(err);
  cr_assert_eq(
      ctl_err(&c, &out, &err,
              (const char *[]){"history", "--limit", "1", "--noheader", "--format", "name", NULL}),
      0);
  cr_assert_str_eq(out, "acct-live\n");
  cr_assert(strstr(err, "more jobs matched"), "%s", err);
  free(out), free(err);
  /* sacct's --name: live and ended jobs of those names, by id. */
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"history", "--name", "acct-live,acct-ok", "--noheader",
                                            "--format", "name", NULL}),
               0);
  cr_assert_str_eq(out, "acct-ok\nacct-live\n");
  free(out);
  /* Another user's history is empty; --user names whose (a user this host
   * knows: an unknown one is refused). */
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"history", "--user", "nobody", "--noheader", NULL}),
      0);
  cr_assert_str_eq(out, "");
  free(out);
  ty_rpc_client_close(cl);
  /* After a restart the ended jobs come from the store. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  check_records(&c, a, b);
  char sa[24];
  id_str(a, sa);
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"history", "--job", sa, "--limit", "5", "--format",
                                            "id,user", "--noheader", NULL}),
               0);
  char expect[96];
  snprintf(expect, sizeof expect, "%s  %s\n", sa, me());
  cr_assert_str_eq(out, expect);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `history --ranks` of job id (more args after, NULL-terminated, at most
 * 4) once its rank 0 ended (its line has `ended`): the output. */
static char *ranks_once_ended(const it_cluster *c, uint64_t id, const char *ended,
                              const char *const *more) {
  char sid[24], *out = NULL;
  id_str(id, sid);
  const char *args[12] = {"history", "-j", sid, "--ranks"};
  for (size_t i = 0; more[i] && i < 4; i++)
    args[4 + i] = more[i];
  for (int64_t end = ty_mono_ms() + 20000; ty_mono_ms() < end; it_sleep_ms(100)) {
    free(out);
    cr_assert_eq(it_trainctl(c, &out, args), 0);
    if (strstr(out, ended)) return out;
  }
  cr_assert_fail("rank 0 of job %s never ended: %s", sid, out);
  return NULL;
}

/* A running job's ranks are listed as sacct lists running steps: one that
 * ended as it ended, one still running as RUNNING on its node, with its
 * start, no end, and its CPU time so far (allocated, ~) -- in the table,
 * with --format, and in JSON. */
Test(history, ranks_lists_running_ranks, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--ntasks-per-node", "2", "--", "/bin/sh", "-c",
                                                   "[ \"$RANK\" = 0 ] || sleep 60", NULL});
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  char want[160];
  snprintf(want, sizeof want, "\n%llu.0|EXITED|0:0|%s|", (unsigned long long)id, c.name[0]);
  char *out = ranks_once_ended(&c, id, want,
                               (const char *[]){"-P", "-o", "id,state,exit,nodes,end,start", NULL});
  char running[160];
  snprintf(running, sizeof running, "\n%llu.1|RUNNING|0:0|%s|-|20", (unsigned long long)id,
           c.name[0]);
  cr_assert(strstr(out, running), "no running rank 1 in:\n%s", out);
  free(out);

  snprintf(want, sizeof want, "\n%llu.0 ", (unsigned long long)id);
  out = ranks_once_ended(&c, id, want, (const char *[]){NULL});
  snprintf(running, sizeof running, "\n%llu.1 ", (unsigned long long)id);
  const char *row = strstr(out, running), *eol = row ? strchr(row + 1, '\n') : NULL;
  cr_assert(row && eol, "no running rank 1 in:\n%s", out);
  const char *mark = strchr(row, '~');
  cr_assert(strstr(row, " RUNNING ") && mark && mark < eol &&
                strstr(out, "allocated, not measured"),
            "rank 1's row is not RUNNING with allocated CPU time:\n%s", out);
  free(out);

  out = ranks_once_ended(&c, id, "\"state\":\"EXITED\"", (const char *[]){"--json", NULL});
  snprintf(running, sizeof running,
           "{\"run\":1,\"rank\":1,\"node\":\"%s\",\"state\":\"RUNNING\",\"run_state\":\"\","
           "\"exit_code\":0,\"term_signal\":0,\"start_time_ms\":",
           c.name[0]);
  row = strstr(out, running);
  cr_assert(row, "no running rank 1 in:\n%s", out);
  cr_assert(strstr(row, "\"end_time_ms\":0,\"cpus\":1,") &&
                strstr(row, "\"accounting\":\"allocated\"}"),
            "%s", row);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* traind stopped as systemctl stops it (SIGTERM): its last commits are in. */
static void stop_traind(it_cluster *c) {
  kill(c->traind, SIGTERM);
  int st;
  waitpid(c->traind, &st, 0);
  c->traind = 0;
}

/* The rows left in c's store's jobs table, once it has at most `want` of
 * them (pruning deletes them) or 20 s passed. Read from the file: GetJob
 * would bring a pruned job into traind's finished cache first. */
static int stored_jobs(const it_cluster *c, int want) {
  char db_path[400];
  snprintf(db_path, sizeof db_path, "%s/traind/traind.db", c->dir);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  int n = -1;
  for (int i = 0; i < 200 && (n < 0 || n > want); i++) {
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (n > want) it_sleep_ms(100);
  }
  sqlite3_close(db);
  return n;
}

/* Job ids are never reused: once --purge-after deleted every job and
 * traind restarted without it, the next job gets an id after the pruned
 * ones (the store keeps the largest id pruned), not 1 again. */
Test(history, ids_stay_taken_once_every_job_was_pruned, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t last = 0;
  for (int i = 0; i < 3; i++) {
    last = it_submit_cli(&c, (const char *[]){"--name", "old", "--", "true", NULL});
    cr_assert_eq(it_wait_state(cl, last, 0, 60000), ST(COMPLETED));
  }
  ty_rpc_client_close(cl);
  stop_traind(&c);
  it_sleep_ms(1100); /* every job ended over --purge-after ago at the first prune */
  c.traind_args = (const char *[]){"--purge-after", "1s", NULL};
  it_controller_start(&c);
  cr_assert_eq(stored_jobs(&c, 0), 0, "the jobs were not pruned");
  stop_traind(&c);
  c.traind_args = NULL;
  it_controller_start(&c);
  uint64_t next = it_submit_cli(&c, (const char *[]){"--name", "new", "--", "true", NULL});
  cr_assert_gt(next, last, "job id %llu given out again after pruning", (unsigned long long)next);
  it_cluster_stop(&c);
}

/* A job that ended while traind was down: its end time is when its task
 * ended (the worker's report carries it), not when the restarted traind
 * heard of it, so neither history nor the run-time histogram charges it for
 * the downtime. The worker
 * does not fence (--lease-ms 0), so the task ends on its own meanwhile, and
 * the node is not timed out before the worker registers again. */
Test(history, end_time_of_a_job_that_ended_while_traind_was_down, .timeout = 180) {
  static const char *const no_fence[] = {"--lease-ms", "0", NULL};
  it_cluster c;
  it_cluster_start_with(&c, 1, 1, &(it_options){.worker_args = no_fence, .node_timeout_ms = 60000});
  ty_rpc_client *cl = it_client(&c);
  char begun[400], mark[400], script[1024];
  snprintf(begun, sizeof begun, "%s/begun-mark", c.dir);
  snprintf(mark, sizeof mark, "%s/ended-mark", c.dir);
  snprintf(script, sizeof script, "touch %s; sleep 2; touch %s", begun, mark);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, script, "ends-while-down", &id, NULL, 0), 0);
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  for (int i = 0; i < 600 && access(begun, F_OK) != 0; i++) /* the task runs on the worker */
    it_sleep_ms(100);
  cr_assert_eq(access(begun, F_OK), 0, "the job's task never began");
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  for (int i = 0; i < 600 && access(mark, F_OK) != 0; i++)
    it_sleep_ms(100);
  struct stat st;
  cr_assert_eq(stat(mark, &st), 0, "the job's task never ended");
  int64_t touched_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
  it_sleep_ms(2000); /* the worker has seen it end; traind stays down meanwhile */
  int64_t restart_ms = ty_now_ms();
  it_controller_start(&c);
  cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(COMPLETED), 60000);
  cr_assert(r && (int)r->job->state == ST(COMPLETED), "the job did not end COMPLETED");
  int64_t end = r->job->end_time_ms, start = r->job->start_time_ms;
  cr_assert(end >= touched_ms && end < restart_ms,
            "end %lld is not the task's (its last write %lld, traind restarted at %lld)",
            (long long)end, (long long)touched_ms, (long long)restart_ms);
  cr_assert(end >= start, "end %lld before start %lld", (long long)end, (long long)start);
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* history's record and its rank agree: ended before the restart. */
  char sid[24], *out = NULL;
  id_str(id, sid);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"history", "--job", sid, "--json", NULL}), 0);
  char *line = json_line(out, id), *e = line ? strstr(line, "\"end_time_ms\":") : NULL;
  cr_assert(e, "no end_time_ms in %s", out);
  long long hist_end = strtoll(e + 14, NULL, 10);
  cr_assert_eq(hist_end, (long long)end, "history says %lld, GetJob %lld", hist_end,
               (long long)end);
  free(line), free(out);
  /* The run-time histogram observed the same run, not the downtime. */
  double run_s = it_metric(c.metrics_port, "trainyard_job_run_seconds_sum{");
  cr_assert(fabs(run_s - (double)(end - start) / 1000.0) < 0.01,
            "trainyard_job_run_seconds_sum %g, the run took %lld ms", run_s,
            (long long)(end - start));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* How many of history's JSON lines are job id's. */
static int json_lines_of(const char *out, uint64_t id) {
  char key[48];
  snprintf(key, sizeof key, "{\"id\":%llu,", (unsigned long long)id);
  int n = 0;
  for (const char *p = strstr(out, key); p; p = strstr(p + 1, key))
    n++;
  return n;
}

/* trainctl history --json --ranks ARGS... lists job id once, with its
 * rank 0's record. */
static void expect_in_history(const it_cluster *c, uint64_t id, const char *const *args) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, args), 0);
  cr_assert_eq(json_lines_of(out, id), 1, "job %llu %d times, not once, in:\n%s",
               (unsigned long long)id, json_lines_of(out, id), out);
  char *line = json_line(out, id);
  cr_assert(strstr(line, "\"state\":\"COMPLETED\"") && strstr(line, "\"rank\":0"), "%s", line);
  free(line), free(out);
}

/* A job whose end is known but not yet stored (the test holds the
 * database's write lock, as a busy disk or an operator's sqlite3 shell
 * would) is in history already, from memory, and once stored it is there
 * exactly once. */
Test(history, a_job_is_in_history_before_its_end_is_stored, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char go[400], started[400], script[1024], db_path[400];
  snprintf(go, sizeof go, "%s/go-mark", c.dir);
  snprintf(started, sizeof started, "%s/started-mark", c.dir);
  snprintf(script, sizeof script, "touch %s; while [ ! -e %s ]; do sleep 0.05; done", started, go);
  uint64_t id = 0;
  cr_assert_eq(it_submit_sh(cl, script, "ends-unstored", &id, NULL, 0), 0);
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 60000), ST(RUNNING));
  /* The task runs: the controller launches it once its RUNNING record is
   * stored, so the lock below holds up the end's write alone (taken at
   * RUNNING, it could hold up that record and the launch with it). */
  for (int i = 0; i < 3000 && access(started, F_OK) != 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(access(started, F_OK), 0, "the job's task did not start in 60 s");
  snprintf(db_path, sizeof db_path, "%s/traind/traind.db", c.dir);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  int64_t locked_ms = ty_now_ms();
  FILE *f = fopen(go, "w");
  cr_assert(f);
  fclose(f);
  /* The committer waits up to 5 s for the lock, then fails its batch (the
   * job's end among it): the checks run only if they can end well before,
   * after a tick's sweep has seen the job ended. A slow machine that does
   * not see the end in 2 s skips them (it_wait_state would fail the test). */
  Trainyard__GetJobResponse *done = it_wait_job(cl, id, ST(COMPLETED), 2000);
  int state = done ? (int)done->job->state : -1;
  if (done) trainyard__get_job_response__free_unpacked(done, NULL);
  if (state == ST(COMPLETED)) it_sleep_ms(1100);
  bool in_time = state == ST(COMPLETED) && ty_now_ms() - locked_ms < 3500;
  char sid[24];
  id_str(id, sid);
  if (in_time) {
    expect_in_history(&c, id, (const char *[]){"history", "--json", "--ranks", NULL});
    expect_in_history(&c, id, (const char *[]){"history", "--job", sid, "--json", "--ranks", NULL});
    char *out = NULL;
    cr_assert_eq(it_trainctl(&c, &out,
                             (const char *[]){"ls", "--state", "completed", "--noheader",
                                              "--format", "id,state", NULL}),
                 0);
    char want[64];
    snprintf(want, sizeof want, "%s  COMPLETED", sid);
    cr_assert(strstr(out, want), "ls lacks \"%s\":\n%s", want, out);
    free(out);
  }
  cr_assert_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  if (!in_time) cr_skip_test("the job did not end soon enough while the lock was held");
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(COMPLETED), 30000);
  cr_assert(r);
  trainyard__get_job_response__free_unpacked(r, NULL);
  it_sleep_ms(2000); /* the store has it, and the sweep lets memory's copy go */
  expect_in_history(&c, id, (const char *[]){"history", "--json", "--ranks", NULL});
  expect_in_history(&c, id, (const char *[]){"history", "--job", sid, "--json", "--ranks", NULL});
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The jobs trainctl history --json ARGS lists (the user's, every state). */
static int history_lines(const it_cluster *c, const char *const *args) {
  const char *argv[16] = {"history", "--json"};
  size_t n = 2;
  for (; *args && n < 15; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  char *out = NULL, *err = NULL;
  cr_assert_eq(ctl_err(c, &out, &err, argv), 0, "%s", err);
  int jobs = 0;
  for (const char *p = out; (p = strstr(p, "{\"id\":")) != NULL; p++)
    jobs++;
  free(out), free(err);
  return jobs;
}

/* sacct --name and -N are the controller's filters, applied before
 * --limit in the store and in memory: an old job is found by its name
 * past newer ones, a node is one element of a job's node list (w1 is not
 * w10), a job that never ran is on no node, and 4096 nodes may be named. */
Test(history, name_and_nodelist_are_applied_before_the_limit, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t old = it_submit_quiet(&c, (const char *[]){"-J", "old", "--wrap", "true", NULL});
  cr_assert_eq(it_wait_state(cl, old, ST(COMPLETED), 60000), ST(COMPLETED));
  uint64_t newer =
      it_submit_quiet(&c, (const char *[]){"-J", "newer", "-a", "0-2", "--wrap", "true", NULL});
  for (uint64_t k = 0; k < 3; k++)
    cr_assert_eq(it_wait_state(cl, newer + k, ST(COMPLETED), 60000), ST(COMPLETED));
  it_submit_quiet(
      &c, (const char *[]){"-H", "-J", "old", "--wrap", "true", NULL}); /* live, never ran */
  cr_assert_eq(history_lines(&c, (const char *[]){"--limit", "2", NULL}), 2);
  cr_assert_eq(history_lines(&c, (const char *[]){"--name", "old", "--limit", "2", NULL}), 2);
  cr_assert_eq(
      history_lines(&c, (const char *[]){"--name", "old", "-N", "w1", "--limit", "1", NULL}), 1,
      "the old job ran on w1; the held one ran nowhere");
  cr_assert_eq(history_lines(&c, (const char *[]){"-N", "w", NULL}), 0, "w is no node");
  /* Once memory let the ended jobs go (the store answers for them), the
   * old job's stored node list says w10: w1 no longer finds it. */
  const char *done = "trainyard_jobs{state=\"COMPLETED\"";
  for (int i = 0; i < 200 && it_metric(c.metrics_port, done) != 0; i++)
    it_sleep_ms(50);
  cr_assert_eq(it_metric(c.metrics_port, done), 0, "ended jobs stayed in memory");
  char db_path[400], sql[128];
  snprintf(db_path, sizeof db_path, "%s/traind/traind.db", c.dir);
  snprintf(sql, sizeof sql, "UPDATE jobs SET nodes = 'w10' WHERE id = %llu",
           (unsigned long long)old);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  cr_assert_eq(history_lines(&c, (const char *[]){"--name", "old", "-N", "w10", NULL}), 1);
  cr_assert_eq(history_lines(&c, (const char *[]){"--name", "old", "-N", "w1", NULL}), 0,
               "w1 matched w10");
  /* 4096 nodes, the most a query may name: found in the store as with one. */
  cr_assert_eq(history_lines(&c, (const char *[]){"--name", "old", "-N", "x[1-4095],w10", NULL}), 1,
               "4096 nodes named");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(history, refuses_bad_options_and_requests, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  static const struct {
    const char *args[6];
    const char *says;
  } bad[] = {
      {{"history", "--since", "yesterday", NULL}, "--since: \"yesterday\" is not a time"},
      {{"history", "--format", "id,bogus", NULL}, "--format: unknown field \"bogus\""},
      {{"history", "--format", "id,ID", NULL}, "field \"ID\" is named twice"},
      {{"history", "--user", "x", "--all-users", NULL}, "exclude each other"},
      {{"history", "--since", "1h", "--until", "2h", NULL}, "--until: must be after --since"},
      {{"history", "--job", "x1", NULL}, "--job: \"x1\" is not a job id"},
      {{"history", "--state", "sleeping", NULL}, "--state: unknown state \"sleeping\""},
      {{"history", "--name", "", NULL}, "--name: must not be empty"},
      {{"history", "-N", "w[2-1]", NULL}, "-N/--nodelist: hostlist \"w[2-1]\""},
      {{"node", "show", NULL}, "node show: a node name is required"},
      /* Each refusal names its command: a bare "unexpected argument" does not
       * say which of a script's trainctl lines it is about. */
      {{"node", "show", "w1", "w2", NULL}, "node show: unexpected argument \"w2\""},
      {{"node", "drain", "w1", "w2", NULL}, "node drain: unexpected argument \"w2\""},
      {{"node", "resume", NULL}, "node resume: a node name is required"},
      {{"reconfigure", "x", NULL}, "reconfigure: unexpected argument \"x\""},
      {{"web-token", "x", NULL}, "web-token: unexpected argument \"x\""},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    char *out = NULL, *err = NULL;
    cr_assert_eq(ctl_err(&c, &out, &err, bad[i].args), 2, "%s %s", bad[i].args[0], bad[i].args[1]);
    cr_assert(err && strstr(err, bad[i].says), "expected \"%s\" in: %s", bad[i].says, err);
    free(out), free(err);
  }
  char *out = NULL, *err = NULL;
  cr_assert_eq(ctl_err(&c, &out, &err, (const char *[]){"node", "show", "no-such-node", NULL}), 1);
  cr_assert(strstr(err, "node no-such-node not found"), "%s", err);
  free(out), free(err);
  /* What any client may send: the controller checks it too. */
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetHistoryRequest hr = TRAINYARD__GET_HISTORY_REQUEST__INIT;
  Trainyard__JobState st = 99;
  hr.n_states = 1, hr.states = &st;
  uint8_t buf[128];
  size_t n = trainyard__get_history_request__pack(&hr, buf);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "states[0]: 99 is not a job state"), "%s", res.message);
  ty_rpc_result_close(&res);
  hr.n_states = 0, hr.since_ms = 2000, hr.until_ms = 1000;
  n = trainyard__get_history_request__pack(&hr, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "until_ms"), "%s", res.message);
  ty_rpc_result_close(&res);
  hr.since_ms = 0, hr.until_ms = -1; /* once matched nothing, silently */
  n = trainyard__get_history_request__pack(&hr, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "until_ms: -1 is negative"), "%s", res.message);
  ty_rpc_result_close(&res);
  char *empty = "", *two = "w1,w2";
  hr.since_ms = hr.until_ms = 0, hr.n_names = 1, hr.names = &empty;
  n = trainyard__get_history_request__pack(&hr, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "names[0]: must not be empty"), "%s", res.message);
  ty_rpc_result_close(&res);
  hr.n_names = 0, hr.n_nodes = 1, hr.nodes = &two;
  n = trainyard__get_history_request__pack(&hr, buf);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, buf, n, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "nodes[0]: \"w1,w2\" is not one node name"), "%s", res.message);
  ty_rpc_result_close(&res);
  char *many[1025];
  for (size_t i = 0; i < TY_ARRAY_LEN(many); i++)
    many[i] = "x";
  hr.n_nodes = 0, hr.n_names = TY_ARRAY_LEN(many), hr.names = many;
  uint8_t *big = malloc(trainyard__get_history_request__get_packed_size(&hr));
  n = trainyard__get_history_request__pack(&hr, big);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, big, n, 10000, &res), 0);
  free(big);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "names: 1025 entries or more; at most 1024 are allowed"), "%s",
            res.message);
  ty_rpc_result_close(&res);
  static const uint8_t garbage[] = {0xff, 0xff, 0xff};
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_HISTORY, garbage, 3, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EPROTO);
  ty_rpc_result_close(&res);
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_NODE, garbage, 3, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EPROTO);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Whether `trainctl show ID --json` lists an event whose reason has `part`. */
static bool has_event(const it_cluster *c, const char *id, const char *part) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"show", id, "--json", NULL}), 0);
  bool found = strstr(out, part) != NULL;
  free(out);
  return found;
}

Test(history, update_time_and_requeue_are_recorded_with_who, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  /* A job that waits on a running one stays pending while we change it. */
  uint64_t first = it_submit_cli(&c, (const char *[]){"--", "sleep", "60", NULL});
  char sfirst[24], sdep[24], dep[48], why[160];
  id_str(first, sfirst);
  snprintf(dep, sizeof dep, "afterany:%s", sfirst);
  uint64_t waits =
      it_submit_cli(&c, (const char *[]){"--dependency", dep, "--time", "1h", "--", "true", NULL});
  id_str(waits, sdep);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"job", "update", sdep, "--time", "30m", NULL}), 0);
  snprintf(why, sizeof why, "time limit 3600 s -> 1800 s by %s", me());
  cr_assert(has_event(&c, sdep, why), "no event \"%s\"", why);
  /* A running job's limit changes on its worker too (scontrol's
   * TimeLimit=, +T as well); a limit below what it ran ends it TIMEOUT. */
  char *out = NULL, *err = NULL;
  uint64_t runs = it_submit_cli(&c, (const char *[]){"--time", "10m", "--", "sleep", "60", NULL});
  char sruns[24];
  id_str(runs, sruns);
  cr_assert_eq(it_wait_state(cl, first, ST(RUNNING), 60000), ST(RUNNING));
  cr_assert_eq(it_wait_state(cl, runs, ST(RUNNING), 60000), ST(RUNNING));
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"job", "update", sruns, "--time", "+5", NULL}), 0);
  snprintf(why, sizeof why, "time limit 600 s -> 900 s (running) by %s", me());
  cr_assert(has_event(&c, sruns, why), "no event \"%s\"", why);
  cr_assert_eq(
      ctl_err(&c, &out, &err, (const char *[]){"job", "update", sruns, "--time=-1000", NULL}), 1);
  cr_assert(strstr(err, "--time -60000 s: taking 60000 s from job"), "%s", err);
  cr_assert(strstr(err, "'s time limit of 900 s would leave -59100 s, and a time limit is at "
                        "least 1 s (take less than 900 s"),
            "%s", err);
  cr_assert(!strstr(err, "time_delta_s"), "%s", err);
  free(out), free(err);
  cr_assert_eq(
      ctl_err(&c, &out, &err, (const char *[]){"job", "update", sfirst, "--time", "+5", NULL}), 1);
  cr_assert(strstr(err, "has no time limit to add to or take from"), "%s", err);
  free(out), free(err);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"job", "update", sruns, "--time", "1s", NULL}), 0);
  cr_assert_eq(it_wait_state(cl, runs, 0, 60000), ST(TIMEOUT));
  snprintf(why, sizeof why, "time limit 900 s -> 1 s (running) by %s", me());
  cr_assert(has_event(&c, sruns, why), "no event \"%s\"", why);
  /* Refusals: an ended job keeps its limit; a queue's maximum holds. */
  cr_assert_eq(
      ctl_err(&c, &out, &err, (const char *[]){"job", "update", sruns, "--time", "5m", NULL}), 1);
  cr_assert(strstr(err, "is TIMEOUT; only a pending or running job's time limit can change"), "%s",
            err);
  free(out), free(err);
  cr_assert_eq(it_trainctl(&c, NULL,
                           (const char *[]){"queue", "create", "short", "--max-time", "10m", NULL}),
               0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "update", sdep, "--time", "5m", NULL}),
               0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "move", sdep, "short", NULL}), 0);
  cr_assert_eq(
      ctl_err(&c, &out, &err, (const char *[]){"job", "update", sdep, "--time", "2h", NULL}), 1);
  cr_assert(strstr(err, "time_limit_s: 7200 s exceeds queue short's max_time of 600 s"), "%s", err);
  free(out), free(err);
  /* Requeue: pending is refused; the ended job runs again as a new run. */
  cr_assert_eq(ctl_err(&c, &out, &err, (const char *[]){"job", "requeue", sdep, NULL}), 1);
  cr_assert(strstr(err, "is PENDING already"), "%s", err);
  free(out), free(err);
  /* A running job's requeue says who asked, in words that read. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "requeue", sfirst, NULL}), 0);
  snprintf(why, sizeof why, "requeue (its ranks are killed, then it is pending again) asked by %s",
           me());
  cr_assert(has_event(&c, sfirst, why), "no event \"%s\"", why);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sfirst, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, waits, 0, 60000), ST(COMPLETED));
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "requeue", sdep, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, waits, 0, 60000), ST(COMPLETED));
  snprintf(why, sizeof why, "requeued after COMPLETED by %s", me());
  cr_assert(has_event(&c, sdep, why), "no event \"%s\"", why);
  /* Accounting sees both runs; the history of changes survives a restart. */
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"history", "--job", sdep, "--ranks", "--noheader",
                                            "--format", "id,requeues", NULL}),
               0);
  char expect[128];
  /* The ID column is as wide as its widest cell, "ID.0#2". */
  snprintf(expect, sizeof expect, "%-*s  1\n%s.0\n%s.0#2\n", (int)strlen(sdep) + 4, sdep, sdep,
           sdep);
  cr_assert_str_eq(out, expect);
  free(out);
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  snprintf(why, sizeof why, "time limit 3600 s -> 1800 s by %s", me());
  cr_assert(has_event(&c, sdep, why), "no event \"%s\" after a restart", why);
  /* Who may change a job (its owner, an operator): test_auth.c. */
  it_cluster_stop(&c);
}

Test(history, node_show_lists_events_with_reason_and_who, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  const char *node = c.name[0];
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"node", "drain", node, "--reason", "bad fan", NULL}),
      0);
  /* sinfo -R: the operator's words, who and when, the node */
  char *out = NULL, want[160];
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", "-R", NULL}), 0);
  cr_assert(!strncmp(out, "REASON               USER      TIMESTAMP           NODELIST\n", 60),
            "%s", out);
  snprintf(want, sizeof want, "\nbad fan              %-9s 20", me());
  cr_assert(strstr(out, want), "want \"%s\" in:\n%s", want, out);
  snprintf(want, sizeof want, " %s\n", node);
  cr_assert(strstr(out, want) && !strchr(strchr(out, '\n') + 1, '\n')[1], "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "resume", node, NULL}), 0);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"nodes", "-R", "-h", NULL}), 0);
  cr_assert_str_eq(out, "", "no node out of service");
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", node, "--json", NULL}), 0);
  char actor[96];
  snprintf(actor, sizeof actor, "\"actor\":\"user:%s\"", me());
  const char *reg = strstr(out, "\"action\":\"register\"");
  const char *drain = strstr(out, "\"action\":\"drain\",\"reason\":\"bad fan\"");
  const char *resume = strstr(out, "\"action\":\"resume\"");
  cr_assert(reg && drain && resume && reg < drain && drain < resume, "%s", out);
  cr_assert(strstr(drain, actor), "%s", out);
  cr_assert(strstr(out, "\"state\":\"UP\""), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", node, NULL}), 0);
  cr_assert(strstr(out, "Events (oldest first):") && strstr(out, "bad fan"), "%s", out);
  free(out);
  /* --limit: the newest events only. */
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"node", "show", node, "--json", "--limit", "1", NULL}),
      0);
  cr_assert(strstr(out, "\"action\":\"resume\"") && !strstr(out, "\"action\":\"drain\""), "%s",
            out);
  free(out);
  it_cluster_stop(&c);
}

/* `node drain --reason` refused at the controller, naming why; the node
 * stays as it was. */
static void drain_refused(const it_cluster *c, const char *reason, const char *want) {
  char *out = NULL, *err = NULL;
  cr_assert_neq(
      it_trainctl_err(c, &out, &err,
                      (const char *[]){"node", "drain", c->name[0], "--reason", reason, NULL}),
      0, "accepted: %s", reason);
  cr_assert(strstr(err, want), "[%s] lacks [%s]", err, want);
  free(out);
  free(err);
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"nodes", "-R", "-h", NULL}), 0);
  cr_assert_str_eq(out, "", "the node was drained anyway");
  free(out);
}

/* A drain reason is one line, as a job's name: a newline or an escape
 * would break or repaint `nodes -R`; one longer than 200 bytes is refused
 * naming the limit, never cut. */
Test(history, node_drain_refuses_reasons_that_are_not_one_line, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  drain_refused(&c, "bad\nreason\x1b[31m", "reason: control character 0x0a at offset 3");
  drain_refused(&c, "red\x1b[31m", "reason: control character 0x1b at offset 3");
  drain_refused(&c, "bad \xff byte", "reason: not valid UTF-8");
  char reason[202];
  memset(reason, 'x', sizeof reason - 1);
  reason[sizeof reason - 1] = '\0';
  drain_refused(&c, reason, "reason: longer than 200 bytes");
  reason[200] = '\0';
  cr_assert_eq(
      it_trainctl_ok(&c, NULL,
                     (const char *[]){"node", "drain", c.name[0], "--reason", reason, NULL}),
      0);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", c.name[0], "--json", NULL}),
               0);
  cr_assert(strstr(out, reason), "the whole reason: %s", out);
  free(out);
  it_cluster_stop(&c);
}

/* The first line of `node show` for the first node ("Node w1: STATE - REASON"). */
static char *node_line(const it_cluster *c) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"node", "show", c->name[0], NULL}), 0);
  char *nl = strchr(out, '\n');
  if (nl) nl[1] = '\0';
  return out;
}

/* A drained node whose worker dies keeps its operator's reason beside the
 * loss, and only that once it is back (still drained), as sinfo -R keeps
 * an administrator's reason: the loss no longer hides why it was drained.
 * Back with other resources, its register event names the change. */
Test(history, a_drained_node_lost_and_back_keeps_its_drain_reason, .timeout = 120) {
  it_cluster c; /* a quick DOWN: the node runs nothing a short lease could fence */
  it_cluster_start_with(&c, 1, 2, &(it_options){.node_timeout_ms = 2000});
  const char *node = c.name[0];
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"node", "drain", node, "--reason", "bad fan", NULL}),
      0);
  ty_rpc_client *cl = it_client(&c);
  it_kill9(&c.worker[0]);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_DOWN, 60000)); /* the node timeout */
  char want[128], *out = node_line(&c);
  snprintf(want, sizeof want, "; drained by %s: bad fan\n", me());
  cr_assert(strstr(out, "DOWN - not connected for") && strstr(out, want), "%s", out);
  free(out);
  it_worker_start(&c, 0, 1); /* back with one CPU fewer: its event says so */
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_DRAINED, 30000));
  snprintf(want, sizeof want, "Node %s: DRAINED - drained by %s: bad fan\n", node, me());
  out = node_line(&c);
  cr_assert_str_eq(out, want);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", node, NULL}), 0);
  cr_assert(strstr(out, "resources changed: CPUs 2 -> 1"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(history, ls_formats_sorts_and_filters_by_time, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t run = it_submit_cli(&c, (const char *[]){"--name", "runner", "--", "sleep", "60", NULL});
  char srun[24], dep[48];
  id_str(run, srun);
  snprintf(dep, sizeof dep, "afterok:%s", srun);
  uint64_t w1 = it_submit_cli(&c, (const char *[]){"--name", "w1", "--priority", "5",
                                                   "--dependency", dep, "--", "true", NULL});
  uint64_t w2 = it_submit_cli(&c, (const char *[]){"--name", "w2", "--priority", "9",
                                                   "--dependency", dep, "--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, run, ST(RUNNING), 60000), ST(RUNNING));
  char *out = NULL, expect[256];
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"ls", "--format", "id,name,state,pri", "--sort", "-pri",
                                            "--noheader", NULL}),
               0);
  snprintf(expect, sizeof expect,
           "%llu  w2  PENDING  9\n%llu  w1  PENDING  5\n%llu  runner  RUNNING  0\n",
           (unsigned long long)w2, (unsigned long long)w1, (unsigned long long)run);
  /* Columns line up: compare without the padding. */
  char *p = out, *q = expect;
  for (; *p && *q; p++, q++) {
    while (*p == ' ' && p[1] == ' ')
      p++;
    while (*q == ' ' && q[1] == ' ')
      q++;
    if (*p != *q) break;
  }
  cr_assert(!*p && !*q, "got:\n%s\nwanted (up to padding):\n%s", out, expect);
  free(out);
  /* A header by default; --since in the future leaves nothing. */
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "-o", "name,dependency", NULL}), 0);
  cr_assert(strncmp(out, "NAME    DEPENDENCY\n", 19) == 0 && strstr(out, "afterok:"), "%s", out);
  free(out);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"ls", "--since", "@4000000000", "--noheader", NULL}),
      0);
  cr_assert_str_eq(out, "");
  free(out);
  char *err = NULL;
  cr_assert_eq(ctl_err(&c, &out, &err, (const char *[]){"ls", "--sort", "colour", NULL}), 2);
  cr_assert(strstr(err, "--sort: unknown field \"colour\""), "%s", err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
