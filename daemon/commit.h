/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/commit: group commit. The loop builds a ty_txn (the mutations of one
 * request: a job row and its event, node rows, ...) and submits it with a
 * completion callback. A writer thread takes ALL queued txns, applies each
 * inside its own savepoint of ONE SQLite transaction, commits once (one
 * fsync), then wakes the loop with uv_async_send; the loop calls every
 * callback of the batch. So N requests that arrive while a commit runs cost
 * one fsync, not N.
 *
 * A txn whose own statements fail (say, a constraint) is rolled back to its
 * savepoint and answered TY_ESTORE alone; a failed COMMIT answers the whole
 * batch TY_ESTORE. Callbacks always run on the loop thread, in submit order.
 */
#ifndef TY_DAEMON_COMMIT_H
#define TY_DAEMON_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/store.h"

typedef struct ty_txn ty_txn;

ty_txn *ty_txn_create(void);
void ty_txn_destroy(ty_txn *t); /* accepts NULL */
/* Each adds a deep copy of the row, so the caller may change or free its own
 * strings right after. A job row's spec is the submitted job (its size the
 * client's choice), copied with malloc: TY_ENOMEM leaves t unchanged. */
int ty_txn_insert_job(ty_txn *t, const ty_job_row *r);
int ty_txn_update_job(ty_txn *t, const ty_job_row *r);
void ty_txn_add_event(ty_txn *t, const ty_event_row *r);
void ty_txn_upsert_node(ty_txn *t, const ty_node_row *r);
void ty_txn_upsert_queue(ty_txn *t, const ty_queue_row *r);
void ty_txn_upsert_usage(ty_txn *t, const ty_usage_row *r);
void ty_txn_add_admin_event(ty_txn *t, const ty_admin_event_row *r);
size_t ty_txn_len(const ty_txn *t);
/* Applies the txn's mutations in order on the writer connection (for tests
 * and for start-up writes before the writer thread runs). */
int ty_txn_apply(const ty_txn *t, ty_store *s);

typedef struct ty_committer ty_committer;
/* status: 0 once committed, TY_ESTORE when it was not. */
typedef void (*ty_commit_cb)(int status, void *ud);

/* Starts the writer thread. The store must outlive the committer. */
int ty_committer_create(uv_loop_t *loop, ty_store *store, ty_committer **out);
/* Takes ownership of txn. cb (may be NULL) is called on the loop thread. */
void ty_committer_submit(ty_committer *c, ty_txn *txn, ty_commit_cb cb, void *ud);
/* Called on the loop after the callbacks of one or more batches ran: how many
 * commits (transactions, i.e. fsyncs) and how many txns they held. */
void ty_committer_on_batch(ty_committer *c, void (*cb)(size_t commits, size_t txns, void *ud),
                          void *ud);
/* Txns submitted and not yet answered. */
size_t ty_committer_inflight(const ty_committer *c);
/* Commits whatever is queued, answers every callback, stops the thread and
 * closes its async handle (freed once the loop runs the close callback).
 * Call on the loop thread. Accepts NULL. */
void ty_committer_destroy(ty_committer *c);

#endif
