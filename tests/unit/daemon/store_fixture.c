/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon/store unit tests' fixture (test_store.c, test_store_upgrade.c):
 * a fresh folder per test holding the store's file, and the rows and
 * transactions the tests build on.
 */
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char store_dir[TY_TEST_DIR_LEN];
char store_path[128];

void store_setup(void) {
  cr_assert_eq(ty_test_make_dir(store_dir, "store"), 0);
  snprintf(store_path, sizeof(store_path), "%s/traind.db", store_dir);
}

void store_teardown(void) {
  cr_assert_eq(ty_test_remove_tree(store_dir), 0, "%s stayed", store_dir);
}

ty_store *open_ok(void) {
  ty_store *s = NULL;
  char err[512];
  int rc = ty_store_open(store_path, &s, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  return s;
}

/* Applies t in a transaction of its own and destroys it. */
void commit_txn(ty_store *s, ty_txn *t) {
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_txn_apply(t, s), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  ty_txn_destroy(t);
}

ty_job_row row(uint64_t id, int state) {
  static const uint8_t spec[] = {1, 2, 0, 3};
  ty_job_row r = {.id = id,
                  .name = "train",
                  .user = "alice",
                  .queue = "default",
                  .priority = 5,
                  .state = state,
                  .reason = "",
                  .submit_ms = 1000,
                  .nodes = "",
                  .alloc = "",
                  .spec = spec,
                  .spec_len = sizeof(spec)};
  return r;
}

int count_jobs(const ty_job_row *r, void *ud) {
  (void)r;
  (*(int *)ud)++;
  return 0;
}

void submit(ty_store *s, uint64_t id) {
  ty_txn *t = ty_txn_create();
  ty_job_row r = row(id, TY_JOB_PENDING);
  ty_txn_insert_job(t, &r);
  ty_event_row ev = {.job_id = id,
                     .time_ms = 1000,
                     .from_state = 0,
                     .to_state = TY_JOB_PENDING,
                     .reason = "submitted",
                     .actor = "user:alice"};
  ty_txn_add_event(t, &ev);
  commit_txn(s, t);
}

int note_id(const ty_job_row *r, void *ud) {
  ids *l = ud;
  if (l->n < 16) l->v[l->n] = r->id;
  l->n++;
  return 0;
}

int count_ranks(const ty_rank_row *r, void *ud) {
  (void)r;
  (*(int *)ud)++;
  return 0;
}

/* Stores w (or, with revoke, revokes w.uid's tokens at w.revoked_ms) in a txn. */
void apply_web(ty_store *s, const ty_web_token_row *w, bool revoke) {
  ty_txn *t = ty_txn_create();
  if (revoke)
    ty_txn_revoke_web_tokens(t, w->uid, w->revoked_ms);
  else
    ty_txn_put_web_token(t, w);
  commit_txn(s, t);
}
