/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon/store unit tests' fixture (store_fixture.c). */
#ifndef TY_TESTS_UNIT_DAEMON_STORE_FIXTURE_H
#define TY_TESTS_UNIT_DAEMON_STORE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "tests/support/tree.h"

extern char store_dir[TY_TEST_DIR_LEN]; /* this test's folder (store_setup) */
extern char store_path[128];            /* its traind.db */

void store_setup(void);    /* a new folder; TestSuite's .init */
void store_teardown(void); /* removes it; .fini */
ty_store *open_ok(void);   /* opens store_path, asserting success */
/* Applies t in a transaction of its own and destroys it. */
void commit_txn(ty_store *s, ty_txn *t);
/* A job row of user alice in queue default with a 4-byte spec. */
ty_job_row row(uint64_t id, int state);
/* ty_store_each_* callbacks: +1 to the int at ud; the ids, into an ids. */
int count_jobs(const ty_job_row *r, void *ud);
int count_ranks(const ty_rank_row *r, void *ud);
typedef struct ids {
  uint64_t v[16];
  size_t n;
} ids;
int note_id(const ty_job_row *r, void *ud);
/* Job id PENDING with its submit event, committed. */
void submit(ty_store *s, uint64_t id);
/* Stores w (or, with revoke, revokes w.uid's tokens at w.revoked_ms) in a txn. */
void apply_web(ty_store *s, const ty_web_token_row *w, bool revoke);

#endif
