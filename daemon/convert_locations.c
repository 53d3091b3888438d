/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for where a job's ranks run:
 * GetTaskLocations (trainctl logs and attach: the ranks of every run, with
 * their tokens) and WatchJob's events. Pure, as convert.c; what another
 * user may not see (exit codes, the reasons' details) is left out when
 * `full` is false.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

int ty__conv_task_locations_req(const uint8_t *p, size_t n, uint64_t *out_id,
                                bool *out_want_tokens) {
  Trainyard__GetTaskLocationsRequest *req =
      ty_wire_unpack(&trainyard__get_task_locations_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out_id = req->job_id;
  *out_want_tokens = req->want_tokens;
  ty_wire_free(req);
  return 0;
}

/* r's fields that come from j's state (borrowing from j), no tasks; its
 * exit code and signal only when `full` (the caller is j's owner or an
 * operator), else the reason's public form in reason[len]. */
static void locations_head(const ty_job *j, bool full, char *reason, size_t len,
                           Trainyard__GetTaskLocationsResponse *r) {
  trainyard__get_task_locations_response__init(r);
  r->state = (Trainyard__JobState)j->state;
  r->reason = ty_wire_str(j->reason);
  r->failed_rank = j->first_failed ? (int32_t)j->first_failed - 1 : -1;
  if (full) {
    r->exit_code = j->exit_code, r->term_signal = j->term_signal;
    return;
  }
  ty_job_reason_public(j->reason, reason, len);
  r->reason = reason;
}

/* The TaskLocation of one rank of one run, with its token when tokens
 * (rank-indexed, token_len bytes each) is given; borrows all of them. */
static void location(Trainyard__TaskLocation *l, const ty__run_loc *at, const uint8_t *tokens,
                     size_t token_len) {
  trainyard__task_location__init(l);
  l->rank = at->rank;
  l->node = (char *)at->node;
  l->io_addr = ty_wire_str(at->io_addr);
  l->run = at->run, l->start_ms = at->start_ms;
  if (tokens)
    l->token = (ProtobufCBinaryData){token_len, (uint8_t *)tokens + (size_t)at->rank * token_len};
}

/* A repeated TaskLocation of n ranks at[]: *out_ls and *out_ptrs are the
 * caller's to free. */
static int locations_of(const ty__run_loc *at, uint32_t n, const uint8_t *tokens, size_t token_len,
                        Trainyard__TaskLocation **out_ls, Trainyard__TaskLocation ***out_ptrs) {
  Trainyard__TaskLocation *ls = *out_ls = ty_wire_calloc(n, sizeof(*ls));
  Trainyard__TaskLocation **ptrs = *out_ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  if (!ls || !ptrs) return TY_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    location(&ls[i], &at[i], tokens, token_len);
    ptrs[i] = &ls[i];
  }
  return 0;
}

/* The run j runs (or ran last) from memory: *out_at is the caller's to free. */
static uint32_t current_run(const ty_job *j, ty__run_loc **out_at) {
  uint32_t n = j->n_slots && j->state != TY_JOB_PENDING ? j->n_ranks : 0;
  ty__run_loc *at = *out_at = ty_wire_calloc(n, sizeof(*at));
  for (uint32_t i = 0; at && i < n; i++) {
    const ty_cluster_node *nd = j->slots[j->ranks[i].slot].node;
    at[i] = (ty__run_loc){.run = j->acct_run,
                          .rank = i,
                          .node = nd->name,
                          .io_addr = nd->io_addr,
                          .start_ms = j->start_ms};
  }
  return at ? n : 0;
}

/* Packs r with the tasks at[n] and the earlier runs into out. */
static int pack_locations(Trainyard__GetTaskLocationsResponse *r, const ty__run_loc *at, uint32_t n,
                          const ty__run_loc *earlier, uint32_t n_earlier, const uint8_t *tokens,
                          size_t token_len, ty_buf *out) {
  Trainyard__TaskLocation *ls = NULL, **ptrs = NULL, *els = NULL, **eptrs = NULL;
  int rc = locations_of(at, n, tokens, token_len, &ls, &ptrs);
  if (rc == 0) rc = locations_of(earlier, n_earlier, tokens, token_len, &els, &eptrs);
  r->n_tasks = n, r->tasks = ptrs;
  r->n_earlier_runs = n_earlier, r->earlier_runs = eptrs;
  if (rc == 0) rc = ty_wire_pack(&r->base, out);
  free(ls), free(ptrs), free(els), free(eptrs);
  return rc;
}

/* Fills r (borrowing from j and tokens); *out_ls and *out_ptrs are the
 * caller's to free. */
static int locations_msg(const ty_job *j, bool full, char *reason, size_t len,
                         const uint8_t *tokens, size_t token_len,
                         Trainyard__GetTaskLocationsResponse *r, Trainyard__TaskLocation **out_ls,
                         Trainyard__TaskLocation ***out_ptrs) {
  ty__run_loc *at = NULL;
  uint32_t n = current_run(j, &at);
  int rc = at ? locations_of(at, n, tokens, token_len, out_ls, out_ptrs) : TY_ENOMEM;
  free(at);
  locations_head(j, full, reason, len, r);
  r->n_tasks = n;
  r->tasks = *out_ptrs;
  return rc;
}

int ty__conv_stored_locations_resp(const ty_job *j, bool full, const ty__run_loc *last, uint32_t n,
                                   const ty__run_loc *earlier, uint32_t n_earlier,
                                   const uint8_t *tokens, size_t token_len, ty_buf *out) {
  Trainyard__GetTaskLocationsResponse r;
  char reason[TY_ERR_LEN + 64];
  locations_head(j, full, reason, sizeof reason, &r);
  return pack_locations(&r, last, n, earlier, n_earlier, tokens, token_len, out);
}

int ty__conv_task_locations_resp(const ty_job *j, bool full, const ty__run_loc *earlier,
                                 uint32_t n_earlier, const uint8_t *tokens, size_t token_len,
                                 ty_buf *out) {
  Trainyard__GetTaskLocationsResponse r;
  char reason[TY_ERR_LEN + 64];
  ty__run_loc *at = NULL;
  uint32_t n = current_run(j, &at);
  locations_head(j, full, reason, sizeof reason, &r);
  int rc = at ? pack_locations(&r, at, n, earlier, n_earlier, tokens, token_len, out) : TY_ENOMEM;
  free(at);
  return rc;
}

int ty__conv_watch_req(const uint8_t *p, size_t n, ty__watch_req *out) {
  Trainyard__WatchJobRequest *req = ty_wire_unpack(&trainyard__watch_job_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out = (ty__watch_req){
      .job_id = req->job_id, .watch = true, .want_tokens = req->want_tokens, .timing = req->timing};
  ty_wire_free(req);
  return 0;
}

int ty__conv_watch_event(const ty_job *j, bool full, const uint8_t *tokens, size_t token_len,
                         const ty_launch_timing *timing, ty_buf *out) {
  Trainyard__JobWatchEvent ev = TRAINYARD__JOB_WATCH_EVENT__INIT;
  Trainyard__GetTaskLocationsResponse r;
  Trainyard__LaunchTiming t = TRAINYARD__LAUNCH_TIMING__INIT;
  Trainyard__TaskLocation *ls, **ptrs;
  char reason[TY_ERR_LEN + 64];
  int rc = locations_msg(j, full, reason, sizeof reason, tokens, token_len, &r, &ls, &ptrs);
  ev.job_id = j->id;
  ev.job = &r;
  if (timing) {
    t.checks_us = timing->checks_us, t.commit_us = timing->commit_us;
    t.queued_us = timing->queued_us, t.pass_us = timing->pass_us;
    t.start_commit_us = timing->start_commit_us, t.launch_us = timing->launch_us;
    t.end_us = timing->end_us;
    ev.timing = &t;
  }
  if (rc == 0) rc = ty_wire_pack(&ev.base, out);
  free(ls);
  free(ptrs);
  return rc;
}
