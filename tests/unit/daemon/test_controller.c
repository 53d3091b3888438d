/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's cost follows active work, not history (issue 15 item 6,
 * issue 20 item 3), shown by counting what it touches (its stats hook and
 * the store's rows read), never by timing: a real controller on loopback
 * starts on a store holding many finished jobs and a few pending ones;
 * its ticks, scheduling passes and `ls` answers visit only the live jobs;
 * the start reads only live rows; a repeated `ls` is the cached encoded
 * reply (the same bytes, nothing walked or encoded), and a change to one
 * job re-encodes that job only.
 *
 * A pending array is one stored record (store.c, schema 8): its submit
 * writes no element row, an element gets its row when it leaves the record
 * (cancelled, held), restarts bring back exactly the elements still in it
 * (none lost, none twice: not an element split off before a crash, not an
 * id reused), and a store from before (a row per pending element) keeps
 * working. The store is looked at through its own SQLite file.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller_fixture.h"
#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/convert.h"
#include "proto/methods.h"
#include "tests/support/tree.h"

#define HISTORY 20000u /* finished jobs in the store */
#define LIVE 5u        /* pending jobs */

static char dir[TY_TEST_DIR_LEN];

/* A command job's encoded spec, as a submit stores it; an array of
 * `elements` tasks 0.. when not 0. */
static void array_spec_bytes(ty_buf *out, uint32_t elements) {
  char *argv[] = {"true"};
  ty_array_range range = {0, elements ? elements - 1 : 0, 1};
  ty_job_spec s = {.kind = TY_JOB_KIND_COMMAND,
                   .name = "t",
                   .user = "alice",
                   .queue = "default",
                   .argv = argv,
                   .argc = 1,
                   .cwd = "/tmp",
                   .array = {.ranges = &range, .n = elements ? 1 : 0}};
  ty_proto_job pj;
  ty_proto_encode_job(&s, &pj);
  cr_assert_eq(ty_proto_encode_job_extra(&s, &pj), 0); /* the array */
  cr_assert_eq(ty_wire_pack(&pj.job.base, out), 0);
  ty_proto_job_close(&pj);
}

static void spec_bytes(ty_buf *out) {
  array_spec_bytes(out, 0);
}

/* HISTORY finished jobs and LIVE pending ones submitted at submit_ms. */
static void fill_store_at(int64_t submit_ms) {
  char path[128], err[TY_ERR_LEN];
  snprintf(path, sizeof path, "%s/traind.db", dir);
  ty_store *s = NULL;
  cr_assert_eq(ty_store_open(path, &s, err, sizeof err), 0, "%s", err);
  ty_buf spec;
  ty_buf_init(&spec);
  spec_bytes(&spec);
  cr_assert_eq(ty_store_begin(s), 0);
  for (uint64_t id = 1; id <= HISTORY + LIVE; id++) {
    bool live = id > HISTORY;
    ty_job_row r = {.id = id,
                    .name = "t",
                    .user = "alice",
                    .queue = "default",
                    .state = live ? TY_JOB_PENDING : TY_JOB_COMPLETED,
                    .reason = "",
                    .submit_ms = submit_ms,
                    .start_ms = live ? 0 : submit_ms + 1000,
                    .end_ms = live ? 0 : submit_ms + 2000,
                    .nodes = "",
                    .alloc = "",
                    .spec = spec.data,
                    .spec_len = spec.len,
                    .request_id = "",
                    .model_file = ""};
    cr_assert_eq(ty_store_insert_job(s, &r), 0);
  }
  cr_assert_eq(ty_store_commit(s), 0);
  ty_buf_close(&spec);
  ty_store_close(s);
}

static void fill_store(void) {
  fill_store_at(1000);
}

static uint32_t node_timeout_ms = 5000; /* a test with a silent fake worker raises it */

static void start(running *r) {
  ctl_start(r, dir, node_timeout_ms);
}

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "ctl"), 0);
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

/* ls of the live jobs: the no-filter request trainctl ls sends by default,
 * into req (64 bytes); its length. */
static size_t live_request(uint8_t *req) {
  Trainyard__ListJobsRequest lr = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[] = {TRAINYARD__JOB_STATE__JOB_PENDING,
                                  TRAINYARD__JOB_STATE__JOB_RUNNING};
  lr.n_states = 2, lr.states = states;
  return trainyard__list_jobs_request__pack(&lr, req);
}

TestSuite(controller, .init = setup, .fini = teardown, .timeout = 120);

Test(controller, tick_pass_and_ls_touch_only_live_jobs) {
  fill_store();
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  uint8_t req[64];
  size_t req_len = live_request(req);
  ty_buf first, again, after;
  cr_assert_eq(ctl_call(cl, TY_M_LIST_JOBS, req, req_len, &first), 0);
  cr_assert_eq(ctl_call(cl, TY_M_LIST_JOBS, req, req_len, &again), 0);
  cr_assert_eq(first.len, again.len);
  cr_assert_eq(memcmp(first.data, again.data, first.len), 0, "the cached reply differs");
  /* A change to one job: the next ls re-encodes that one only. The last
   * one (held, it leaves the passes; an earlier one would move the others'
   * positions up). */
  Trainyard__UpdateJobRequest uj = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  uj.job_id = HISTORY + LIVE, uj.action = "hold";
  uint8_t ub[64];
  cr_assert_eq(
      ctl_call(cl, TY_M_UPDATE_JOB, ub, trainyard__update_job_request__pack(&uj, ub), NULL), 0);
  cr_assert_eq(ctl_call(cl, TY_M_LIST_JOBS, req, req_len, &after), 0);
  cr_assert_neq(memcmp(first.data, after.data, first.len < after.len ? first.len : after.len) ||
                    first.len != after.len,
                0, "a held job's listing did not change");
  Trainyard__ListJobsResponse *lj =
      trainyard__list_jobs_response__unpack(NULL, after.len, after.data);
  cr_assert(lj);
  cr_assert_eq(lj->n_jobs, LIVE);
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  ty_buf_close(&first), ty_buf_close(&again), ty_buf_close(&after);
  /* Let the tick run (it sweeps, charges usage, checks drains). */
  sleep(3);
  ty_rpc_client_close(cl);
  ctl_stop(&r);
  ty_controller_stats st;
  ty_controller_stats_get(r.ctl, &st);
  cr_assert_eq(st.live, LIVE);
  cr_assert_eq(st.cached, 0u, "finished jobs were loaded into memory");
  /* ls: the first walked the live set and encoded it, the second was the
   * cached reply, the third walked it again and encoded only the held job
   * (which UpdateJob's answer encoded too, and the pass after the hold may
   * have given a new reason): one or two more, never the others again. */
  cr_assert_eq(st.list_cached, 1u);
  cr_assert_eq(st.list_jobs, 2 * LIVE);
  cr_assert(st.list_encoded >= LIVE + 1 && st.list_encoded <= LIVE + 2, "encoded %llu",
            (unsigned long long)st.list_encoded);
  /* Tick and passes: whole multiples of the live set, never of history. */
  cr_assert_gt(st.tick_jobs, 0u, "no tick ran");
  cr_assert_eq(st.tick_jobs % LIVE, 0u);
  cr_assert_lt(st.tick_jobs, HISTORY / 10);
  cr_assert_gt(st.pass_runs, 0u, "no scheduling pass ran");
  /* A pass looks at the live set twice (sched_pass.c): counting what is
   * pending, then building the scheduler's input. */
  cr_assert_eq(st.pass_jobs % LIVE, 0u);
  cr_assert_leq(st.pass_jobs, 2 * st.pass_runs * LIVE);
  /* The start read the live rows, not the finished ones. */
  cr_assert_lt(ty_store_rows_read(ty_controller_store(r.ctl)), 100u);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
}

/* Jobs submitted a moment ago: their age factor grows on every pass, by
 * far less than a listing shows, so an `ls` after further passes is still
 * the cached reply and nothing is re-encoded. */
Test(controller, passes_between_two_ls_re_encode_nothing) {
  fill_store_at(ty_now_ms() - 1000);
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  uint8_t req[64];
  size_t req_len = live_request(req);
  sleep(2); /* the first passes give the pending jobs their reason */
  ty_buf first, again;
  cr_assert_eq(ctl_call(cl, TY_M_LIST_JOBS, req, req_len, &first), 0);
  sleep(3); /* heartbeat 1 s: passes run between the two */
  cr_assert_eq(ctl_call(cl, TY_M_LIST_JOBS, req, req_len, &again), 0);
  cr_assert_eq(first.len, again.len);
  cr_assert_eq(memcmp(first.data, again.data, first.len), 0, "the listing changed");
  ty_buf_close(&first), ty_buf_close(&again);
  ty_rpc_client_close(cl);
  ctl_stop(&r);
  ty_controller_stats st;
  ty_controller_stats_get(r.ctl, &st);
  cr_assert_geq(st.pass_runs, 2u, "fewer than two scheduling passes ran");
  cr_assert_eq(st.list_cached, 1u, "the second ls was not the cached reply");
  cr_assert_eq(st.list_encoded, LIVE);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
}

/* ---- pending arrays as one record --------------------------------------------------- */

/* One number from the store file (its own connection, as an operator's). */
static int64_t store_count(const char *sql, int64_t arg) {
  char path[128];
  snprintf(path, sizeof path, "%s/traind.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(db));
  sqlite3_bind_int64(st, 1, arg);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

static int64_t element_rows(uint64_t array_id) {
  return store_count("SELECT COUNT(*) FROM jobs WHERE array_id = ?1", (int64_t)array_id);
}

static int64_t array_records(void) {
  return store_count("SELECT COUNT(*) + 0 * ?1 FROM arrays", 0);
}

/* Submits the command `arg` as an array of tasks 0..n-1 (n = 0: one job)
 * with request id `rid` (NULL: none); its id. */
static uint64_t submit_cmd(ty_rpc_client *cl, uint32_t n, const char *rid, const char *arg) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {(char *)arg};
  cmd.n_argv = 1, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "arr", job.user = "alice";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__ArrayRange range = TRAINYARD__ARRAY_RANGE__INIT, *rp = &range;
  Trainyard__ArraySpec a = TRAINYARD__ARRAY_SPEC__INIT;
  range.first = 0, range.last = n ? n - 1 : 0, range.step = 1;
  a.n_ranges = 1, a.ranges = &rp;
  if (n) job.array = &a;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  if (rid) req.request_id = (char *)rid;
  uint8_t *buf = ty_xmalloc(trainyard__submit_job_request__get_packed_size(&req));
  size_t len = trainyard__submit_job_request__pack(&req, buf);
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_SUBMIT_JOB, buf, len, &out), 0);
  free(buf);
  Trainyard__SubmitJobResponse *sr =
      trainyard__submit_job_response__unpack(NULL, out.len, out.data);
  cr_assert(sr);
  uint64_t id = sr->job_id;
  cr_assert_eq(sr->array_tasks, n);
  trainyard__submit_job_response__free_unpacked(sr, NULL);
  ty_buf_close(&out);
  return id;
}

static uint64_t submit_rid(ty_rpc_client *cl, uint32_t n, const char *rid) {
  return submit_cmd(cl, n, rid, "true");
}

static uint64_t submit(ty_rpc_client *cl, uint32_t n) {
  return submit_rid(cl, n, NULL);
}

/* GetJob of element `task` of array id (or job id when task < 0). */
static Trainyard__GetJobResponse *get_job(ty_rpc_client *cl, uint64_t id, int task) {
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = id;
  if (task >= 0) req.has_task = true, req.task = (uint32_t)task;
  uint8_t buf[64];
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_GET_JOB, buf, trainyard__get_job_request__pack(&req, buf), &out),
               0, "job %llu_%d not found", (unsigned long long)id, task);
  Trainyard__GetJobResponse *r = trainyard__get_job_response__unpack(NULL, out.len, out.data);
  ty_buf_close(&out);
  cr_assert(r);
  return r;
}

/* CancelJob of element `task` of array id, or of the whole array (task < 0). */
static void cancel(ty_rpc_client *cl, uint64_t id, int task) {
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  Trainyard__JobRef ref = TRAINYARD__JOB_REF__INIT, *rp = &ref;
  ref.job_id = id;
  if (task >= 0) ref.has_task = true, ref.task = (uint32_t)task;
  req.n_refs = 1, req.refs = &rp;
  uint8_t buf[64];
  cr_assert_eq(
      ctl_call(cl, TY_M_CANCEL_JOB, buf, trainyard__cancel_job_request__pack(&req, buf), NULL), 0);
}

static void hold(ty_rpc_client *cl, uint64_t id, uint32_t task) {
  Trainyard__UpdateJobRequest uj = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  uj.job_id = id, uj.action = "hold", uj.has_task = true, uj.task = task;
  uint8_t ub[64];
  cr_assert_eq(
      ctl_call(cl, TY_M_UPDATE_JOB, ub, trainyard__update_job_request__pack(&uj, ub), NULL), 0);
}

/* The live jobs (PENDING, RUNNING), unfolded. */
static size_t live_jobs(ty_rpc_client *cl) {
  Trainyard__ListJobsRequest lr = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[] = {TRAINYARD__JOB_STATE__JOB_PENDING,
                                  TRAINYARD__JOB_STATE__JOB_RUNNING};
  lr.n_states = 2, lr.states = states;
  uint8_t req[64];
  ty_buf out;
  cr_assert_eq(
      ctl_call(cl, TY_M_LIST_JOBS, req, trainyard__list_jobs_request__pack(&lr, req), &out), 0);
  Trainyard__ListJobsResponse *lj = trainyard__list_jobs_response__unpack(NULL, out.len, out.data);
  cr_assert(lj);
  size_t n = lj->n_jobs;
  for (size_t i = 1; i < lj->n_jobs; i++)
    cr_assert_neq(lj->jobs[i]->id, lj->jobs[i - 1]->id, "job %llu listed twice",
                  (unsigned long long)lj->jobs[i]->id);
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  ty_buf_close(&out);
  return n;
}

/* Closes cl and stops the controller, keeping it for its stats. */
static void finish_keep(running *r, ty_rpc_client *cl) {
  ty_rpc_client_close(cl);
  ctl_stop(r);
}

static void finish(running *r, ty_rpc_client *cl) {
  finish_keep(r, cl);
  ty_controller_destroy(r->ctl);
  uv_loop_close(&r->loop);
}

/* ListJobs of every state, with limit and ended_limit: its answer. */
static Trainyard__ListJobsResponse *list_all(ty_rpc_client *cl, uint32_t limit,
                                             uint32_t ended_limit) {
  Trainyard__ListJobsRequest lr = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  lr.limit = limit, lr.ended_limit = ended_limit;
  uint8_t req[64];
  ty_buf out;
  cr_assert_eq(
      ctl_call(cl, TY_M_LIST_JOBS, req, trainyard__list_jobs_request__pack(&lr, req), &out), 0);
  Trainyard__ListJobsResponse *lj = trainyard__list_jobs_response__unpack(NULL, out.len, out.data);
  cr_assert(lj);
  ty_buf_close(&out);
  return lj;
}

/* The newest jobs, in id order up to the newest, and abridged. */
static void expect_newest(const Trainyard__ListJobsResponse *lj, size_t n) {
  cr_assert_eq(lj->n_jobs, n);
  for (size_t i = 0; i < n; i++) {
    const Trainyard__JobInfo *j = lj->jobs[i];
    cr_assert_eq(j->id, HISTORY + LIVE - n + 1 + i);
    cr_assert(j->abridged && j->spec && j->spec->command, "job %zu", i);
    cr_assert_eq(j->spec->command->n_argv, 0u, "job %llu's argv listed", (unsigned long long)j->id);
    cr_assert_str_eq(j->spec->command->cwd, "/tmp");
  }
}

/* A long history lists: abridged JobInfos (no argv or env: a batch script
 * is in argv, 60 KB each made ls --all fail past the largest frame), the
 * newest `limit` or `ended_limit` (every live job kept) and truncated when
 * cut; GetJob still has the command. */
Test(controller, a_long_history_lists_abridged_newest_and_says_it_was_cut) {
  fill_store();
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  Trainyard__ListJobsResponse *lj = list_all(cl, 0, 1000);
  expect_newest(lj, LIVE + 1000);
  cr_expect(lj->truncated);
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  lj = list_all(cl, 10, 0);
  expect_newest(lj, 10);
  cr_expect(lj->truncated);
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  lj = list_all(cl, 0, 0);
  expect_newest(lj, HISTORY + LIVE);
  cr_expect(!lj->truncated, "all of it was cut");
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  Trainyard__GetJobRequest gr = TRAINYARD__GET_JOB_REQUEST__INIT;
  gr.job_id = 1;
  uint8_t req[64];
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_GET_JOB, req, trainyard__get_job_request__pack(&gr, req), &out),
               0);
  Trainyard__GetJobResponse *g = trainyard__get_job_response__unpack(NULL, out.len, out.data);
  cr_assert(g && g->job && g->job->spec && g->job->spec->command);
  cr_expect(!g->job->abridged);
  cr_expect_eq(g->job->spec->command->n_argv, 1u);
  trainyard__get_job_response__free_unpacked(g, NULL);
  ty_buf_close(&out);
  finish(&r, cl);
}

/* An answer larger than the largest frame: the newest jobs that fit, and
 * truncated, instead of a refusal. */
Test(controller, a_listing_past_the_largest_frame_keeps_the_newest_that_fit) {
  fill_store();
  running r;
  ctl_start_framed(&r, dir, node_timeout_ms, 256u << 10);
  ty_rpc_client *cl = ctl_client(&r);
  Trainyard__ListJobsResponse *lj = list_all(cl, 0, 0);
  cr_assert_gt(lj->n_jobs, 100u);
  cr_assert_lt(lj->n_jobs, HISTORY);
  expect_newest(lj, lj->n_jobs);
  cr_expect(lj->truncated);
  trainyard__list_jobs_response__free_unpacked(lj, NULL);
  finish(&r, cl);
}

/* Ended jobs in the finished cache hold their command once, in the stored
 * spec GetJob answers from, not decoded beside it too: an array of a 60 KB
 * script kept ~120 KB per ended element in traind (--job-cache of them). */
Test(controller, ended_jobs_in_the_cache_keep_their_command_once) {
  enum { N = 40, SCRIPT = 60000 };
  char *script = ty_xmalloc(SCRIPT + 1);
  memset(script, 'x', SCRIPT);
  script[SCRIPT] = '\0';
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  uint64_t id = submit_cmd(cl, N, NULL, script);
  cancel(cl, id, -1);
  sleep(3); /* the tick's sweep moves them to the cache */
  Trainyard__GetJobResponse *g = get_job(cl, id, 3);
  cr_assert(g->job->spec && g->job->spec->command && g->job->spec->command->n_argv == 1);
  cr_expect_eq(strlen(g->job->spec->command->argv[0]), (size_t)SCRIPT, "show lost the command");
  trainyard__get_job_response__free_unpacked(g, NULL);
  finish_keep(&r, cl);
  ty_controller_stats st;
  ty_controller_stats_get(r.ctl, &st);
  cr_assert_eq(st.cached, (size_t)N);
  cr_expect_gt(st.cached_bytes, (size_t)N * SCRIPT, "the stored specs are gone");
  /* One copy each, and one JobInfo GetJob made: */
  cr_expect_lt(st.cached_bytes, (size_t)(N + 2) * (SCRIPT + 4096), "%zu bytes for %d jobs",
               st.cached_bytes, N);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
  free(script);
}

/* Pending array elements hold their command once, in the stored spec, not
 * decoded beside it too: an element of a batch script (10 KB of wrapper and
 * script in argv) held ~20 KB, and 100,000 of them 2 GB, copied on the
 * loop while the nodes' heartbeats waited. The command is decoded when an
 * element starts; show reads it from the stored spec meanwhile; a restart
 * loads the elements the same way, those split off into rows of their own
 * too. */
static void expect_one_copy_each(running *r, ty_rpc_client *cl, uint64_t id, size_t n,
                                 size_t script, size_t infos, const char *when) {
  Trainyard__GetJobResponse *g = get_job(cl, id, 3);
  cr_assert(g->job->spec && g->job->spec->command && g->job->spec->command->n_argv == 1);
  cr_expect_eq(strlen(g->job->spec->command->argv[0]), script, "show lost the command");
  trainyard__get_job_response__free_unpacked(g, NULL);
  finish_keep(r, cl);
  ty_controller_stats st;
  ty_controller_stats_get(r->ctl, &st);
  cr_assert_eq(st.live, n);
  cr_expect_gt(st.live_bytes, n * script, "the stored specs are gone");
  /* The first element's decoded command, and the JobInfos GetJob and the
   * holds' answers made: */
  cr_expect_lt(st.live_bytes, (n + 1 + infos) * (script + 4096), "%s: %zu bytes for %zu jobs", when,
               st.live_bytes, n);
  ty_controller_destroy(r->ctl);
  uv_loop_close(&r->loop);
}

Test(controller, pending_array_elements_keep_their_command_once) {
  enum { N = 40, SCRIPT = 60000 };
  char *script = ty_xmalloc(SCRIPT + 1);
  memset(script, 'x', SCRIPT);
  script[SCRIPT] = '\0';
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  uint64_t id = submit_cmd(cl, N, NULL, script);
  for (uint32_t task = 5; task < 10; task++)
    hold(cl, id, task); /* rows of their own */
  expect_one_copy_each(&r, cl, id, N, SCRIPT, 1 + 5, "submitted");
  start(&r); /* loaded from the array's record and the elements' rows */
  expect_one_copy_each(&r, ctl_client(&r), id, N, SCRIPT, 1, "loaded");
  free(script);
}

Test(controller, a_pending_array_is_one_record_across_restarts) {
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  uint64_t id = submit_rid(cl, 1000, "r-1");
  /* One record, no element row, no event row. */
  cr_assert_eq(array_records(), 1);
  cr_assert_eq(element_rows(id), 0);
  cr_assert_eq(store_count("SELECT COUNT(*) FROM events WHERE job_id >= ?1", (int64_t)id), 0);
  cr_assert_eq(live_jobs(cl), 1000u);
  Trainyard__GetJobResponse *g = get_job(cl, id, 3);
  cr_assert_eq(g->job->id, id + 3);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_PENDING);
  cr_assert_eq(g->n_events, 1u, "a pending element shows its submit event");
  cr_assert_str_eq(g->events[0]->reason, "submitted");
  trainyard__get_job_response__free_unpacked(g, NULL);
  /* One element cancelled, one held: each gets its row and its events. */
  cancel(cl, id, 5);
  hold(cl, id, 7);
  cr_assert_eq(element_rows(id), 2);
  cr_assert_eq(store_count("SELECT COUNT(*) FROM events WHERE job_id = ?1", (int64_t)id + 5), 2);
  cr_assert_eq(array_records(), 1);
  finish(&r, cl);

  /* Restarted: the 998 still in the record, the two with rows, nothing
   * twice, and no id of the array handed out again. */
  start(&r);
  cl = ctl_client(&r);
  cr_assert_eq(live_jobs(cl), 999u);
  g = get_job(cl, id, 5);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_CANCELLED);
  trainyard__get_job_response__free_unpacked(g, NULL);
  g = get_job(cl, id, 7);
  cr_assert(g->job->held);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_PENDING);
  trainyard__get_job_response__free_unpacked(g, NULL);
  g = get_job(cl, id, 999);
  cr_assert_eq(g->job->id, id + 999);
  cr_assert_eq(g->job->array_task_id, 999u);
  cr_assert_eq(g->n_events, 1u);
  trainyard__get_job_response__free_unpacked(g, NULL);
  /* A retry of the submit (its request id is in the record) is answered
   * with the array, creating nothing. */
  cr_assert_eq(submit_rid(cl, 1000, "r-1"), id);
  cr_assert_eq(live_jobs(cl), 999u);
  uint64_t single = submit(cl, 0);
  cr_assert_eq(single, id + 1000, "an id of the array's record was handed out again");
  /* The whole array cancelled: every element has its row, the record goes. */
  cancel(cl, id, -1);
  cr_assert_eq(element_rows(id), 1000);
  cr_assert_eq(array_records(), 0);
  cr_assert_eq(
      store_count("SELECT COUNT(*) FROM jobs WHERE array_id = ?1 AND state = 5", (int64_t)id),
      1000);
  finish(&r, cl);

  start(&r);
  cl = ctl_client(&r);
  cr_assert_eq(live_jobs(cl), 1u, "only the single job is left");
  finish(&r, cl);
}

/* Writes, as a store would hold them, an array `id` of `n` elements: its
 * record, and a row for each element in `rows` (state `state`); with
 * record = false a row per element, as traind before schema 8 wrote them. */
static void store_array(uint64_t id, uint32_t n, bool record, const uint32_t *rows, size_t n_rows,
                        int state) {
  char path[128], err[TY_ERR_LEN];
  snprintf(path, sizeof path, "%s/traind.db", dir);
  ty_store *s = NULL;
  cr_assert_eq(ty_store_open(path, &s, err, sizeof err), 0, "%s", err);
  ty_buf spec;
  ty_buf_init(&spec);
  array_spec_bytes(&spec, n);
  ty_job_row r = {.id = id,
                  .name = "t",
                  .user = "alice",
                  .queue = "default",
                  .state = TY_JOB_PENDING,
                  .reason = "submitted",
                  .submit_ms = 1000,
                  .nodes = "",
                  .alloc = "",
                  .spec = spec.data,
                  .spec_len = spec.len,
                  .request_id = "",
                  .model_file = "",
                  .array_id = (int64_t)id};
  cr_assert_eq(ty_store_begin(s), 0);
  if (record) cr_assert_eq(ty_store_insert_array(s, &r, n), 0);
  for (size_t i = 0; i < (record ? n_rows : n); i++) {
    ty_job_row e = r;
    e.array_task = record ? rows[i] : (uint32_t)i;
    e.id = id + e.array_task;
    if (record) e.state = state, e.end_ms = state == TY_JOB_CANCELLED ? 2000 : 0;
    cr_assert_eq(ty_store_insert_job(s, &e), 0);
  }
  cr_assert_eq(ty_store_commit(s), 0);
  ty_buf_close(&spec);
  ty_store_close(s);
}

/* A crash after an element's row was committed (its split and its change
 * are one transaction) leaves the record naming it too: the start takes
 * the row, never a second copy from the record. */
Test(controller, an_element_split_before_a_crash_is_loaded_once) {
  uint32_t split[] = {1, 3};
  store_array(10, 4, true, split, 2, TY_JOB_CANCELLED);
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  cr_assert_eq(live_jobs(cl), 2u);
  Trainyard__GetJobResponse *g = get_job(cl, 10, 1);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_CANCELLED);
  trainyard__get_job_response__free_unpacked(g, NULL);
  g = get_job(cl, 10, 2);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_PENDING);
  trainyard__get_job_response__free_unpacked(g, NULL);
  cr_assert_eq(submit(cl, 0), 14u, "the next id follows the array's");
  cancel(cl, 10, -1);
  cr_assert_eq(element_rows(10), 4);
  cr_assert_eq(array_records(), 0);
  finish(&r, cl);
}

/* A store written before schema 8 (a row per pending element, no arrays
 * table, user_version 7) upgrades; its elements are simply split already. */
Test(controller, a_store_with_a_row_per_pending_element_keeps_working) {
  store_array(20, 4, false, NULL, 0, 0);
  char path[128];
  snprintf(path, sizeof path, "%s/traind.db", dir);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db,
                            "DROP TABLE arrays; DROP INDEX jobs_by_queue;"
                            "ALTER TABLE jobs DROP COLUMN exclusive;"
                            "ALTER TABLE jobs DROP COLUMN req_nodes;"
                            "ALTER TABLE jobs DROP COLUMN exc_nodes;"
                            "ALTER TABLE queues DROP COLUMN default_mem;"
                            "ALTER TABLE queues DROP COLUMN max_mem; DROP TABLE meta;"
                            "ALTER TABLE jobs DROP COLUMN graph_progress;"
                            "ALTER TABLE jobs DROP COLUMN kill_sent;"
                            "ALTER TABLE jobs DROP COLUMN requeue_asked;"
                            "ALTER TABLE jobs DROP COLUMN preempt_for;"
                            "ALTER TABLE queues DROP COLUMN allow_groups;"
                            "ALTER TABLE queues DROP COLUMN allow_users;"
                            "ALTER TABLE ranks DROP COLUMN run_state;"
                            "ALTER TABLE jobs DROP COLUMN held_by;"
                            "ALTER TABLE jobs DROP COLUMN request_hash;"
                            "PRAGMA user_version=7",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  running r;
  start(&r);
  cr_assert_eq(ty_store_user_version(ty_controller_store(r.ctl)), ty_store_schema_version());
  ty_rpc_client *cl = ctl_client(&r);
  cr_assert_eq(array_records(), 0);
  cr_assert_eq(live_jobs(cl), 4u);
  hold(cl, 20, 2);
  cancel(cl, 20, -1);
  cr_assert_eq(element_rows(20), 4);
  cr_assert_eq(store_count("SELECT COUNT(*) FROM jobs WHERE array_id = ?1 AND state = 5", 20), 4);
  cr_assert_eq(submit(cl, 0), 24u);
  finish(&r, cl);
}

/* ---- submits that cannot start run no pass ------------------------------------------ */

static void reason_is(ty_rpc_client *cl, uint64_t id, const char *prefix) {
  Trainyard__GetJobResponse *g = get_job(cl, id, -1);
  bool ok = strncmp(g->job->reason, prefix, strlen(prefix)) == 0;
  cr_assert(ok, "job %llu: reason \"%s\", not \"%s...\"", (unsigned long long)id, g->job->reason,
            prefix);
  trainyard__get_job_response__free_unpacked(g, NULL);
}

/* With no node, nothing submitted can start: N submits (single jobs and an
 * array) cost no pass each, yet each job says why it waits without waiting
 * for the tick; a cancel still runs a pass. Without the check every submit
 * ran one. */
Test(controller, submits_that_cannot_start_run_no_pass) {
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  enum { N = 40 };
  uint64_t ids[N];
  for (int i = 0; i < N; i++)
    ids[i] = submit(cl, i == N / 2 ? 100 : 0);
  /* Submit i's pass request was handled before submit i+1 was answered
   * (the last one's may still be queued behind this request). */
  for (int i = 0; i < N - 1; i++)
    reason_is(cl, ids[i], "Resources");
  cr_assert_eq(live_jobs(cl), N - 1 + 100u);
  cancel(cl, ids[0], -1);
  cr_assert_eq(live_jobs(cl), N - 2 + 100u); /* one more round trip: the pass ran */
  ty_rpc_client_close(cl);
  ctl_stop(&r);
  ty_controller_stats st;
  ty_controller_stats_get(r.ctl, &st);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
  /* The start's pass and the cancel's; the submits' were left to the tick. */
  cr_assert(st.pass_requested >= 2 && st.pass_requested <= 3, "%llu passes on request",
            (unsigned long long)st.pass_requested);
  cr_assert_geq(st.pass_skipped, N / 2);
}

/* ---- task ends in one turn make one pass -------------------------------------------- */

/* RegisterNode of w1 (64 CPUs) from cl, reporting tasks 0..n-1 of the
 * elements first..first+n-1 as exited 0 (n = 0: none). */
static void register_w1(ty_rpc_client *cl, uint64_t first, uint32_t n) {
  Trainyard__NodeInfo ni = TRAINYARD__NODE_INFO__INIT;
  ni.name = "w1", ni.io_addr = "127.0.0.1:9", ni.cpus = 64;
  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &ni;
  Trainyard__RunningTask *tasks = calloc(n ? n : 1, sizeof(*tasks));
  Trainyard__RunningTask **tp = calloc(n ? n : 1, sizeof(*tp));
  for (uint32_t i = 0; i < n; i++) {
    trainyard__running_task__init(&tasks[i]);
    tasks[i].job_id = first + i, tasks[i].state = TRAINYARD__TASK_STATE__TASK_EXITED;
    tp[i] = &tasks[i];
  }
  req.n_tasks = n, req.tasks = tp;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  cr_assert_eq(ctl_call(cl, TY_M_REGISTER_NODE, b.data, b.len, NULL), 0);
  ty_buf_close(&b);
  free(tasks);
  free(tp);
}

static int job_state(ty_rpc_client *cl, uint64_t id, int task) {
  Trainyard__GetJobResponse *g = get_job(cl, id, task);
  int st = g->job->state;
  trainyard__get_job_response__free_unpacked(g, NULL);
  return st;
}

/* K task ends that arrive together (here: one RegisterNode reporting K
 * exited tasks; a worker's reports read in one loop turn alike) each ask
 * for a pass, and the controller runs one for all of them: the pass
 * requests are coalesced (state.c), so the passes follow the loop's turns,
 * not the number of ends. The worker is this test's own connection, which
 * leaves the LaunchTask calls unread until it reports the ends. */
Test(controller, task_ends_in_one_turn_make_one_pass) {
  enum { K = 32 };
  node_timeout_ms = 60000;
  running r;
  start(&r);
  ty_rpc_client *worker = ctl_client(&r), *cl = ctl_client(&r);
  register_w1(worker, 0, 0);
  uint64_t first = submit(cl, K);
  for (int64_t end = ty_mono_ms() + 30000;
       ty_mono_ms() < end && job_state(cl, first, K - 1) != TRAINYARD__JOB_STATE__JOB_RUNNING;)
    usleep(10000);
  for (uint32_t t = 0; t < K; t++)
    cr_assert_eq(job_state(cl, first, (int)t), TRAINYARD__JOB_STATE__JOB_RUNNING, "element %u", t);
  register_w1(worker, first, K);
  for (uint32_t t = 0; t < K; t++)
    cr_assert_eq(job_state(cl, first, (int)t), TRAINYARD__JOB_STATE__JOB_COMPLETED, "element %u",
                 t);
  ty_rpc_client_close(worker);
  finish_keep(&r, cl);
  ty_controller_stats st;
  ty_controller_stats_get(r.ctl, &st);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
  /* The start's, the registrations', the submit's and the ends' (one, or
   * two when the register's commit came back in another turn): a pass per
   * end would be K more. */
  cr_assert_lt(st.pass_requested, 8u, "%llu passes on request for %d task ends",
               (unsigned long long)st.pass_requested, K);
}

/* ---- a damaged store ---------------------------------------------------------------- */

/* Overwrites the page of the jobs table that holds the oldest finished
 * jobs (the leftmost leaf: never read by a start) with garbage. */
static void damage_history(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/traind.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(db,
                                  "SELECT pageno, (SELECT page_size FROM pragma_page_size) FROM "
                                  "dbstat WHERE name = 'jobs' AND pagetype = 'leaf' ORDER BY path",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t page = sqlite3_column_int64(st, 0), size = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  cr_assert_eq(fseek(f, (long)((page - 1) * size), SEEK_SET), 0);
  for (int64_t i = 0; i < size; i++)
    fputc(0xA5, f);
  cr_assert_eq(fclose(f), 0);
}

/* The whole-file check no longer delays the start (it runs after it, off
 * the loop), but a damaged file is still refused: the controller stops on
 * its own, naming the file and what the check found. */
Test(controller, a_damaged_store_stops_the_controller_after_its_start) {
  fill_store();
  damage_history();
  running r;
  start(&r);
  /* It started (the tables a start reads are sound), then stopped: its
   * port closes. */
  int port = ty_controller_rpc_port(r.ctl);
  bool closed = false;
  for (int i = 0; i < 600 && !closed; i++) {
    ty_rpc_client *cl = NULL;
    closed = ty_rpc_client_open("127.0.0.1", port, 1000, &cl) != 0;
    ty_rpc_client_close(cl);
    if (!closed) usleep(50000);
  }
  cr_assert(closed, "the controller kept serving a damaged store");
  ctl_stop(&r);
  const char *why = ty_controller_failure(r.ctl);
  cr_assert_not_null(why);
  cr_assert(strstr(why, dir) && strstr(why, "integrity check failed"), "%s", why);
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
}

Test(controller, a_sound_store_passes_the_check_after_its_start) {
  fill_store();
  running r;
  start(&r);
  ty_rpc_client *cl = ctl_client(&r);
  cr_assert_eq(live_jobs(cl), LIVE);
  ty_rpc_client_close(cl);
  ctl_stop(&r);
  cr_assert_null(ty_controller_failure(r.ctl));
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
}

/* A stop while the whole-file check runs interrupts it (the check would
 * hold ten minutes here, past the suite's timeout): no verdict, so no
 * failure either. */
Test(controller, a_stop_interrupts_the_store_check) {
  fill_store();
  setenv("TRAINYARD_TEST_STORE_CHECK_HOLD_MS", "600000", 1);
  running r;
  start(&r);
  unsetenv("TRAINYARD_TEST_STORE_CHECK_HOLD_MS");
  ctl_stop(&r);
  cr_assert_null(ty_controller_failure(r.ctl), "%s", ty_controller_failure(r.ctl));
  ty_controller_destroy(r.ctl);
  uv_loop_close(&r.loop);
}
