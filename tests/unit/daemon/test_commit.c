/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/commit: group commit batches concurrent submissions
 * into few transactions, isolates a failing request, and drains on destroy.
 * These count commits; they never time anything. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];
static char path[128];

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "commit"), 0);
  snprintf(path, sizeof(path), "%s/traind.db", dir);
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(commit, .init = setup, .fini = teardown);

typedef struct counts {
  int ok, failed;
  size_t commits, txns;
} counts;

static void on_done(int status, void *ud) {
  counts *c = ud;
  if (status == 0)
    c->ok++;
  else
    c->failed++;
}

static void on_batch(size_t commits, size_t txns, void *ud) {
  counts *c = ud;
  c->commits += commits;
  c->txns += txns;
}

static ty_txn *submit_txn(uint64_t id, const char *queue) {
  static const uint8_t spec[] = {0x0a, 0x01, 'x'};
  ty_txn *t = ty_txn_create();
  ty_job_row r = {.id = id,
                  .name = "j",
                  .user = "u",
                  .queue = queue,
                  .state = TY_JOB_PENDING,
                  .submit_ms = 1,
                  .spec = spec,
                  .spec_len = sizeof(spec)};
  ty_txn_insert_job(t, &r);
  ty_event_row ev = {.job_id = id,
                     .time_ms = 1,
                     .to_state = TY_JOB_PENDING,
                     .reason = "submitted",
                     .actor = "user:u"};
  ty_txn_add_event(t, &ev);
  return t;
}

static int count_jobs(const ty_job_row *r, void *ud) {
  (void)r;
  (*(int *)ud)++;
  return 0;
}

/* 200 submissions arrive while another writer holds the database: the first
 * batch can take at most what had arrived when the writer woke, the rest
 * wait and go in one more commit. Every request is acknowledged and durable. */
Test(commit, concurrent_submissions_share_commits) {
  ty_store *s = NULL;
  char err[256];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  sqlite3 *other = NULL;
  cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_committer *c = NULL;
  cr_assert_eq(ty_committer_create(&loop, s, &c), 0);
  counts n = {0};
  ty_committer_on_batch(c, on_batch, &n);
  for (uint64_t id = 1; id <= 200; id++)
    ty_committer_submit(c, submit_txn(id, "default"), on_done, &n);
  cr_assert_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);

  while (n.ok + n.failed < 200)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(n.ok, 200);
  cr_assert_eq(n.txns, 200u);
  cr_assert_lt(ty_store_commits(s), 200u);
  cr_assert_leq(ty_store_commits(s), 2u, "commits: %llu", (unsigned long long)ty_store_commits(s));
  cr_assert_eq(n.commits, ty_store_commits(s));
  cr_assert_eq(ty_committer_inflight(c), 0u);
  ty_committer_destroy(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);

  int jobs = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &jobs), 0);
  cr_assert_eq(jobs, 200);
  ty_store_close(s);
}

Test(commit, a_failing_request_fails_alone) {
  ty_store *s = NULL;
  char err[256];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_committer *c = NULL;
  cr_assert_eq(ty_committer_create(&loop, s, &c), 0);
  counts n = {0};
  ty_committer_submit(c, submit_txn(1, "default"), on_done, &n);
  ty_committer_submit(c, submit_txn(2, "no-such-queue"), on_done, &n);
  ty_committer_submit(c, submit_txn(3, "default"), on_done, &n);
  while (n.ok + n.failed < 3)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(n.ok, 2);
  cr_assert_eq(n.failed, 1);
  /* The failure is counted (traind writes memory again after one) and its
   * words kept for the answers ("...: the controller's store failed (%s)"). */
  cr_assert_eq(ty_committer_failures(c), 1);
  char why[256];
  ty_committer_last_error(c, why, sizeof why);
  cr_assert(strstr(why, "constraint"), "%s", why);
  ty_committer_destroy(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  int jobs = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &jobs), 0);
  cr_assert_eq(jobs, 2);
  ty_store_close(s);
}

Test(commit, destroy_drains_the_queue) {
  ty_store *s = NULL;
  char err[256];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_committer *c = NULL;
  cr_assert_eq(ty_committer_create(&loop, s, &c), 0);
  counts n = {0};
  char why[256];
  ty_committer_last_error(c, why, sizeof why);
  cr_assert_str_eq(why, "", "no failure yet");
  cr_assert_eq(ty_committer_failures(c), 0);
  for (uint64_t id = 1; id <= 20; id++)
    ty_committer_submit(c, submit_txn(id, "default"), on_done, &n);
  ty_committer_destroy(c); /* without running the loop first */
  cr_assert_eq(n.ok, 20);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  ty_store_close(s);
  ty_committer_destroy(NULL);
}
