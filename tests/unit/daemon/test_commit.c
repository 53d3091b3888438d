/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/commit: group commit batches concurrent submissions
 * into few transactions, isolates a failing request, and drains on destroy.
 * These count commits; they never time anything. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* An update of a job that has no row fails its txn, and the words kept
 * name the job (SQLite's own would be "not an error"). */
Test(commit, an_update_without_a_row_names_the_job) {
  ty_store *s = NULL;
  char err[256];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_committer *c = NULL;
  cr_assert_eq(ty_committer_create(&loop, s, &c), 0);
  counts n = {0};
  ty_txn *t = ty_txn_create();
  ty_job_row r = {.id = 9, .state = TY_JOB_RUNNING};
  cr_assert_eq(ty_txn_update_job(t, &r, TY_JOB_BIT(state)), 0);
  ty_committer_submit(c, t, on_done, &n);
  while (n.ok + n.failed < 1)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(n.failed, 1);
  char why[256];
  ty_committer_last_error(c, why, sizeof why);
  cr_assert_str_eq(why, "job 9 has no row");
  ty_committer_destroy(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  ty_store_close(s);
}

/* A txn names the array elements whose rows it inserts, not other jobs. */
Test(commit, a_txn_names_the_elements_it_inserts) {
  ty_txn *t = submit_txn(1, "default");
  size_t n = 0;
  cr_assert_null(ty_txn_inserted_elements(t, &n));
  cr_assert_eq(n, 0);
  ty_job_row r = {.id = 8, .array_id = 7, .name = "j", .user = "u", .queue = "default"};
  cr_assert_eq(ty_txn_insert_job(t, &r), 0);
  uint64_t *ids = ty_txn_inserted_elements(t, &n);
  cr_assert_eq(n, 1);
  cr_assert_eq(ids[0], 8);
  free(ids);
  ty_txn_destroy(t);
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

/* Writes text to dir/name, making dir's missing parents (one level). */
static void put_file(const char *dirpath, const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dirpath, name);
  FILE *f = fopen(p, "w");
  cr_assert(f, "%s", p);
  fputs(text, f);
  fclose(f);
}

static bool exists(const char *p) {
  return access(p, F_OK) == 0;
}

/* A prune removes the deleted jobs' checkpoint directories once it
 * committed: CHECKPOINT_DIR/JOB when its stamp names that very job (its
 * contents whatever they are, links unlinked, never followed); one whose
 * stamp names another job of the same id, or none, and a job's not pruned
 * stay. Before, they stayed for good (root's 0711 CHECKPOINT_DIR). */
Test(commit, a_prune_removes_its_jobs_checkpoint_directories) {
  ty_store *s = NULL;
  char err[256], root[256], p[512], outside[512];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  static const uint8_t spec[] = {0x0a, 0x01, 'x'};
  cr_assert_eq(ty_store_begin(s), 0);
  for (uint64_t id = 1; id <= 3; id++) {
    ty_job_row r = {.id = id,
                    .name = "g",
                    .user = "u",
                    .queue = "default",
                    .state = TY_JOB_COMPLETED,
                    .reason = "",
                    .submit_ms = (int64_t)id * 10,
                    .start_ms = 50,
                    .end_ms = 100,
                    .nodes = "",
                    .alloc = "",
                    .spec = spec,
                    .spec_len = sizeof(spec),
                    .request_id = "",
                    .model_file = ""};
    cr_assert_eq(ty_store_insert_job(s, &r), 0);
  }
  cr_assert_eq(ty_store_commit(s), 0);
  snprintf(root, sizeof root, "%s/ckpt", dir);
  snprintf(outside, sizeof outside, "%s/outside", dir);
  cr_assert_eq(mkdir(root, 0711), 0);
  put_file(dir, "outside", "not the job's");
  const char *stamps[] = {NULL, "job 1 submitted 10\n", "job 2 submitted 999\n", NULL,
                          "job 4 submitted 40\n"};
  for (int id = 1; id <= 4; id++) {
    snprintf(p, sizeof p, "%s/%d", root, id);
    cr_assert_eq(mkdir(p, 0700), 0);
    if (stamps[id]) put_file(p, ".trainyard-job", stamps[id]);
    put_file(p, "checkpoint.onnx", "weights");
  }
  snprintf(p, sizeof p, "%s/1/a", root);
  cr_assert_eq(mkdir(p, 0700), 0);
  put_file(p, "b", "nested");
  snprintf(p, sizeof p, "%s/1/link", root);
  cr_assert_eq(symlink(dir, p), 0); /* to the test's directory: never followed */
  snprintf(p, sizeof p, "%s/1/flink", root);
  cr_assert_eq(symlink(outside, p), 0);

  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_committer *c = NULL;
  cr_assert_eq(ty_committer_create(&loop, s, &c), 0);
  counts n = {0};
  uint32_t gone = 0;
  ty_txn *t = ty_txn_create();
  ty_txn_prune(t, 1000, 100, &gone, root);
  ty_committer_submit(c, t, on_done, &n);
  while (n.ok + n.failed < 1)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(n.ok, 1);
  cr_assert_eq(gone, 3u);
  ty_committer_destroy(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  ty_store_close(s);

  snprintf(p, sizeof p, "%s/1", root);
  cr_expect(!exists(p), "job 1's checkpoint directory stayed");
  cr_expect(exists(outside) && exists(path), "a link was followed");
  const char *kept[] = {"2/checkpoint.onnx", "3/checkpoint.onnx", "4/checkpoint.onnx"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", root, kept[i]);
    cr_expect(exists(p), "%s was removed", p);
  }
}
