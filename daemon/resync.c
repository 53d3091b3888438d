/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Putting the store back in step after writes that failed (a full disk, a
 * read-only state directory). A change is applied in memory before its
 * transaction is committed; when the commit fails, memory holds what the
 * store does not (a job cancelled in memory is still RUNNING in the store)
 * and the jobs' row fingerprints claim the store has it, so later saves
 * would skip those columns for good. This file owns the repair: on the
 * tick after a failure, every job in memory (the live set and the finished
 * cache) and every node is written whole in one transaction, again every
 * --store-retry-ms (5 s) until one such write is stored. The events of the lost
 * transactions (the history's lines) are not written again; the states
 * they led to are. A job whose RUNNING record was lost this way was not
 * launched (launch.c): once the store writes again it is scheduled anew.
 * An array element whose first row was lost this way is in its array's
 * stored record again (state.c): its row is inserted, not updated.
 */
#include "daemon/daemon_internal.h"

#include <string.h>

/* Between whole writes while they fail: --store-retry-ms. */
static int64_t retry_ms(const ty_controller *ctl) {
  return ctl->cfg.store_retry_ms ? ctl->cfg.store_retry_ms : 5000;
}

/* The jobs not launched because their RUNNING record was not stored
 * (launch.c) are scheduled again. */
static void release_store_waits(ty_controller *ctl) {
  bool any = false;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    any |= j->store_wait;
    j->store_wait = false;
  }
  if (any) ty__sched_request(ctl);
}

static void on_resynced(int status, void *ud) {
  ty_controller *ctl = ud;
  ctl->resync_inflight = false;
  if (status != 0) return; /* logged by the committer; the tick tries again */
  ctl->store_failures_seen = ctl->resync_mark;
  ty_info("store: writes again; every job and node in memory was written again after the "
          "failed writes");
  release_store_waits(ctl);
}

/* j's row whole: no column's fingerprint matches an unknown one. */
static void save_whole(ty_controller *ctl, ty_job *j, ty_txn *t) {
  /* Still in its array's stored record, which changes never reach; one
   * whose row was lost with a failed txn is inserted (state.c). */
  if (j->unsplit && !j->split_lost) return;
  memset(j->fp, 0, sizeof j->fp);
  ty__job_save(ctl, j, t);
}

void ty__store_resync(ty_controller *ctl) {
  if (!ctl->commit || ctl->resync_inflight || ctl->stopping) return;
  uint64_t failures = ty_committer_failures(ctl->commit);
  int64_t now = ty_mono_ms();
  if (failures == ctl->store_failures_seen || now < ctl->resync_next_mono) return;
  ctl->resync_next_mono = now + retry_ms(ctl);
  ty_txn *t = ty_txn_create();
  for (size_t i = 0; i < ctl->n_jobs; i++)
    save_whole(ctl, ctl->jobs[i], t);
  for (ty_job *j = ctl->lru_head; j; j = j->lru_next)
    save_whole(ctl, j, t);
  for (size_t i = 0; i < ctl->n_nodes; i++)
    ty__node_save(ctl->nodes[i], t);
  ty_warn("store: %llu write(s) failed: writing every job and node in memory again",
          (unsigned long long)(failures - ctl->store_failures_seen));
  ctl->resync_mark = failures;
  ctl->resync_inflight = true;
  ty__commit(ctl, t, on_resynced, ctl);
}
