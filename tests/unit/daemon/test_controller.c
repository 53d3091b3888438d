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
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/convert.h"
#include "proto/methods.h"

#define HISTORY 20000u /* finished jobs in the store */
#define LIVE 5u        /* pending jobs */

static char dir[64];

/* A command job's encoded spec, as a submit stores it. */
static void spec_bytes(ty_buf *out) {
  char *argv[] = {"true"};
  ty_job_spec s = {.kind = TY_JOB_KIND_COMMAND,
                   .name = "t",
                   .user = "alice",
                   .queue = "default",
                   .argv = argv,
                   .argc = 1,
                   .cwd = "/tmp"};
  ty_proto_job pj;
  ty_proto_encode_job(&s, &pj);
  cr_assert_eq(ty_wire_pack(&pj.job.base, out), 0);
  ty_proto_job_close(&pj);
}

static void fill_store(void) {
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
                    .submit_ms = 1000,
                    .start_ms = live ? 0 : 2000,
                    .end_ms = live ? 0 : 3000,
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

typedef struct running {
  uv_loop_t loop;
  uv_async_t stop;
  ty_controller *ctl;
  pthread_t thread;
} running;

static void on_stop(uv_async_t *h) {
  running *r = h->data;
  uv_close((uv_handle_t *)&r->stop, NULL);
  ty_controller_stop(r->ctl);
}

static void *loop_main(void *ud) {
  running *r = ud;
  uv_run(&r->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void start(running *r) {
  ty_controller_config cfg = {.listen_host = "127.0.0.1",
                              .metrics_host = "127.0.0.1",
                              .state_dir = dir,
                              .heartbeat_ms = 1000,
                              .node_timeout_ms = 5000,
                              .kill_grace_s = 1};
  char err[TY_ERR_LEN];
  cr_assert_eq(uv_loop_init(&r->loop), 0);
  cr_assert_eq(ty_controller_create(&r->loop, &cfg, &r->ctl, err, sizeof err), 0, "%s", err);
  r->stop.data = r;
  cr_assert_eq(uv_async_init(&r->loop, &r->stop, on_stop), 0);
  cr_assert_eq(pthread_create(&r->thread, NULL, loop_main, r), 0);
}

static void stop(running *r) {
  uv_async_send(&r->stop);
  pthread_join(r->thread, NULL);
}

/* One call: the status, the answer's bytes in *out (heap, caller frees). */
static int call(ty_rpc_client *cl, const char *method, const uint8_t *p, size_t n, ty_buf *out) {
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, method, p, n, 10000, &res), 0);
  int status = res.status;
  if (out) {
    ty_buf_init(out);
    ty_buf_append(out, res.payload, res.payload_len);
  }
  ty_rpc_result_close(&res);
  return status;
}

static void setup(void) {
  strcpy(dir, "/tmp/ty-ctl-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(controller, .init = setup, .fini = teardown, .timeout = 120);

Test(controller, tick_pass_and_ls_touch_only_live_jobs) {
  fill_store();
  running r;
  start(&r);
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", ty_controller_rpc_port(r.ctl), 10000, &cl), 0);
  /* ls (live jobs: the no-filter request trainctl ls sends by default). */
  Trainyard__ListJobsRequest lr = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[] = {TRAINYARD__JOB_STATE__JOB_PENDING,
                                  TRAINYARD__JOB_STATE__JOB_RUNNING};
  lr.n_states = 2, lr.states = states;
  uint8_t req[64];
  size_t req_len = trainyard__list_jobs_request__pack(&lr, req);
  ty_buf first, again, after;
  cr_assert_eq(call(cl, TY_M_LIST_JOBS, req, req_len, &first), 0);
  cr_assert_eq(call(cl, TY_M_LIST_JOBS, req, req_len, &again), 0);
  cr_assert_eq(first.len, again.len);
  cr_assert_eq(memcmp(first.data, again.data, first.len), 0, "the cached reply differs");
  /* A change to one job: the next ls re-encodes that one only. */
  Trainyard__UpdateJobRequest uj = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  uj.job_id = HISTORY + 1, uj.action = "hold";
  uint8_t ub[64];
  cr_assert_eq(call(cl, TY_M_UPDATE_JOB, ub, trainyard__update_job_request__pack(&uj, ub), NULL),
               0);
  cr_assert_eq(call(cl, TY_M_LIST_JOBS, req, req_len, &after), 0);
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
  stop(&r);
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
