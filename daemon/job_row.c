/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job as the store and clients see it: its jobs row (ty__job_row, with
 * the `alloc` column of slots and ended ranks: jobs.c's header and
 * ty__job_restore_alloc read it back), its insert and its saves (only the
 * columns whose fingerprint changed; an unsplit array element's first save
 * splits it off the array's record), and its JobInfo, encoded once per
 * change for ls and show (full, and redacted for other users).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* Appenders for the row's text columns, kept NUL-terminated: a job's row
 * is built on every change (five times in a short job's life), and
 * ty_buf_printf's format parsing was most of that. */
static void put_str(ty_buf *b, const char *s) {
  size_t n = strlen(s);
  if (ty_buf_append(b, s, n + 1) == 0) b->len--; /* else it stays as it was */
}

/* v in base 10 or 16 (lower case). */
static void put_unum(ty_buf *b, uint64_t v, unsigned base) {
  char d[24], out[24];
  size_t n = 0;
  do
    d[n++] = "0123456789abcdef"[v % base];
  while ((v /= base) != 0);
  for (size_t i = 0; i < n; i++)
    out[i] = d[n - 1 - i];
  out[n] = '\0';
  put_str(b, out);
}

static void put_inum(ty_buf *b, int64_t v) {
  if (v < 0) put_str(b, "-");
  put_unum(b, v < 0 ? -(uint64_t)v : (uint64_t)v, 10);
}

static char *hostlist_of(char *const *names, size_t n) {
  if (n == 0) return NULL;
  ty_buf b;
  ty_buf_init(&b);
  ty_hostlist_write((const char *const *)names, n, &b);
  return (char *)b.data; /* NUL-terminated, owned */
}

void ty__job_lists(ty_job *j) {
  free(j->req_list);
  free(j->exc_list);
  j->req_list = hostlist_of(j->spec.req_nodes, j->spec.n_req_nodes);
  j->exc_list = hostlist_of(j->spec.exc_nodes, j->spec.n_exc_nodes);
}

void ty__job_row(const ty_job *j, ty_job_row *out, char **out_nodes, char **out_alloc) {
  ty_buf nodes, alloc;
  ty_buf_init(&nodes);
  ty_buf_init(&alloc);
  ty_buf_append(&nodes, "", 1);
  ty_buf_append(&alloc, "", 1);
  nodes.len = alloc.len = 0;
  for (uint32_t s = 0; s < j->n_slots; s++) {
    if (s) put_str(&nodes, ",");
    put_str(&nodes, j->slots[s].node->name);
    put_str(&alloc, s ? ";S" : "S");
    put_unum(&alloc, j->slots[s].gpus, 16);
    put_str(&alloc, ",");
    put_unum(&alloc, j->slots[s].cpus, 10);
    put_str(&alloc, ",");
    put_unum(&alloc, j->slots[s].mem, 10);
  }
  for (uint32_t seq = 1; seq <= j->ended; seq++)
    for (uint32_t r = 0; r < j->n_ranks; r++) {
      const ty_rank *rk = &j->ranks[r];
      if (rk->end_seq != seq) continue;
      put_str(&alloc, ";E");
      put_unum(&alloc, r, 10);
      put_str(&alloc, ",");
      put_inum(&alloc, rk->task_state);
      put_str(&alloc, ",");
      put_inum(&alloc, rk->exit_code);
      put_str(&alloc, ",");
      put_inum(&alloc, rk->term_signal);
      put_str(&alloc, ",");
      put_unum(&alloc,
               (rk->timed_out ? TY__RANK_TIMED_OUT : 0u) |
                   (rk->oom_killed ? TY__RANK_OOM_KILLED : 0u),
               10);
    }
  *out = (ty_job_row){.id = j->id,
                      .name = j->spec.name,
                      .user = j->spec.user,
                      .queue = j->spec.queue,
                      .priority = j->spec.priority,
                      .state = j->state,
                      .reason = j->reason,
                      .exit_code = j->exit_code,
                      .term_signal = j->term_signal,
                      .submit_ms = j->submit_ms,
                      .start_ms = j->start_ms,
                      .end_ms = j->end_ms,
                      .nodes = j->n_slots ? (char *)nodes.data : (j->nodes_csv ? j->nodes_csv : ""),
                      .alloc = (char *)alloc.data,
                      .requeue_count = j->requeue_count,
                      .spec = j->blob,
                      .request_id = j->request_id ? j->request_id : "",
                      .request_hash = (int64_t)j->request_hash,
                      .spec_len = j->blob_len,
                      .held = j->held,
                      .held_by = j->held_by ? j->held_by : "",
                      .last_ckpt_ms = j->last_ckpt_ms,
                      .plan = j->plan,
                      .plan_len = j->plan_len,
                      .graph_progress = j->graph_saved,
                      .graph_progress_len = j->graph_saved_len,
                      .kill_sent = j->kill_sent,
                      .requeue_asked = j->requeue_asked,
                      .preempt_for = (int64_t)j->preempt_for,
                      .array_id = (int64_t)j->array_id,
                      .array_task = j->array_task,
                      .model_file = j->model_file,
                      .time_limit_s = j->spec.time_limit_s,
                      .alloc_cpus = j->alloc_cpus,
                      .alloc_gpus = j->alloc_gpus,
                      .acct_gpu_ms = j->acct_gpu_ms,
                      .acct_measured = j->acct_measured,
                      .exclusive = j->spec.exclusive,
                      .req_nodes = j->req_list ? j->req_list : "",
                      .exc_nodes = j->exc_list ? j->exc_list : "",
                      .cpu_usec = (int64_t)j->usage.cpu_usec,
                      .mem_peak = (int64_t)j->usage.mem_peak_bytes,
                      .io_read = (int64_t)j->usage.io_read_bytes,
                      .io_write = (int64_t)j->usage.io_write_bytes,
                      .uid = j->spec.has_uid ? (int64_t)j->spec.uid : -1};
  *out_nodes = (char *)nodes.data;
  *out_alloc = (char *)alloc.data;
}

const ty_buf *ty__job_info(ty_controller *ctl, ty_job *j, ty__info_view view) {
  ty_buf *info = &j->info[view];
  bool *ok = &j->info_ok[view];
  if (*ok) return info;
  ty_buf nodes;
  ty_buf_init(&nodes);
  /* A requeued job still remembers its old slots until placed again. */
  for (uint32_t s = 0; j->state != TY_JOB_PENDING && s < j->n_slots; s++)
    ty_buf_printf(&nodes, "%s%s", s ? "," : "", j->slots[s].node->name);
  ty_buf_append(&nodes, "", 1);
  const char *dep = j->dep != TY__DEP_MET && j->dep_reason ? strstr(j->dep_reason, ": ") : NULL;
  ty__job_view v = {.id = j->id,
                    .spec = j->blob,
                    .spec_len = j->blob_len,
                    .state = j->state,
                    .reason = j->reason,
                    .exit_code = j->exit_code,
                    .term_signal = j->term_signal,
                    .submit_ms = j->submit_ms,
                    .start_ms = j->start_ms,
                    .end_ms = j->end_ms,
                    .nodes_csv = j->n_slots ? (char *)nodes.data : j->nodes_csv,
                    .requeue_count = j->requeue_count,
                    .ranks_ending = ty_job_state_terminal(j->state) ? j->live_ranks : 0,
                    .held = j->held,
                    .priority = j->state == TY_JOB_PENDING ? j->prio : 0,
                    .last_ckpt_ms = j->last_ckpt_ms,
                    .array_id = j->array_id,
                    .array_task = j->array_task,
                    .dependency = dep ? dep + 2 : "",
                    .usage = j->usage,
                    .usage_measured = j->acct_measured,
                    .redact = view == TY__INFO_REDACTED,
                    .abridge = view != TY__INFO_FULL};
  info->len = 0;
  int rc = ty__conv_job_info(&v, info);
  ty_buf_close(&nodes);
  ctl->stats.list_encoded++;
  *ok = rc == 0;
  return rc == 0 ? info : NULL;
}

int ty__job_insert(ty_job *j, ty_txn *txn) {
  ty_job_row row;
  char *nodes, *alloc;
  ty__job_row(j, &row, &nodes, &alloc);
  int rc = ty_txn_insert_job(txn, &row);
  if (rc == 0) ty_job_row_fingerprint(&row, j->fp);
  free(nodes);
  free(alloc);
  return rc;
}

/* The submit event an element still in its array's record stands for, as
 * the submit of a single job stores it (submit.c); actor is its buffer. */
static ty_event_row submit_event(const ty_job *j, char *actor, size_t len) {
  snprintf(actor, len, "user:%s", j->spec.user);
  return (ty_event_row){.job_id = j->id,
                        .time_ms = j->submit_ms,
                        .from_state = 0,
                        .to_state = TY_JOB_PENDING,
                        .reason = j->spec.hold ? "submitted held" : "submitted",
                        .actor = actor};
}

/* j leaves its array's stored record: its row and its submit event into
 * txn, and the record's removal with the last element to leave it. */
static void split_off(ty_controller *ctl, ty_job *j, ty_txn *txn) {
  if (ty__job_insert(j, txn) != 0) {
    ty_error("job %llu: no memory to copy its row; it stays in its array's record until it "
             "changes again",
             (unsigned long long)j->id);
    return;
  }
  char actor[300];
  ty_event_row ev = submit_event(j, actor, sizeof(actor));
  ty_txn_add_event(txn, &ev);
  j->unsplit = j->split_lost = false;
  /* The store checks that every element has its row before it drops the
   * record; the count only says when to ask. */
  ty__array *a = ty__array_get(ctl, j->array_id);
  if (!a || a->unsplit <= 1) ty_txn_array_done(txn, j->array_id);
  if (a && a->unsplit) a->unsplit--;
}

int ty__job_events(ty_controller *ctl, const ty_job *j, int (*cb)(const ty_event_row *r, void *ud),
                   void *ud) {
  if (!j->unsplit) return ty_store_job_events(ctl->store, j->id, cb, ud);
  char actor[300];
  ty_event_row ev = submit_event(j, actor, sizeof(actor));
  return cb(&ev, ud); /* what split_off will store */
}

void ty__job_save(ty_controller *ctl, ty_job *j, ty_txn *txn) {
  if (j->unsplit) {
    split_off(ctl, j, txn);
    ty__job_dirty(ctl, j);
    return;
  }
  ty_job_row row;
  char *nodes, *alloc;
  uint64_t fp[TY_JOB_NCOLS];
  ty__job_row(j, &row, &nodes, &alloc);
  ty_job_row_fingerprint(&row, fp);
  ty_job_cols cols = 0;
  for (int c = 0; c < TY_JOB_NCOLS; c++)
    if (fp[c] != j->fp[c]) cols |= (ty_job_cols)1 << c;
  if (cols && ty_txn_update_job(txn, &row, cols) != 0)
    ty_error("job %llu: no memory to copy its row; the store keeps its previous state until the "
             "job changes again",
             (unsigned long long)j->id);
  else if (cols)
    memcpy(j->fp, fp, sizeof(fp));
  free(nodes);
  free(alloc);
  ty__job_dirty(ctl, j);
}
